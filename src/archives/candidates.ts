// Which archive files may answer a request for `<name>:<reference>` (or `<name>@<digest>`), in the
// order they are tried, and which image of an archive a reference names. Pure: the files come
// from the last directory scan, so nothing here touches the disk or builds a path from a request.
import { isTag } from "../oci/names.ts";
import { parseImageReference, type Target } from "../oci/reference.ts";
import type { ArchiveImage } from "./layout.ts";
import type { ArchiveListing } from "./scan.ts";

export interface Candidate {
  /** Relative to the archives directory. */
  path: string;
  /**
   * `named`: the file name gives the reference (`<name>/<ref>.oci`, `<name>:<ref>.oci`);
   * `glob`: found by `<name>/*.oci` or `<name>:*.oci`; `exact`: `<name>.oci`.
   */
  kind: "named" | "glob" | "exact";
}

/**
 * The names a request is looked up under, in order: `<upstream>/<repository>`, `<repository>`,
 * and for Docker Hub's official images (`library/x`) also `x`.
 */
export function namesOf(t: Target): string[] {
  const names = [`${t.upstream}/${t.repository}`, t.repository];
  if (t.upstream === "docker.io" && t.repository.startsWith("library/")) names.push(t.repository.slice("library/".length));
  return names;
}

/**
 * For each name: `<name>/<reference>.oci`, `<name>/*.oci`, `<name>:<reference>.oci`,
 * `<name>:*.oci`, `<name>.oci` (globs in name order). A digest (reference null) skips the
 * reference-named forms, which the globs include anyway.
 */
export function candidates(listing: ArchiveListing, target: Target, reference: string | null): Candidate[] {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  const add = (dir: string, file: string, kind: Candidate["kind"]) => {
    const path = dir ? `${dir}/${file}` : file;
    if (!seen.has(path)) {
      seen.add(path);
      out.push({ path, kind });
    }
  };
  for (const name of namesOf(target)) {
    const slash = name.lastIndexOf("/");
    const dir = slash < 0 ? "" : name.slice(0, slash);
    const base = name.slice(slash + 1);
    const inside = listing.get(name) ?? [];
    const beside = listing.get(dir) ?? [];
    if (reference !== null && inside.includes(`${reference}.oci`)) add(name, `${reference}.oci`, "named");
    for (const f of inside) add(name, f, "glob");
    if (reference !== null && beside.includes(`${base}:${reference}.oci`)) add(dir, `${base}:${reference}.oci`, "named");
    for (const f of beside) if (f.startsWith(`${base}:`)) add(dir, f, "glob");
    if (beside.includes(`${base}.oci`)) add(dir, `${base}.oci`, "exact");
  }
  return out;
}

/**
 * How well a ref.name annotation names `reference` of `target`: 2 when it is the bare tag or a
 * full reference to this upstream and repository (`export --format oci` writes those), 1 when a
 * full reference to this repository under another host (podman save writes
 * `localhost/team/app:1.4` for `team/app:1.4`), 0 otherwise.
 */
export function annotationMatch(annotation: string, target: Target, reference: string): 0 | 1 | 2 {
  if (annotation === reference) return 2;
  if (isTag(annotation)) return 0;
  const r = parseImageReference(annotation);
  if (!r.ok || r.ref.reference !== reference || r.ref.repository !== target.repository) return 0;
  return r.ref.upstream === target.upstream ? 2 : 1;
}

/** The tag an annotation gives (`1.4` of `localhost/team/app:1.4`), for listings. */
export function annotationTag(annotation: string): string {
  if (isTag(annotation)) return annotation;
  const r = parseImageReference(annotation);
  return r.ok ? r.ref.reference : annotation;
}

/**
 * The image of an archive that answers `reference`: the one whose ref.name annotation matches best;
 * failing that, the only image of a file named for the reference (whatever its annotation), or
 * the only, unannotated, image of `<name>.oci`. A file found by a glob answers by annotation
 * only, so `app/v1.oci` is never served as `app:v3`.
 */
export function chooseImage(images: ArchiveImage[], c: Candidate, target: Target, reference: string): ArchiveImage | null {
  let best: ArchiveImage | null = null;
  let score = 0;
  for (const i of images) {
    const s = i.refName === null ? 0 : annotationMatch(i.refName, target, reference);
    if (s > score) [best, score] = [i, s];
  }
  if (best) return best;
  const only = images.length === 1 ? images[0]! : null;
  if (only && (c.kind === "named" || (c.kind === "exact" && only.refName === null))) return only;
  return null;
}
