// `ociregistry config schema` prints the config file's JSON Schema; `config check` validates a
// config (file and flags) as `serve` would and prints it resolved, secrets masked.
import { defineCommand } from "citty";
import { stringify } from "yaml";
import { configJsonSchema } from "../../config/json-schema.ts";
import { maskedConfig } from "../../config/show.ts";
import { command } from "../command.ts";

const schema = defineCommand({
  meta: { name: "schema", description: "Print the JSON Schema of the config file (for editors: # yaml-language-server: $schema=FILE)" },
  run() {
    process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  },
});

const check = command({
  meta: { name: "check", description: "Validate the config file and flags as serve would; print the result with secrets masked (example: ociregistry config check --config-file config.yaml)" },
  args: {},
  keys: ["upstream", "archives", "serve"],
  run({ args, cfg }) {
    process.stdout.write(`# ${args["config-file"] ?? "no config file: defaults"}, resolved; secrets masked\n${stringify(maskedConfig(cfg))}`);
  },
});

export default defineCommand({
  meta: { name: "config", description: "Check a config file, or print its JSON Schema" },
  subCommands: { check, schema },
});
