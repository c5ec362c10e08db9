// The configuration reference table (key, default, meaning), made from the schema: one row per
// key, sections and lists of sections opened into their keys (`registries[].tls.ca`).
import * as v from "valibot";
import { flagName, keyDoc } from "./flags.ts";
import { entries } from "./schema.ts";

export interface Row { key: string; default: string; meaning: string }

type Node = v.GenericSchema & { type: string; wrapped?: Node; pipe?: Node[]; item?: Node; entries?: Record<string, Node> };

/** The schema under optional and pipes: what decides whether a key is a section, a list or a value. */
function core(s: Node): Node {
  if (s.type === "optional") return core(s.wrapped!);
  if (s.pipe && s.pipe[0] !== s) return core(s.pipe[0]!);
  return s;
}

function shownDefault(s: Node, documented?: string): string {
  if (documented !== undefined) return documented;
  const d = v.getDefault(s as never) as unknown;
  if (d === undefined || (Array.isArray(d) && d.length === 0)) return "—";
  return `\`${String(d)}\``;
}

function rows(list: Record<string, Node>, prefix: string, top: boolean, out: Row[]) {
  for (const [name, schema] of Object.entries(list)) {
    const key = `${prefix}${name}`;
    const c = core(schema);
    const section = c.type === "strict_object" ? c : c.type === "array" && core(c.item!).type === "strict_object" ? core(c.item!) : undefined;
    if (section) {
      rows(section.entries!, `${key}${c.type === "array" ? "[]" : ""}.`, false, out);
      continue;
    }
    const d = keyDoc(schema);
    const flag = top && d.flag ? `; also \`${flagName(name)}\`` : "";
    out.push({ key: `\`${key}\``, default: shownDefault(schema, d.default), meaning: `${d.description ?? ""}${flag}` });
  }
}

export function configRows(): Row[] {
  const out: Row[] = [];
  rows(entries as unknown as Record<string, Node>, "", true, out);
  return out;
}

/** The table as Markdown. */
export function configTable(): string {
  const esc = (s: string) => s.replaceAll("|", "\\|");
  return ["| key | default | meaning |", "|---|---|---|", ...configRows().map((r) => `| ${r.key} | ${esc(r.default)} | ${esc(r.meaning)} |`)].join("\n");
}
