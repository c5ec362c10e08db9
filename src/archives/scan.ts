// The `.oci` files under the archives directory, found by walking it (no inotify: it may be NFS or
// read-only). The walk is bounded in depth, directories, entries and files; it enters each
// directory once (by device and inode, so a symlink to `.` or to an ancestor is not a loop), and
// follows a symbolic link only when its real path lies inside the archives directory.
import { opendir, realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";

/** Directory (relative, "" for the top) → the `.oci` file names in it, sorted. */
export type ArchiveListing = Map<string, string[]>;

export interface ScanLimits {
  maxFiles: number;
  maxDepth: number;
  /** Directories entered, the top one included. */
  maxDirs: number;
  /** Directory entries read, of any kind: a directory of a million other files ends the walk. */
  maxEntries: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { maxFiles: 100_000, maxDepth: 16, maxDirs: 10_000, maxEntries: 1_000_000 };

/** Problems reported by one scan at most; the rest are counted in a last line. */
const MAX_PROBLEMS = 100;

export interface ScanResult {
  listing: ArchiveListing;
  files: number;
  /** The archives directory's real path: every file listed lies under it. */
  root: string;
  /** Entries skipped (unreadable, loops, links out of the directory) and limits reached. */
  problems: string[];
}

const errCode = (err: unknown) => (err as NodeJS.ErrnoException).code ?? (err as Error).message;

/** Whether `real` (a real path) is `root` or lies under it. */
export function isInside(root: string, real: string): boolean {
  return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Walks `dir`; throws only when `dir` itself cannot be read. */
export async function scanArchives(dir: string, limits: ScanLimits = DEFAULT_SCAN_LIMITS): Promise<ScanResult> {
  const listing: ArchiveListing = new Map();
  const problems: string[] = [];
  let dropped = 0;
  const problem = (p: string) => (problems.length < MAX_PROBLEMS ? problems.push(p) : dropped++);
  let files = 0;
  let dirs = 0;
  let entries = 0;
  let stopped = false;
  /** `dev:ino` of every directory entered: none is entered twice, whatever links lead to it. */
  const entered = new Set<string>();

  let root: string;
  try {
    root = await realpath(dir);
    const st = await stat(root);
    if (!st.isDirectory()) throw Object.assign(new Error("ENOTDIR"), { code: "ENOTDIR" });
    entered.add(`${st.dev}:${st.ino}`);
  } catch (err) {
    throw new Error(`cannot read the archives directory ${dir}: ${errCode(err)}`);
  }

  /** The real path of the link at `abs` when it lies inside the directory; else null, reported. */
  async function linkInside(abs: string): Promise<string | null> {
    let real: string;
    try {
      real = await realpath(abs);
    } catch (err) {
      problem(`${abs} is a symbolic link that cannot be followed (${errCode(err)}); skipped`);
      return null;
    }
    if (isInside(root, real)) return real;
    problem(`${abs} is a symbolic link to ${real}, outside the archives directory; skipped`);
    return null;
  }

  async function walk(rel: string, depth: number) {
    const abs = rel ? join(dir, rel) : dir;
    if (++dirs > limits.maxDirs) {
      problem(`more than ${limits.maxDirs} directories; the rest are not searched`);
      stopped = true;
      return;
    }
    // Only what may matter is kept (directories, links, .oci files), then sorted for a stable order.
    const kept: Array<{ name: string; dir: boolean; file: boolean; link: boolean }> = [];
    try {
      for await (const e of await opendir(abs, { bufferSize: 256 })) {
        if (++entries > limits.maxEntries) {
          problem(`more than ${limits.maxEntries} directory entries; the rest are not searched`);
          stopped = true;
          break;
        }
        const oci = e.name.endsWith(".oci") && e.name.length > 4;
        if (e.isDirectory() || e.isSymbolicLink() || (oci && e.isFile())) {
          kept.push({ name: e.name, dir: e.isDirectory(), file: e.isFile(), link: e.isSymbolicLink() });
        }
      }
    } catch (err) {
      if (rel === "") throw new Error(`cannot read the archives directory ${dir}: ${errCode(err)}`);
      problem(`cannot read ${abs}: ${errCode(err)}`);
      return;
    }
    kept.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const here: string[] = [];
    for (const e of kept) {
      if (stopped) break;
      const childRel = rel ? `${rel}/${e.name}` : e.name;
      const childAbs = join(abs, e.name);
      let { dir: isDir, file: isFile } = e;
      if (e.link) {
        const s = await stat(childAbs).catch(() => null);
        isDir = !!s?.isDirectory();
        isFile = !!s?.isFile() && e.name.endsWith(".oci") && e.name.length > 4;
        if ((isDir || isFile) && !(await linkInside(childAbs))) continue;
      }
      if (isFile) {
        if (++files > limits.maxFiles) {
          problem(`more than ${limits.maxFiles} .oci files; the rest are not served`);
          stopped = true;
          files--;
          break;
        }
        here.push(e.name);
      } else if (isDir) {
        if (depth >= limits.maxDepth) {
          problem(`${childAbs} is deeper than ${limits.maxDepth} levels; not searched`);
          continue;
        }
        let st;
        try {
          st = await stat(childAbs);
        } catch (err) {
          problem(`cannot read ${childAbs}: ${errCode(err)}`);
          continue;
        }
        const id = `${st.dev}:${st.ino}`;
        if (entered.has(id)) {
          problem(`${childAbs} leads to a directory already searched (a link to it or to a directory above it); not followed`);
          continue;
        }
        entered.add(id);
        await walk(childRel, depth + 1);
      }
    }
    if (here.length) listing.set(rel, here);
  }

  await walk("", 0);
  if (dropped) problems.push(`${dropped} more problem(s) not shown`);
  return { listing, files, root, problems };
}
