// What configure-node does to a node, as a list of file changes: computed first (so --dry-run can
// print it and a refusal leaves nothing half done), then applied with atomic writes.
import { chmodSync, closeSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, rmdirSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** A file or directory configure-node will not touch as asked; `path` names it. */
export class NodeConfigRefused extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "NodeConfigRefused";
  }
}

export type Change =
  | { kind: "mkdir"; path: string }
  | { kind: "write"; path: string; content: string }
  | { kind: "delete"; path: string }
  | { kind: "rmdir"; path: string };

export const FILE_MODE = 0o644;
export const DIR_MODE = 0o755;

/** Writes to a temporary name beside `path`, syncs, then renames: a reader sees the old or the new file, never half. */
export function writeAtomic(path: string, content: string) {
  const tmp = join(dirname(path), `.${basename(path)}.ociregistry-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
  const fd = openSync(tmp, "wx", FILE_MODE);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  // The umask may have taken bits away; containerd (root) only needs to read, others may too.
  chmodSync(tmp, FILE_MODE);
  renameSync(tmp, path);
}

export function applyChanges(changes: Change[]) {
  for (const c of changes) {
    if (c.kind === "mkdir") {
      mkdirSync(c.path, { recursive: true, mode: DIR_MODE });
      chmodSync(c.path, DIR_MODE);
    } else if (c.kind === "write") writeAtomic(c.path, c.content);
    else if (c.kind === "delete") rmSync(c.path);
    else rmdirSync(c.path);
  }
}

/** One line per change, for the log and for --dry-run (which adds the content). */
export function describeChange(c: Change, dryRun: boolean): string {
  const verb = { mkdir: "create directory", write: "write", delete: "remove", rmdir: "remove directory" }[c.kind];
  const line = `${dryRun ? `would ${verb}` : verb.replace(/^(create|write|remove)/, (v) => ({ create: "created", write: "wrote", remove: "removed" })[v]!)} ${c.path}`;
  return dryRun && c.kind === "write" ? `${line}:\n${c.content.replace(/^/gm, "  | ")}` : line;
}

/** The text of a file, or null when there is none; anything but a regular file is refused. */
export function readIfFile(path: string): string | null {
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  // lstat: a symbolic link is refused, not followed (this runs as root on the node).
  if (!st.isFile()) throw new NodeConfigRefused(path, "is not a regular file (a link or a directory?); move it away and run again");
  if (st.size > 1024 * 1024) throw new NodeConfigRefused(path, `is ${st.size} bytes, more than any configuration file should be; check it by hand`);
  return readFileSync(path, "utf8");
}

/** Whether `path` is a directory (false when missing); a link or a file there is refused. */
export function isDir(path: string): boolean {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isDirectory()) throw new NodeConfigRefused(path, "is not a directory (a link or a file?); move it away and run again");
  return true;
}
