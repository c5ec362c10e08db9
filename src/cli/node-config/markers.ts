// The marked block configure-node puts in a TOML file (hosts.toml, containerd's config.toml): the
// lines between its begin and end comments are its own, everything else is left byte for byte.
import { NodeConfigRefused } from "./changes.ts";

const BEGIN = /^# >>> ociregistry configure-node(?: \(created: ([a-z, ]+)\))? >>>$/;
const END = "# <<< ociregistry configure-node <<<";

/** What configure-node created along with the block, so --remove can take that out too. */
export interface Created {
  file: boolean;
  directory: boolean;
}

export interface Found {
  /** The file without the block. */
  rest: string;
  /** Where the block was (an offset into `rest`). */
  at: number;
  block: string;
  created: Created;
}

export function renderBlock(body: string, created: Created): string {
  const what = [created.file && "file", created.directory && "directory"].filter(Boolean).join(", ");
  return `# >>> ociregistry configure-node${what ? ` (created: ${what})` : ""} >>>\n` +
    "# Written by `ociregistry configure-node`; `ociregistry configure-node --remove` takes this block out.\n" +
    `${body.endsWith("\n") ? body : `${body}\n`}${END}\n`;
}

/** The block in `text`, or null; a begin without an end (or two blocks) is refused, naming `path`. */
export function findBlock(path: string, text: string): Found | null {
  const lines = text.split(/(?<=\n)/);
  let begin = -1;
  let end = -1;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r?\n$/, "");
    if (BEGIN.test(line)) {
      if (begin >= 0) throw new NodeConfigRefused(path, "holds two ociregistry configure-node blocks; delete one by hand");
      begin = i;
    } else if (line === END && begin >= 0 && end < 0) end = i;
  }
  if (begin < 0) return null;
  if (end < 0 || !lines[end]!.endsWith("\n")) throw new NodeConfigRefused(path, `has an ociregistry configure-node block without its end line "${END}"; fix the file by hand`);
  const what = BEGIN.exec(lines[begin]!.replace(/\r?\n$/, ""))![1] ?? "";
  const before = lines.slice(0, begin).join("");
  return {
    rest: before + lines.slice(end + 1).join(""),
    at: before.length,
    block: lines.slice(begin, end + 1).join(""),
    created: { file: what.includes("file"), directory: what.includes("directory") },
  };
}

/** Parses TOML, turning a syntax error into a refusal that names the file. */
export function parseToml(path: string, text: string): Record<string, unknown> {
  try {
    return Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new NodeConfigRefused(path, `is not valid TOML (${(err as Error).message}); fix it first`);
  }
}

/** Deep equality of parsed TOML values (plain objects, arrays, scalars). */
export function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
}

function sorted(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sorted);
  if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b)).map(([k, x]) => [k, sorted(x)]));
  return v;
}
