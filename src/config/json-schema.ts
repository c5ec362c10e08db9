// The JSON Schema of the configuration file, converted from the valibot schema: editors use it
// (`# yaml-language-server: $schema=…`) and the Helm chart checks its `config` value with it.
import { toJsonSchema, type ConversionConfig } from "@valibot/to-json-schema";
import { endpointMapping, urlOrMapping } from "./registries.ts";
import { configSchema } from "./schema.ts";

const OPTIONS: ConversionConfig = {
  typeMode: "input",
  // Checks that JSON Schema cannot say (a host name, a file's existence, pairs of keys) stay with `config check`.
  errorMode: "ignore",
  ignoreActions: ["metadata", "check", "raw_check"],
  // A mirror endpoint is a URL or a mapping; the converter would stop at the step that turns one into the other.
  overrideSchema: ({ valibotSchema }) => {
    if (valibotSchema !== urlOrMapping) return undefined;
    const { $schema: _, ...mappingSchema } = toJsonSchema(endpointMapping, OPTIONS);
    return { anyOf: [{ type: "string", description: "a URL; its path is a repository prefix" }, mappingSchema] };
  },
};

/** The schema of what users write: values as typed (`5m`), before they become milliseconds. */
export function configJsonSchema(): Record<string, unknown> {
  const schema = toJsonSchema(configSchema, OPTIONS);
  const { $schema, ...rest } = schema;
  return { $schema, title: "ociregistry configuration file", ...rest };
}
