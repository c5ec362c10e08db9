// Durations as users write them: `500ms`, `30s`, `5m`, `12h`, `30d`, or a bare number of seconds.

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Milliseconds, or null when the text is not a duration. */
export function parseDuration(text: string | number): number | null {
  if (typeof text === "number") return Number.isFinite(text) && text >= 0 ? text * 1000 : null;
  const m = text.trim().match(/^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/);
  if (!m) return null;
  return Math.round(Number(m[1]) * UNITS[m[2] ?? "s"]!);
}
