// What is generated from the config schema stays in step with it (the reference table, the
// chart's values.schema.json), and every config file shown in the README and docs/ is valid.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { checkConfigText } from "../../src/config/resolve.ts";
import { entries } from "../../src/config/schema.ts";
import { configRows } from "../../src/config/table.ts";
import { generated } from "../../scripts/config-table.ts";

const ROOT = join(import.meta.dir, "../..");

describe("generated from the schema", () => {
  for (const f of generated()) {
    test(`${f.path.slice(ROOT.length + 1)} is up to date (bun scripts/config-table.ts)`, () => {
      expect(f.current).toBe(f.expected);
    });
  }

  test("the table has a row for every key, the seed's among them, with today's defaults", () => {
    const rows = Object.fromEntries(configRows().map((r) => [r.key.replaceAll("`", ""), r.default]));
    for (const k of Object.keys(entries)) expect(Object.keys(rows).some((r) => r === k || r.startsWith(`${k}.`) || r.startsWith(`${k}[]`))).toBe(true);
    expect(rows).toMatchObject({
      imagePath: "`/var/lib/ociregistry`", port: "`8080`", pullTimeout: "`60000`", revalidateAfter: "`5m`", upstreams: "`public`",
      maxUpstreamConnections: "`32`", maxUpstreamConnectionsTotal: "`192`", minTransferRate: "`1KiB/s`", transferRateWindow: "`30s`",
      "registries[].name": "—", "registries[].scheme": "`https`", "registries[].auth.passwordFromEnv": "—", "registries[].tls.insecureSkipVerify": "`false`",
      "serverTlsConfig.clientAuth": "`none`", "pruneConfig.duration": "`30d`", "archives.rescan": "`10m`", "s3.forcePathStyle": "`true`",
    });
  });
});

/** ```yaml blocks of a Markdown file with the line they start on. */
function yamlBlocks(file: string): { line: number; text: string; skip: boolean }[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(<!-- not an ociregistry config -->\n)?```ya?ml\n([\s\S]*?)```/g)].map((m) => ({
    line: text.slice(0, m.index).split("\n").length, text: m[2]!, skip: !!m[1],
  }));
}

/** Kubernetes objects, Compose files and Helm values are YAML too, but not config files. */
function isConfig(text: string): boolean {
  const doc = parseYaml(text) as unknown;
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) return false;
  return !["apiVersion", "kind", "services"].some((k) => k in doc);
}

describe("config examples in the documentation", () => {
  const files = ["README.md", ...readdirSync(join(ROOT, "docs")).filter((f) => f.endsWith(".md")).map((f) => `docs/${f}`)];
  const blocks = files.flatMap((f) => yamlBlocks(join(ROOT, f)).filter((b) => !b.skip && isConfig(b.text)).map((b) => ({ ...b, file: f })));

  test("there are examples to check (detection works)", () => {
    expect(blocks.length).toBeGreaterThanOrEqual(8);
  });

  for (const b of blocks) {
    test(`${b.file}:${b.line} is a valid config`, () => {
      expect(() => checkConfigText(b.text, `${b.file}:${b.line}`)).not.toThrow();
    });
  }

  test("a typo in an example would be caught", () => {
    expect(() => checkConfigText("registries:\n  - name: r.io\n    tsl: {ca: /x.pem}\n", "x")).toThrow("registries[0].tsl: unknown key");
  });
});
