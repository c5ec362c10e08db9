// What the cache knows of a manifest as served through one upstream in one repository, in one
// bounded map of flags (one key string per manifest, not one in each of two maps): whether a
// record there covers it, and whether what it declares was remembered already.
import { BoundedMap } from "../lib/bounded-map.ts";
import type { Target } from "../oci/reference.ts";

const COVERED = 1;
const REMEMBERED = 2;

/** Key of a manifest as an upstream served it in a repository. */
export const partKey = (target: Target, digest: string) => `${target.upstream} ${target.repository} ${digest}`;

export class ManifestParts {
  private readonly flags: BoundedMap<string, number>;
  constructor(maxEntries: number) {
    this.flags = new BoundedMap(maxEntries);
  }

  private mark(key: string, flag: number): boolean {
    const f = this.flags.peek(key) ?? 0;
    if (f & flag) return false;
    this.flags.set(key, f | flag);
    return true;
  }

  /** Whether a record of this upstream in this repository covers the manifest (its tag's target, or a platform manifest of it). */
  covered(key: string): boolean {
    return ((this.flags.peek(key) ?? 0) & COVERED) !== 0;
  }

  cover(key: string) {
    this.mark(key, COVERED);
  }

  uncover(key: string) {
    const f = this.flags.peek(key);
    if (f === undefined || !(f & COVERED)) return;
    if (f & ~COVERED) this.flags.set(key, f & ~COVERED);
    else this.flags.delete(key);
  }

  /** Marks the manifest's declarations as remembered; true when they were not yet (the caller remembers them now). */
  remember(key: string): boolean {
    return this.mark(key, REMEMBERED);
  }

  get size(): number {
    return this.flags.size;
  }
}
