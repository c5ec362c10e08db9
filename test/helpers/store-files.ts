// Looking at a store's files from a test: temp files are in per-process directories under tmp/.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Every file (not directory) under the store's tmp/, as paths relative to it. */
export function tempFiles(storeRoot: string): string[] {
  const tmp = join(storeRoot, "tmp");
  try {
    return (readdirSync(tmp, { recursive: true }) as string[]).filter((f) => statSync(join(tmp, f)).isFile());
  } catch {
    return [];
  }
}

/** Size of the largest temp file, for waiting until a download is under way. */
export function largestTempFile(storeRoot: string): number {
  return Math.max(0, ...tempFiles(storeRoot).map((f) => statSync(join(storeRoot, "tmp", f)).size));
}
