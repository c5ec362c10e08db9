// The idle trim: memory is given back once requests stop, never while they run, at most once a
// gap, and only after a burst (health probes or an idle cache cause no collection).
import { describe, expect, test } from "bun:test";
import { createIdleTrim, TRIM_GAP_MS, TRIM_MIN_REQUESTS, TRIM_QUIET_MS } from "../../src/server/idle-trim.ts";

function setup() {
  const counts = { requests: 0, downloadsInFlight: 0 };
  let t = 1_000_000;
  let trims = 0;
  const trimmer = createIdleTrim(counts, { now: () => t, trim: () => trims++ });
  return { counts, trimmer, advance: (ms: number) => (t += ms), trims: () => trims };
}

describe("idle trim", () => {
  test("trims once after start when quiet, then not again without requests", () => {
    const s = setup();
    expect(s.trimmer.check()).toBe(false); // not quiet long enough yet
    s.advance(TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(true);
    for (let i = 0; i < 10; i++) {
      s.advance(TRIM_GAP_MS);
      expect(s.trimmer.check()).toBe(false);
    }
    expect(s.trims()).toBe(1);
  });

  test("never while requests keep coming or a download runs", () => {
    const s = setup();
    s.advance(TRIM_QUIET_MS);
    s.trimmer.check();
    for (let i = 0; i < 100; i++) {
      s.advance(TRIM_GAP_MS);
      s.counts.requests += TRIM_MIN_REQUESTS;
      expect(s.trimmer.check()).toBe(false);
    }
    s.counts.downloadsInFlight = 1;
    s.advance(TRIM_GAP_MS);
    expect(s.trimmer.check()).toBe(false);
    s.advance(TRIM_GAP_MS);
    expect(s.trimmer.check()).toBe(false);
    s.counts.downloadsInFlight = 0;
    s.advance(TRIM_QUIET_MS - 1);
    expect(s.trimmer.check()).toBe(false);
    s.advance(1);
    expect(s.trimmer.check()).toBe(true);
    expect(s.trims()).toBe(2);
  });

  test("a trickle of requests (health probes) causes no trim", () => {
    const s = setup();
    s.advance(TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(true);
    for (let i = 0; i < TRIM_MIN_REQUESTS - 1; i++) {
      s.counts.requests++;
      s.trimmer.check();
      s.advance(TRIM_GAP_MS);
      expect(s.trimmer.check()).toBe(false);
    }
    s.counts.requests++;
    s.trimmer.check();
    s.advance(TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(true);
  });

  test("at most once per gap, however many bursts end within it", () => {
    const s = setup();
    s.advance(TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(true);
    s.counts.requests += TRIM_MIN_REQUESTS;
    s.trimmer.check();
    s.advance(TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(false); // quiet, but the last trim was just now
    s.advance(TRIM_GAP_MS - TRIM_QUIET_MS);
    expect(s.trimmer.check()).toBe(true); // still owed: the burst since the last trim
    expect(s.trims()).toBe(2);
  });
});
