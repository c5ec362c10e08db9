// Data flows one way: cli → server → registry → cache → store | upstream → oci → lib. Lower layers never
// import higher ones. The graph is read the way Bun reads it (static imports, re-exports and
// dynamic import()), plus type-only imports, which Bun drops but which still couple layers.
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const SRC = join(import.meta.dir, "../../src");
// lib/ holds building blocks that know nothing of registries (BoundedMap): below every layer, importing none.
const ALLOWED: Record<string, string[]> = {
  lib: [],
  oci: ["lib"],
  store: ["lib", "oci"],
  upstream: ["lib", "oci"],
  archives: ["lib", "oci"],
  cache: ["lib", "oci", "store", "upstream"],
  registry: ["lib", "oci", "cache", "upstream", "config", "store"],
  config: ["lib", "oci"],
  server: ["lib", "oci", "store", "upstream", "archives", "cache", "registry", "config", "log.ts"],
  cli: ["lib", "oci", "store", "upstream", "archives", "cache", "registry", "config", "server", "log.ts"],
  "log.ts": ["lib", "config"],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
  });
}

const transpiler = new Bun.Transpiler({ loader: "ts" });

/** Every module a file imports: what Bun loads at run time, and type-only imports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8").replace(/^#!.*\n/, "");
  const runtime = transpiler.scanImports(text).map((i) => i.path);
  const typeOnly = [...text.matchAll(/^\s*(?:import|export)\s+type\s[^;]*?from\s+"([^"]+)"/gm)].map((m) => m[1]!);
  return [...runtime, ...typeOnly]
    .filter((p) => p.startsWith("."))
    .map((p) => relative(SRC, resolve(dirname(file), p)));
}

/** Layer-crossing imports that the table above does not allow. */
function violations(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const layer = file.split("/")[0]!;
    for (const target of targets) {
      if (target.startsWith("..")) continue;
      const targetLayer = target.split("/")[0]!;
      if (targetLayer !== layer && !(ALLOWED[layer] ?? []).includes(targetLayer)) out.push(`${file} imports ${target}`);
    }
  }
  return out;
}

describe("the import graph", () => {
  const graph = new Map(files(SRC).map((f) => [relative(SRC, f), importsOf(f)]));

  test("no module imports from a layer above it", () => {
    expect(violations(graph)).toEqual([]);
  });

  test("every directory (and file) at the top of src has a row in the table", () => {
    expect(readdirSync(SRC).filter((n) => !(n in ALLOWED))).toEqual([]);
  });

  test("every import resolves to a file in the tree", () => {
    const missing = [...graph].flatMap(([f, ts]) => ts.filter((t) => !graph.has(t) && !t.endsWith(".json")).map((t) => `${f} -> ${t}`));
    expect(missing).toEqual([]);
  });

  test("commands never import each other", () => {
    const crossing = [...graph].flatMap(([f, ts]) => (f.startsWith("cli/commands/") ? ts.filter((t) => t.startsWith("cli/commands/")).map((t) => `${f} -> ${t}`) : []));
    expect(crossing).toEqual([]);
  });

  test("the check sees dynamic imports and type-only imports", () => {
    const fake = new Map([
      ["oci/a.ts", ["cache/b.ts"]],
      ["store/c.ts", ["cli/main.ts"]],
      ["lib/d.ts", ["oci/e.ts"]],
      ["upstream/f.ts", ["lib/d.ts"]],
    ]);
    expect(violations(fake)).toEqual(["oci/a.ts imports cache/b.ts", "store/c.ts imports cli/main.ts", "lib/d.ts imports oci/e.ts"]);
    expect(importsOf(join(SRC, "cli/main.ts"))).toContain("cli/commands/serve.ts"); // import("./commands/serve.ts")
    expect(importsOf(join(SRC, "cache/context.ts"))).toContain("store/types.ts"); // import type
  });
});
