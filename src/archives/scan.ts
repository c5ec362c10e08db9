// The `.oci` files under the archives directory, found by walking it (no inotify: it may be NFS or
// read-only). The walk is bounded in depth and in files, and follows symbolic links to files.
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/** Directory (relative, "" for the top) → the `.oci` file names in it, sorted. */
export type ArchiveListing = Map<string, string[]>;

export interface ScanLimits {
  maxFiles: number;
  maxDepth: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxFiles: 100_000, maxDepth: 16 };

export interface ScanResult {
  listing: ArchiveListing;
  files: number;
  /** Directories that could not be read, and limits reached. */
  problems: string[];
}

/** Walks `dir`; throws only when `dir` itself cannot be read. */
export async function scanArchives(dir: string, limits: ScanLimits = DEFAULT_SCAN_LIMITS): Promise<ScanResult> {
  const listing: ArchiveListing = new Map();
  const problems: string[] = [];
  let files = 0;
  let stopped = false;

  async function walk(rel: string, depth: number) {
    const abs = rel ? join(dir, rel) : dir;
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      if (rel === "") throw new Error(`cannot read the archives directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      problems.push(`cannot read ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return;
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const here: string[] = [];
    for (const e of entries) {
      if (stopped) break;
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      let isDir = e.isDirectory();
      let isFile = e.isFile();
      if (e.isSymbolicLink()) {
        const s = await stat(join(abs, e.name)).catch(() => null);
        isDir = !!s?.isDirectory();
        isFile = !!s?.isFile();
      }
      if (isFile && e.name.endsWith(".oci") && e.name.length > 4) {
        if (++files > limits.maxFiles) {
          problems.push(`more than ${limits.maxFiles} .oci files; the rest are not served`);
          stopped = true;
          files--;
          break;
        }
        here.push(e.name);
      } else if (isDir) {
        if (depth >= limits.maxDepth) problems.push(`${join(abs, e.name)} is deeper than ${limits.maxDepth} levels; not searched`);
        else await walk(childRel, depth + 1);
      }
    }
    if (here.length) listing.set(rel, here);
  }

  await walk("", 0);
  return { listing, files, problems };
}
