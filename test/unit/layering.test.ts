// Data flows one way: cli → registry → cache → store | upstream → oci. Lower layers never
// import higher ones.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, dirname } from "node:path";

const SRC = join(import.meta.dir, "../../src");
const ALLOWED: Record<string, string[]> = {
  oci: [],
  store: ["oci"],
  upstream: ["oci"],
  cache: ["oci", "store", "upstream"],
  registry: ["oci", "cache", "upstream", "config"],
  config: ["oci"],
  server: ["oci", "store", "upstream", "cache", "registry", "config", "log.ts"],
  cli: ["oci", "store", "upstream", "cache", "registry", "config", "server", "log.ts"],
  "log.ts": ["config"],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

test("no module imports from a layer above it", () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const layer = relative(SRC, file).split("/")[0]!;
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/from\s+"(\.{1,2}\/[^"]+)"/g)) {
      const target = relative(SRC, resolve(dirname(file), m[1]!));
      if (target.startsWith("..")) continue;
      const targetLayer = target.split("/")[0]!;
      if (targetLayer === layer) continue;
      if (!(ALLOWED[layer] ?? []).includes(targetLayer)) violations.push(`${relative(SRC, file)} imports ${target}`);
    }
  }
  expect(violations).toEqual([]);
});
