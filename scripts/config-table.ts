// Writes what is generated from the config schema: the reference table in docs/configuration.md
// (between the config-table markers) and the Helm chart's values.schema.json. `--check` changes
// nothing and exits 1 when either is stale (test/unit/config-docs.test.ts runs the same check).
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { configJsonSchema } from "../src/config/json-schema.ts";
import { configTable } from "../src/config/table.ts";
import { chartValuesProperties } from "./chart-values-schema.ts";

const ROOT = join(import.meta.dir, "..");
export const DOC = join(ROOT, "docs/configuration.md");
export const CHART_SCHEMA = join(ROOT, "charts/ociregistry/values.schema.json");
const BEGIN = "<!-- config-table:begin -->";
const END = "<!-- config-table:end -->";

/** The doc with the table between its markers replaced by the schema's. */
export function withTable(doc: string): string {
  const b = doc.indexOf(BEGIN);
  const e = doc.indexOf(END);
  if (b < 0 || e < b) throw new Error(`${DOC} has no ${BEGIN} … ${END} markers`);
  return `${doc.slice(0, b)}${BEGIN}\n${configTable()}\n${doc.slice(e)}`;
}

/** The chart's values schema: its own values (scripts/chart-values-schema.ts) and the config file's schema for `config`; no other key. */
export function chartSchema(): string {
  const { $schema, title: _, ...config } = configJsonSchema();
  return `${JSON.stringify({
    $schema,
    title: "ociregistry chart values",
    type: "object",
    additionalProperties: false,
    properties: {
      ...chartValuesProperties,
      config: { ...config, description: "The ociregistry config file (config.yaml); see docs/configuration.md" },
    },
  }, null, 2)}\n`;
}

/** Each generated file with its current and its expected text. */
export function generated(): { path: string; current: string; expected: string }[] {
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  const doc = read(DOC);
  return [
    { path: DOC, current: doc, expected: withTable(doc) },
    { path: CHART_SCHEMA, current: read(CHART_SCHEMA), expected: chartSchema() },
  ];
}

if (import.meta.main) {
  const stale = generated().filter((f) => f.current !== f.expected);
  if (process.argv.includes("--check")) {
    for (const f of stale) console.error(`${f.path} is stale: run bun scripts/config-table.ts`);
    process.exit(stale.length ? 1 : 0);
  }
  for (const f of stale) {
    writeFileSync(f.path, f.expected);
    console.log(`wrote ${f.path}`);
  }
}
