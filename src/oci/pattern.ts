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
  if (/\*{3,}/.test(p)) return `an image pattern has at most two * in a row (** crosses path components): ${JSON.stringify(p)}`;
  return null;
}

/** Something that tells whether an image name matches (a compiled pattern; a RegExp also fits). */
export interface ImagePattern {
  test(name: string): boolean;
}

type Token = { lit: string } | "sep" | "one" | "any1" | "star" | "dstar";

/**
 * A compiled pattern. Matching is a table over (pattern position, name position): linear in
 * their product whatever the wildcards, never the backtracking a RegExp does on a name a client
 * chose.
 */
export function imagePattern(p: string): ImagePattern {
  const slash = p.lastIndexOf("/");
  const sep = p.slice(slash + 1).search(/[:@]/);
  const tagAt = sep < 0 ? -1 : slash + 1 + sep;
  const tokens: Token[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (i === tagAt) tokens.push("sep");
    else if (c === "*" && p[i + 1] === "*") tokens.push("dstar"), i++;
    else if (c === "*") tokens.push("star");
    else if (c === "?") tokens.push("one");
    else tokens.push({ lit: c });
  }
  // No tag in the pattern: any tag or digest.
  if (tagAt < 0) tokens.push("sep", "any1", "dstar");
  return { test: (name) => matches(tokens, name) };
}

function matches(tokens: readonly Token[], name: string): boolean {
  // at[j]: the first j tokens can match the name read so far.
  let at = new Uint8Array(tokens.length + 1);
  at[0] = 1;
  const closeStars = (row: Uint8Array) => {
    for (let j = 0; j < tokens.length; j++) if (row[j] && (tokens[j] === "star" || tokens[j] === "dstar")) row[j + 1] = 1;
  };
  closeStars(at);
  for (const c of name) {
    const next = new Uint8Array(tokens.length + 1);
    for (let j = 0; j < tokens.length; j++) {
      if (!at[j]) continue;
      const t = tokens[j]!;
      if (t === "star") {
        if (c !== "/") next[j] = 1;
      } else if (t === "dstar") next[j] = 1;
      else if (t === "sep") {
        if (c === ":" || c === "@") next[j + 1] = 1;
      } else if (t === "one") {
        if (c !== "/") next[j + 1] = 1;
      } else if (t === "any1") next[j + 1] = 1;
      else if (t.lit === c) next[j + 1] = 1;
    }
    closeStars(next);
    at = next;
  }
  return at[tokens.length] === 1;
}

/** Whether any of the patterns matches an image name. */
export function matchesAny(patterns: readonly ImagePattern[], name: string): boolean {
  for (const p of patterns) if (p.test(name)) return true;
  return false;
}
