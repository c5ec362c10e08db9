// The sweep of dead replicas' state files: stale download leases and downloads files go, live
// ones (renewed, refreshed, or another version's unreadable ones) stay.
import { expect, test } from "bun:test";
import { createFlightLeases, flightName, FLIGHTS_DIR } from "../../src/cache/flight-leases.ts";
import { REPLICAS_DIR } from "../../src/cache/replicas.ts";
import { STALE_AFTER_MS, sweepStaleState } from "../../src/cache/state-sweep.ts";
import { createMemoryStore } from "../../src/store/memory.ts";
import type { Store } from "../../src/store/types.ts";

const enc = (v: unknown) => new TextEncoder().encode(typeof v === "string" ? v : `${JSON.stringify(v)}\n`);
const names = async (store: Store, dir: string) => {
  const out: string[] = [];
  for await (const n of store.listState(dir)) out.push(n);
  return out.sort();
};

test("a dead replica's lease and downloads file are removed once stale; live ones and unreadable ones stay", async () => {
  let t = Date.now();
  const store: Store = { ...createMemoryStore(() => t), shared: true };
  const digest = `sha256:${"a".repeat(64)}`;
  // A replica claimed a download, published it, and died (nothing renews or removes them).
  const dead = createFlightLeases(store, { self: () => "http://10.0.0.1:8080", now: () => t, warn: () => {} });
  const claim = await dead.claim("docker.io", digest);
  expect(claim.kind).toBe("owner");
  await store.writeState(`${REPLICAS_DIR}/dead.json`, enc({ owner: "dead", at: t, digests: [digest] }));
  await store.writeState(`${FLIGHTS_DIR}/other-version.json`, enc("not json"));

  // Minutes later, within the grace: nothing goes (a slow replica's lease may still be taken over).
  t += STALE_AFTER_MS / 2;
  expect(await sweepStaleState(store, t)).toBe(0);

  // Another replica is alive: its fresh downloads file stays.
  t += STALE_AFTER_MS;
  await store.writeState(`${REPLICAS_DIR}/alive.json`, enc({ owner: "alive", at: t, digests: [] }));
  expect(await sweepStaleState(store, t)).toBe(2);
  expect(await names(store, REPLICAS_DIR)).toEqual(["alive.json"]);
  expect(await names(store, FLIGHTS_DIR)).toEqual(["other-version.json"]);
  expect(await store.readState(flightName("docker.io", digest))).toBeNull();
  // Held leases stop renewing when released (the dead replica's timer would otherwise run on).
  if (claim.kind === "owner") await claim.lease.release();
});

test("a lease renewed by its owner is never swept, however old its first write", async () => {
  let t = Date.now();
  const store: Store = { ...createMemoryStore(() => t), shared: true };
  const name = `${FLIGHTS_DIR}/renewed.json`;
  await store.writeState(name, enc({ owner: "x", url: "http://10.0.0.2:8080", expires: new Date(t + 15_000).toISOString() }));
  t += STALE_AFTER_MS * 3;
  // Renewed just now (as the owner's timer does every 5 s).
  await store.writeState(name, enc({ owner: "x", url: "http://10.0.0.2:8080", expires: new Date(t + 15_000).toISOString() }));
  expect(await sweepStaleState(store, t)).toBe(0);
  expect(await store.readState(name)).not.toBeNull();
});
