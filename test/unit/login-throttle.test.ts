// Failed logins (issue 18 item 4): the per-address and per-user throttle, the bcrypt queue that
// lets clean clients go first, and the basic-auth check that consults both before any bcrypt.
import { describe, expect, test } from "bun:test";
import { createBasicAuth } from "../../src/registry/auth.ts";
import { RegistryError } from "../../src/registry/errors.ts";
import { clientKey, createLoginThrottle } from "../../src/registry/throttle.ts";
import { createVerifyQueue, VerifyBusy } from "../../src/registry/verify-queue.ts";
import { createAdmin } from "../../src/server/admin.ts";

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;
const status = (p: Promise<unknown>) => p.then(() => 200, (e: RegistryError) => e.status);

describe("login throttle", () => {
  test("five failures are free, then each further one doubles the lock up to the cap", () => {
    let now = 0;
    const t = createLoginThrottle({ now: () => now, maxLockMs: 10_000 });
    const fail = () => {
      const end = t.begin(["a"]);
      if (typeof end !== "function") throw new Error(`refused: ${end.retryAfterMs}`);
      end("failed");
    };
    for (let i = 0; i < 4; i++) fail();
    expect(t.refusal("a")).toBeNull();
    const locks: number[] = [];
    for (let i = 0; i < 6; i++) {
      fail();
      locks.push(t.refusal("a")!.retryAfterMs);
      now += locks.at(-1)!;
    }
    expect(locks).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000]);
  });

  test("a success resets the keys asked to, not the others", () => {
    const t = createLoginThrottle();
    for (let i = 0; i < 5; i++) (t.begin(["addr", "user"], ["user"]) as (e: "failed") => void)("failed");
    expect(t.refusal("user")).not.toBeNull();
    const t2 = createLoginThrottle();
    for (let i = 0; i < 3; i++) (t2.begin(["addr", "user"], ["user"]) as (e: "failed") => void)("failed");
    (t2.begin(["addr", "user"], ["user"]) as (e: "ok") => void)("ok");
    expect(t2.clean("user")).toBe(true);
    expect(t2.clean("addr")).toBe(false);
  });

  test("attempts in flight count: a burst of 64 gets 2 through", () => {
    const t = createLoginThrottle();
    const through = Array.from({ length: 64 }, () => t.begin(["a"])).filter((r) => typeof r === "function");
    expect(through).toHaveLength(2);
  });

  test("failures are forgotten an hour after the last; the map stays bounded", () => {
    let now = 0;
    const t = createLoginThrottle({ now: () => now, maxKeys: 100 });
    for (let i = 0; i < 1000; i++) t.fail(`k${i}`);
    expect(t.size).toBe(100);
    now += 61 * 60_000;
    expect(t.clean("k999")).toBe(true);
  });

  test("client keys: IPv4 as is, IPv4-mapped as IPv4, IPv6 by its /64", () => {
    expect(clientKey("127.0.0.1")).toBe("127.0.0.1");
    expect(clientKey("::ffff:10.1.2.3")).toBe("10.1.2.3");
    expect(clientKey("2001:db8:0:1::5")).toBe("2001:db8:0:1::/64");
    expect(clientKey("2001:0db8:0000:0001:ffff:1:2:3")).toBe("2001:db8:0:1::/64");
    expect(clientKey("::1")).toBe("0:0:0:0::/64");
    expect(clientKey(undefined)).toBe("unknown");
  });
});

describe("verify queue", () => {
  test("runs two at a time, clean clients first (newest first), and refuses when its queue is full", async () => {
    const q = createVerifyQueue({ concurrency: 2, maxOther: 2 });
    const order: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const job = (name: string) => async () => {
      await gate;
      order.push(name);
    };
    const all = [q.run(false, job("r1")), q.run(false, job("r2")), q.run(false, job("o1")), q.run(false, job("o2")), q.run(true, job("c1")), q.run(true, job("c2"))];
    expect(await q.run(false, job("o3")).catch((e) => e)).toBeInstanceOf(VerifyBusy);
    release();
    await Promise.all(all);
    // Clean clients first, the newest of them first; the others in order.
    expect(order.slice(2)).toEqual(["c2", "c1", "o1", "o2"]);
  });
});

