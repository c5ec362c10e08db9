// Manifests kept in memory, least recently used first out, within a byte budget: cached
// manifests are answered without touching the disk.

export interface MemoryManifest {
  bytes: Uint8Array;
  mediaType: string;
  digest: string;
}

export class ManifestMemory {
  private entries = new Map<string, MemoryManifest>();
  private bytes = 0;
  constructor(private readonly budget: number) {}

  get(digest: string): MemoryManifest | undefined {
    const m = this.entries.get(digest);
    if (m) {
      // Map keeps insertion order: re-inserting marks it most recently used.
      this.entries.delete(digest);
      this.entries.set(digest, m);
    }
    return m;
  }

  set(m: MemoryManifest) {
    if (m.bytes.byteLength > this.budget) return;
    const old = this.entries.get(m.digest);
    if (old) {
      this.bytes -= old.bytes.byteLength;
      this.entries.delete(m.digest);
    }
    this.entries.set(m.digest, m);
    this.bytes += m.bytes.byteLength;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.budget) break;
      this.entries.delete(k);
      this.bytes -= v.bytes.byteLength;
    }
  }

  get size(): number {
    return this.bytes;
  }
}
