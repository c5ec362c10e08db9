// k3s / RKE2 `registries.yaml`: a mirror entry per registry (`"*"` for all) naming the cache as
// the endpoint; k3s tries the upstream itself when the endpoints fail. YAML has no block we could
// mark, so a manifest beside the file records what it was before and what configure-node wrote.
import { createHash } from "node:crypto";
import { dirname, join } from "node:path";
import { isMap, parseDocument } from "yaml";
import { NodeConfigRefused, readIfFile, type Change } from "./changes.ts";
import { CA_NAME, planCa } from "./hosts.ts";

export const K3S_ALL = "*";

interface Manifest {
  /** The file before configure-node first wrote it (null: there was none). */
  original: string | null;
  /** sha256 of what it wrote; a file with another hash was changed since. */
  written: string;
}

export const manifestPath = (file: string) => `${file}.ociregistry-configure-node.json`;
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");

function readManifest(file: string): Manifest | null {
  const text = readIfFile(manifestPath(file));
  if (text === null) return null;
  try {
    const m = JSON.parse(text) as Manifest;
    if ((m.original === null || typeof m.original === "string") && typeof m.written === "string") return m;
  } catch { /* reported below */ }
  throw new NodeConfigRefused(manifestPath(file), "is not a manifest configure-node wrote; move it away");
}

/** The file as configure-node left it, or a refusal when someone changed it since. */
function current(file: string): { text: string | null; manifest: Manifest | null } {
  const text = readIfFile(file);
  const manifest = readManifest(file);
  if (manifest && (text === null || sha256(text) !== manifest.written)) {
    throw new NodeConfigRefused(file, `changed after configure-node wrote it (its previous content is in ${manifestPath(file)}); run with --remove after putting back what it wrote, or edit both by hand`);
  }
  return { text, manifest };
}

/** The registries.yaml that sends `registries` through the mirror, built on the file as it was before configure-node. */
export function k3sYaml(file: string, base: string | null, registries: string[], mirror: string, caPath: string | null): string {
  const doc = parseDocument(base ?? "");
  if (doc.errors.length) throw new NodeConfigRefused(file, `is not valid YAML (${doc.errors[0]!.message}); fix it first`);
  if (doc.contents !== null && !isMap(doc.contents)) throw new NodeConfigRefused(file, "is not a YAML mapping; fix it first");
  for (const r of registries) {
    if (doc.hasIn(["mirrors", r])) throw new NodeConfigRefused(file, `already has mirrors."${r}" that configure-node did not write; remove it or leave ${r} out`);
    doc.setIn(["mirrors", r], { endpoint: [mirror] });
  }
  const mirrorHost = new URL(mirror).host;
  if (caPath) {
    if (doc.hasIn(["configs", mirrorHost])) throw new NodeConfigRefused(file, `already has configs."${mirrorHost}" that configure-node did not write; remove it or run without --ca`);
    doc.setIn(["configs", mirrorHost], { tls: { ca_file: caPath } });
  }
  const head = base === null ? "# Written by `ociregistry configure-node`; `ociregistry configure-node --k3s FILE --remove` takes it out.\n" : "";
  return head + doc.toString();
}

export function planK3s(file: string, registries: string[], mirror: string, caPem: string | null): Change[] {
  const { text, manifest } = current(file);
  const base = manifest ? manifest.original : text;
  const caPath = join(dirname(file), CA_NAME);
  const next = k3sYaml(file, base, registries, mirror, caPem ? caPath : null);
  const changes: Change[] = [...planCa(caPath, caPem)];
  if (next !== text) {
    changes.push({ kind: "write", path: file, content: next });
    changes.push({ kind: "write", path: manifestPath(file), content: `${JSON.stringify({ original: base, written: sha256(next) } satisfies Manifest, null, 2)}\n` });
  }
  return changes;
}

export function planRemoveK3s(file: string): Change[] {
  const { manifest } = current(file);
  if (!manifest) return [];
  return [
    ...planCa(join(dirname(file), CA_NAME), null),
    manifest.original === null ? { kind: "delete", path: file } : { kind: "write", path: file, content: manifest.original },
    { kind: "delete", path: manifestPath(file) },
  ];
}
