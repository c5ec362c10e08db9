// The store contract on the directory driver.
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fsDriver } from "../../src/store/fs.ts";
import { storeContract } from "./store-contract.ts";

storeContract("directory", async () => fsDriver(mkdtempSync(join(tmpdir(), "ocireg-contract-"))));

describe("directory driver listings", () => {
  test("give files only, in key order, with and without sizes; empty directories are no keys", async () => {
    const root = mkdtempSync(join(tmpdir(), "ocireg-list-"));
    const driver = fsDriver(root);
    const enc = (s: string) => new TextEncoder().encode(s);
    for (const k of ["x/a/1", "x/a.b", "x/a-c/2", "x/b", "x/a/deep/3"]) await driver.put(k, enc(k));
    mkdirSync(join(root, "x/empty/inner"), { recursive: true });
    const want = ["x/a-c/2", "x/a.b", "x/a/1", "x/a/deep/3", "x/b"];
    const plain: string[] = [];
    for await (const e of driver.list("x/")) plain.push(e.key);
    expect(plain).toEqual(want);
    const sized: Array<[string, number]> = [];
    for await (const e of driver.list("x/", true)) sized.push([e.key, e.size]);
    expect(sized).toEqual(want.map((k) => [k, k.length]));
    const none: string[] = [];
    for await (const e of driver.list("nothing/", true)) none.push(e.key);
    expect(none).toEqual([]);
    rmSync(root, { recursive: true, force: true });
  });
});
