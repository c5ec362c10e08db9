// Manifests kept in memory, least recently used first out, within a byte budget: cached
// manifests are answered without touching the disk. Keyed by digest: only verified content.
import { BoundedMap } from "../lib/bounded-map.ts";

export interface MemoryManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

/**
 * What one kept manifest costs besides its bytes (the Uint8Array and its buffer, the entry, the
 * digest key, the map slot; measured at about 650 bytes): counted, so 10,000 small manifests
 * cannot hold twice the budget.
 */
export const MANIFEST_ENTRY_BYTES = 640;

export class ManifestMemory {
  private readonly entries: BoundedMap<string, MemoryManifest>;
  constructor(budget: number) {
    this.entries = new BoundedMap(Infinity, budget, (m) => m.bytes.byteLength + MANIFEST_ENTRY_BYTES);
  }

  get(digest: string): MemoryManifest | undefined {
    return this.entries.get(digest);
  }

  delete(digest: string) {
    this.entries.delete(digest);
  }

  set(m: MemoryManifest) {
    this.entries.set(m.digest, m);
  }
}