describe("basic auth under attack", () => {
  test("after a few wrong passwords from an address, 429 with Retry-After and no bcrypt at all", async () => {
    const hash = await Bun.password.hash("right", { algorithm: "bcrypt", cost: 4 });
    let hashed = 0;
    const auth = createBasicAuth([{ user: "alice", password: hash }], Date.now, (p, h) => (hashed++, Bun.password.verify(p, h, "bcrypt")));
    for (let i = 0; i < 5; i++) expect(await status(auth.check(basic("alice", `wrong${i}`), "10.0.0.1"))).toBe(401);
    const before = hashed;
    const err = await auth.check(basic("bob", "x"), "10.0.0.1").catch((e) => e);
    expect(err).toBeInstanceOf(RegistryError);
    expect(err.status).toBe(429);
    expect(err.code).toBe("TOOMANYREQUESTS");
    expect(Number(err.headers["Retry-After"])).toBeGreaterThanOrEqual(1);
    expect(hashed).toBe(before);
  });

  test("a user name guessed from many addresses locks; its login from a minute ago still works", async () => {
    const hash = await Bun.password.hash("right", { algorithm: "bcrypt", cost: 4 });
    const auth = createBasicAuth([{ user: "alice", password: hash }]);
    await auth.check(basic("alice", "right"), "10.0.0.9");
    for (let i = 0; i < 5; i++) await auth.check(basic("alice", "wrong"), `10.0.1.${i}`).catch(() => {});
    expect(await status(auth.check(basic("alice", "wrong"), "10.0.2.1"))).toBe(429);
    expect(await status(auth.check(basic("alice", "right"), "10.0.0.9"))).toBe(200);
  });

  test("64 parallel wrong passwords cost at most a few bcrypt runs, and a right login meanwhile is quick", async () => {
    const hash = await Bun.password.hash("right", { algorithm: "bcrypt", cost: 10 });
    let hashed = 0;
    const auth = createBasicAuth([{ user: "alice", password: hash }, { user: "bob", password: hash }], Date.now, (p, h) => (hashed++, Bun.password.verify(p, h, "bcrypt")));
    const flood = Array.from({ length: 64 }, (_, i) => status(auth.check(basic("bob", `wrong${i}`), "10.9.9.9")));
    const t0 = performance.now();
    expect(await status(auth.check(basic("alice", "right"), "10.0.0.2"))).toBe(200);
    const ms = performance.now() - t0;
    const codes = await Promise.all(flood);
    expect(codes.filter((c) => c === 429).length).toBeGreaterThanOrEqual(60);
    expect(hashed).toBeLessThanOrEqual(4);
    expect(ms).toBeLessThan(1000);
  });
});

describe("admin token", () => {
  test("wrong tokens from one address get 429 after a few; a request without a token is not a guess", async () => {
    const admin = createAdmin({ token: "s3cret-token", cache: {} as never, store: {} as never, status: () => ({ ok: true }) });
    const req = (token?: string) => new Request("http://cache.test/api/v1/status", token ? { headers: { Authorization: `Bearer ${token}` } } : {});
    for (let i = 0; i < 10; i++) expect((await admin.handle(req(), "status", "10.0.0.1")).status).toBe(401);
    expect((await admin.handle(req("s3cret-token"), "status", "10.0.0.1")).status).toBe(200);
    const codes = [];
    for (let i = 0; i < 8; i++) codes.push((await admin.handle(req(`guess${i}`), "status", "10.0.0.1")).status);
    expect(codes.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
    const locked = await admin.handle(req("s3cret-token"), "status", "10.0.0.1");
    expect(locked.status).toBe(429);
    expect(Number(locked.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect((await admin.handle(req("s3cret-token"), "status", "10.0.0.2")).status).toBe(200);
  });
});
