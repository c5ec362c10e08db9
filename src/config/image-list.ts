// Image list files for `load` / `--preload-images`: one reference per line, blank lines and
// `#` comments allowed. Every malformed line is reported, with its number, before anything runs.
import { readFileSync } from "node:fs";
import { parseImageReference, type ImageReference } from "../oci/reference.ts";
import { ConfigError } from "./error.ts";

/** Reads and parses an image list file; a missing file or a bad line is a ConfigError naming it. */
export function readImageList(file: string, key = file): ImageReference[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read the image list ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return parseImageList(text, `image list ${file}`);
}

export function parseImageList(text: string, source: string): ImageReference[] {
  const refs: ImageReference[] = [];
  const problems: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/\s+#.*$/, "").trim();
    if (!line || line.startsWith("#")) return;
    const r = parseImageReference(line);
    if (r.ok) refs.push(r.ref);
    else problems.push(`line ${i + 1}: "${line}" is not an image reference (${r.reason})`);
  });
  if (problems.length) throw new ConfigError(source, problems.join("\n  "));
  return refs;
}
