// The memory driver, for tests: objects in a map, the same layout and contract as the directory
// and S3 back-ends, no disk. Records are kept as bytes, so damaged ones can exist and are found.
import type { Driver } from "./driver.ts";
import { createLayoutStore } from "./layout.ts";
import type { Store } from "./types.ts";

interface Item {
  bytes: Uint8Array;
  modified: number;
  /** A generation, new with every write (the version conditional writes compare). */
  version: string;
}

/** The memory store: the layout over a memory driver. */
export function createMemoryStore(now: () => number = Date.now): Store {
  return createLayoutStore(memoryDriver(now));
}

export function memoryDriver(now: () => number = Date.now): Driver {
  const items = new Map<string, Item>();
  let generation = 0;
  const put = (key: string, bytes: Uint8Array) => void items.set(key, { bytes, modified: now(), version: String(++generation) });
  // Compared and changed within one turn of the event loop: atomic against every other caller.
  const at = (key: string, version: string | null) => (items.get(key)?.version ?? null) === version;

  return {
    location: "memory",
    async init() {
      return 0;
    },
    async read(key) {
      return items.get(key)?.bytes ?? null;
    },
    async readMany(keys) {
      return keys.map((k) => items.get(k)?.bytes ?? null);
    },
    async put(key, bytes) {
      put(key, bytes.slice());
    },
    async create(key, bytes) {
      if (items.has(key)) return false;
      put(key, bytes.slice());
      return true;
    },
    async readVersioned(key) {
      const i = items.get(key);
      return { bytes: i?.bytes ?? null, version: i?.version ?? null };
    },
    async putIf(key, bytes, version) {
      if (!at(key, version)) return false;
      put(key, bytes.slice());
      return true;
    },
    async removeIf(key, version) {
      if (!at(key, version)) return false;
      items.delete(key);
      return true;
    },
    async stat(key) {
      const i = items.get(key);
      return i ? { size: i.bytes.byteLength, modified: i.modified } : null;
    },
    async serve(key) {
      const i = items.get(key);
      return i ? { size: i.bytes.byteLength, file: new Blob([i.bytes as Uint8Array<ArrayBuffer>]) } : null;
    },
    async remove(key) {
      items.delete(key);
    },
    async *list(prefix) {
      const keys = [...items.keys()].filter((k) => k.startsWith(prefix)).sort();
      for (const key of keys) {
        const i = items.get(key);
        if (i) yield { key, size: i.bytes.byteLength };
      }
    },
    async openWriter(key) {
      let chunks: Uint8Array[] = [];
      let buffer = new Uint8Array(0);
      const flat = () => {
        if (chunks.length) {
          buffer = Buffer.concat([buffer, ...chunks]);
          chunks = [];
        }
        return buffer;
      };
      return {
        async write(chunk) {
          chunks.push(chunk.slice());
        },
        async readAt(position, into) {
          const b = flat().subarray(position, position + into.byteLength);
          into.set(b);
          return b.byteLength;
        },
        async publish() {
          put(key, flat());
        },
        async drop() {
          chunks = [];
          buffer = new Uint8Array(0);
        },
        async release() {},
      };
    },
  };
}
