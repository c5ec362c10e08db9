// The quiet gate S3 uploads wait at in `serve`: it lets the work go once nothing has been in flight
// for the grace time, never later than the longest wait however busy, at once without a probe or
// once opened (a stop), and a probe that throws holds nothing back. The gate's clock is a fake one
// moved by the test; only its polls run on real timers (every 2 ms), so no result depends on timing.
import { describe, expect, test } from "bun:test";
import { createQuietGate, type QuietOptions } from "../../src/lib/quiet.ts";

function clocked(o: QuietOptions) {
  let t = 0;
  const gate = createQuietGate({ ...o, pollMs: 2, now: () => t });
  return { gate, advance: (ms: number) => void (t += ms) };
}
/** Time for the gate to poll several times. */
const polls = () => Bun.sleep(25);
/** A wait whose settling can be looked at. */
function watched(p: Promise<void>) {
  const w = { done: false };
  void p.then(() => (w.done = true));
  return w;
}

describe("quiet gate", () => {
  test("without a probe (no listener: load, tests) nothing waits", async () => {
    const { gate } = clocked({ graceMs: 1000, maxWaitMs: 5000 });
    const w = watched(gate.wait());
    await Bun.sleep(0);
    expect(w.done).toBe(true);
  });

  test("waits while a request is in flight, then the grace time after the last one", async () => {
    let busy = true;
    const { gate, advance } = clocked({ graceMs: 60, maxWaitMs: 5000 });
    gate.watch(() => busy);
    const [a, b] = [watched(gate.wait()), watched(gate.wait())];
    await polls();
    advance(1000);
    await polls();
    expect(a.done || b.done).toBe(false); // busy: held
    busy = false;
    await polls(); // quiet from t = 1000
    advance(59);
    await polls();
    expect(a.done || b.done).toBe(false); // not the grace time yet
    advance(1);
    await polls();
    expect(a.done && b.done).toBe(true);
  });

  test("a request within the grace time starts it again", async () => {
    let busy = false;
    const { gate, advance } = clocked({ graceMs: 80, maxWaitMs: 5000 });
    gate.watch(() => busy);
    const w = watched(gate.wait());
    await polls(); // quiet from t = 0
    advance(40);
    busy = true;
    await polls();
    busy = false;
    await polls(); // quiet again from t = 40
    advance(79);
    await polls();
    expect(w.done).toBe(false); // 119: 79 ms of quiet
    advance(1);
    await polls();
    expect(w.done).toBe(true);
  });

  test("never longer than the longest wait, however busy", async () => {
    const { gate, advance } = clocked({ graceMs: 10, maxWaitMs: 120 });
    gate.watch(() => true);
    const w = watched(gate.wait());
    advance(119);
    await polls();
    expect(w.done).toBe(false);
    advance(1);
    await polls();
    expect(w.done).toBe(true);
  });

  test("open (a stop) lets what waits go at once, and later waits too", async () => {
    const { gate } = clocked({ graceMs: 1000, maxWaitMs: 60_000 });
    gate.watch(() => true);
    const w = watched(gate.wait());
    await polls();
    expect(w.done).toBe(false);
    gate.open();
    await Bun.sleep(0);
    expect(w.done).toBe(true);
    const later = watched(gate.wait());
    await Bun.sleep(0);
    expect(later.done).toBe(true);
  });

  test("a probe that throws holds nothing back", async () => {
    const { gate, advance } = clocked({ graceMs: 20, maxWaitMs: 60_000 });
    gate.watch(() => {
      throw new Error("listener gone");
    });
    const w = watched(gate.wait());
    await polls();
    advance(20);
    await polls();
    expect(w.done).toBe(true);
  });
});
