// Contract cases for the store's own bookkeeping files (state/) over every driver: a create that
// only one of many concurrent writers wins (the eviction lease of replicas on one bucket), removal,
// the listing of one state directory (the replicas' files), and names that are refused.
import { describe, expect, test } from "bun:test";
import type { Store } from "../../src/store/types.ts";
import { enc, failure } from "./fixtures.ts";

async function names(store: Store, dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const n of store.listState(dir)) out.push(n);
  return out.sort();
}

export function stateCases(name: string, make: () => Promise<Store>) {
  describe(`store state files: ${name}`, () => {
    test("createState creates only what is absent: true once, then false with the first bytes kept; removeState frees the name", async () => {
      const store = await make();
      expect(await store.createState("evict.lease", enc("first"))).toBe(true);
      expect(await store.createState("evict.lease", enc("second"))).toBe(false);
      expect(await store.readState("evict.lease")).toEqual(enc("first"));
      await store.removeState("evict.lease");
      await store.removeState("evict.lease"); // removing what is gone is fine
      expect(await store.readState("evict.lease")).toBeNull();
      expect(await store.createState("evict.lease", enc("third"))).toBe(true);
      expect(await store.readState("evict.lease")).toEqual(enc("third"));
    });

    test("of 8 concurrent creates of one name exactly one wins, and its bytes are the ones stored", async () => {
      const store = await make();
      const won = await Promise.all(Array.from({ length: 8 }, (_, i) => store.createState("race.lease", enc(`writer ${i}`))));
      expect(won.filter(Boolean)).toHaveLength(1);
      expect(new TextDecoder().decode((await store.readState("race.lease"))!)).toBe(`writer ${won.indexOf(true)}`);
    });

    test("one state directory lists its own files only; state names that could leave state/ are refused", async () => {
      const store = await make();
      expect(await names(store, "replicas")).toEqual([]);
      await store.writeState("usage.json", enc("{}"));
      await store.writeState("replicas/a-1.json", enc("{}"));
      expect(await store.createState("replicas/b-2.json", enc("{}"))).toBe(true);
      await store.writeState("other/c.json", enc("{}"));
      expect(await names(store, "replicas")).toEqual(["a-1.json", "b-2.json"]);
      await store.removeState("replicas/a-1.json");
      expect(await names(store, "replicas")).toEqual(["b-2.json"]);
      for (const bad of ["../x", "replicas/../x", "a/b/c", "/abs", "replicas/", ".hidden", "Upper"]) {
        expect(await failure(store.createState(bad, enc("x")))).toBe("invalid");
        expect(await failure(store.readState(bad))).toBe("invalid");
      }
    });
  });
}
