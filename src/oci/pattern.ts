// Image patterns as operators write them (`registry.k8s.io/pause:*`, `docker.io/library/*:*`):
// matched against `upstream/repository:tag` (or `upstream/repository@digest`), the name `list`
// prints. `*` matches within one path component, `**` across components, `?` one character.
// The tag separator also matches `@`, so `pause:*` covers images pinned by digest too, and a
// pattern without a tag means every tag.

/** Why a pattern cannot be used, or null when it can. */
export function imagePatternProblem(p: string): string | null {
  if (!p.trim()) return "an image pattern must not be empty";
  if (/\s/.test(p)) return `an image pattern has no spaces: ${JSON.stringify(p)}`;
  if (!p.includes("/")) return `an image pattern names the upstream and repository (registry.k8s.io/pause:*): ${JSON.stringify(p)}`;
  return null;
}

/** The regular expression a pattern stands for (anchored at both ends). */
export function imagePattern(p: string): RegExp {
  const slash = p.lastIndexOf("/");
  const sep = p.slice(slash + 1).search(/[:@]/);
  const tagAt = sep < 0 ? -1 : slash + 1 + sep;
  let re = "";
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (i === tagAt) re += "[:@]";
    else if (c === "*" && p[i + 1] === "*") (re += ".*"), i++;
    else if (c === "*") re += "[^/]*";
    else if (c === "?") re += "[^/]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  if (tagAt < 0) re += "[:@].+";
  return new RegExp(`^${re}$`);
}

/** Whether any of the patterns matches an image name. */
export function matchesAny(patterns: readonly RegExp[], name: string): boolean {
  for (const p of patterns) if (p.test(name)) return true;
  return false;
}
