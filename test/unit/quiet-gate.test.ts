// The quiet gate S3 uploads wait at in `serve`: it lets the work go once nothing has been in flight
// for the grace time, never later than the longest wait however busy, at once without a probe or
// once opened (a stop), and a probe that throws holds nothing back.
import { describe, expect, test } from "bun:test";
import { createQuietGate } from "../../src/lib/quiet.ts";

/** When `p` settled, in ms after the call (null: not within `ms`). */
async function settledAfter(p: Promise<void>, ms: number): Promise<number | null> {
  const t0 = performance.now();
  const done = await Promise.race([p.then(() => true), Bun.sleep(ms).then(() => false)]);
  return done ? performance.now() - t0 : null;
}

describe("quiet gate", () => {
  test("without a probe (no listener: load, tests) nothing waits", async () => {
    const gate = createQuietGate({ graceMs: 1000, maxWaitMs: 5000 });
    expect(await settledAfter(gate.wait(), 50)).not.toBeNull();
  });

  test("waits while a request is in flight, then the grace time after the last one", async () => {
    let busy = true;
    const gate = createQuietGate({ graceMs: 60, maxWaitMs: 5000, pollMs: 5 });
    gate.watch(() => busy);
    const waits = [gate.wait(), gate.wait()];
    const all = Promise.all(waits).then(() => {});
    expect(await settledAfter(all, 150)).toBeNull(); // busy: held
    busy = false;
    const after = await settledAfter(all, 1000);
    expect(after).not.toBeNull();
    expect(after!).toBeGreaterThanOrEqual(55); // the grace time, not at once
  });

  test("a request within the grace time starts it again", async () => {
    let busy = false;
    const gate = createQuietGate({ graceMs: 80, maxWaitMs: 5000, pollMs: 5 });
    gate.watch(() => busy);
    const p = gate.wait();
    await Bun.sleep(40);
    busy = true;
    await Bun.sleep(20);
    busy = false;
    const t0 = performance.now();
    await p;
    expect(performance.now() - t0).toBeGreaterThanOrEqual(70);
  });

  test("never longer than the longest wait, however busy", async () => {
    const gate = createQuietGate({ graceMs: 10, maxWaitMs: 120, pollMs: 5 });
    gate.watch(() => true);
    const after = await settledAfter(gate.wait(), 2000);
    expect(after).not.toBeNull();
    expect(after!).toBeGreaterThanOrEqual(110);
    expect(after!).toBeLessThan(1000);
  });

  test("open (a stop) lets what waits go at once, and later waits too", async () => {
    const gate = createQuietGate({ graceMs: 1000, maxWaitMs: 60_000, pollMs: 5 });
    gate.watch(() => true);
    const p = gate.wait();
    expect(await settledAfter(p, 50)).toBeNull();
    gate.open();
    expect(await settledAfter(p, 20)).not.toBeNull();
    expect(await settledAfter(gate.wait(), 20)).not.toBeNull();
  });

  test("a probe that throws holds nothing back", async () => {
    const gate = createQuietGate({ graceMs: 20, maxWaitMs: 60_000, pollMs: 5 });
    gate.watch(() => {
      throw new Error("listener gone");
    });
    expect(await settledAfter(gate.wait(), 500)).not.toBeNull();
  });
});
