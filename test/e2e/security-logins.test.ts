// Failed logins against the compiled binary (issue 18 item 4): wrong passwords and admin tokens
// are throttled per client address (429 with Retry-After), bcrypt runs two at a time with clean
// clients first, so 64 connections of wrong passwords from 64 addresses leave a right login fast,
// and the process stays under 150 MB. Clients bind source addresses 127.0.11.10-73 (the flood) and
// 127.0.11.200-210 (right logins, the admin token); the cache listens on 127.0.0.1.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { request as httpRequest, Agent } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningCache } from "../helpers/binary.ts";
import { watchMemory } from "../helpers/hostile-upstream.ts";
import { waitFor } from "../helpers/procs.ts";
import { cacheFactory } from "../helpers/security.ts";

const TOKEN_ENV = "OCIREG_LOGINS_TOKEN";
const TOKEN = "logins-e2e-admin-token-5d1e";
const USERS = ["alice", "carol", "dave", "erin"];
const MB = 1024 * 1024;

let dir: string;
let caches: ReturnType<typeof cacheFactory>;
let cache: RunningCache;

interface Answer {
  status: number;
  retryAfter: string | undefined;
  ms: number;
}

/** One request from source address `from` (node:http can bind it; fetch cannot). */
function call(from: string, path: string, auth: string | undefined, agent?: Agent, method = "GET"): Promise<Answer> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const req = httpRequest({
      host: "127.0.0.1", port: cache.port, path, method, localAddress: from, agent,
      headers: auth ? { Authorization: auth } : {}, timeout: 20_000,
    }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers["retry-after"], ms: performance.now() - t0 }));
    });
    req.on("error", () => resolve({ status: 0, retryAfter: undefined, ms: performance.now() - t0 }));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "ocireg-sec-logins-"));
  caches = cacheFactory(dir);
  // Cost 10, as `htpasswd -B` makes by default: about 50-100 ms a verification.
  const hash = await Bun.password.hash("right-password", { algorithm: "bcrypt", cost: 10 });
  const users = USERS.map((u) => `  - { user: ${u}, password: "${hash}" }\n`).join("");
  process.env[TOKEN_ENV] = TOKEN;
  ({ cache } = await caches.start(`users:\n${users}admin:\n  tokenFromEnv: ${TOKEN_ENV}\n`));
}, 60_000);

afterAll(async () => {
  await caches?.stopAll();
  delete process.env[TOKEN_ENV];
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("failed logins", () => {
  test("wrong passwords from one address: 429 with Retry-After after a few, growing", async () => {
    const from = "127.0.11.5";
    const first: Answer[] = [];
    for (let i = 0; i < 5; i++) first.push(await call(from, "/v2/", basic("mallory", `guess${i}`)));
    expect(first.map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);
    const locked = await call(from, "/v2/", basic("carol", "right-password"));
    expect(locked.status).toBe(429);
    expect(Number(locked.retryAfter)).toBeGreaterThanOrEqual(1);
    // 64 in parallel from the same address: all refused at once, none waits for bcrypt.
    const burst = await Promise.all(Array.from({ length: 64 }, (_, i) => call(from, "/v2/", basic("mallory", `b${i}`))));
    expect(burst.every((a) => a.status === 429 && Number(a.retryAfter) >= 1)).toBe(true);
    expect(Math.max(...burst.map((a) => a.ms))).toBeLessThan(1000);
  });

  test("64 connections of wrong passwords from 64 addresses: right logins meanwhile stay fast, memory stays bounded", async () => {
    const memory = watchMemory(cache.proc.pid, 400 * MB);
    const until = Date.now() + 4000;
    let floodAnswers: Answer[] = [];
    const flood = Array.from({ length: 64 }, async (_, i) => {
      const from = `127.0.11.${10 + i}`;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      for (let n = 0; n < 200 && Date.now() < until; n++) {
        const a = await call(from, "/v2/", basic(i % 2 ? "alice" : `nobody${i}`, `wrong-${n}`), agent);
        floodAnswers.push(a);
        if (a.status === 429) await Bun.sleep(50);
      }
      agent.destroy();
    });
    await waitFor("the flood to be under way", async () => floodAnswers.length >= 64, 4000);
    // Each right login is a first one (its own user or address), so bcrypt runs for it.
    const right: Answer[] = [];
    for (const [i, user] of ["carol", "dave", "erin"].entries()) {
      right.push(await call(`127.0.11.${200 + i}`, "/v2/", basic(user, "right-password")));
      await Bun.sleep(300);
    }
    await Promise.all(flood);
    memory.stop();
    const codes = floodAnswers.reduce<Record<number, number>>((m, a) => ((m[a.status] = (m[a.status] ?? 0) + 1), m), {});
    console.log(`flood: ${floodAnswers.length} answers ${JSON.stringify(codes)}; right logins: ${right.map((r) => `${r.status} in ${r.ms.toFixed(0)} ms`).join(", ")}; peak RSS ${(memory.peak() / MB).toFixed(0)} MB`);
    expect(right.map((r) => r.status)).toEqual([200, 200, 200]);
    expect(Math.max(...right.map((r) => r.ms))).toBeLessThan(1000);
    expect(codes[429] ?? 0).toBeGreaterThan(codes[401] ?? 0);
    expect(floodAnswers.filter((a) => a.status === 429).every((a) => Number(a.retryAfter) >= 1)).toBe(true);
    expect(memory.peak()).toBeLessThan(150 * MB);
    floodAnswers = [];
  }, 60_000);

  test("a user name locked by guesses from many addresses: a fresh login gets 429, a remembered one keeps working", async () => {
    const from = "127.0.11.210";
    expect((await call(from, "/v2/", basic("dave", "right-password"))).status).toBe(200);
    for (let i = 0; i < 6; i++) await call(`127.0.11.${80 + i}`, "/v2/", basic("dave", `wrong${i}`));
    const fresh = await call("127.0.11.90", "/v2/", basic("dave", "right-password-2"));
    expect(fresh.status).toBe(429);
    expect((await call(from, "/v2/", basic("dave", "right-password"))).status).toBe(200);
  });
});

describe("admin token", () => {
  test("guessing the admin token from one address gets 429 with Retry-After; the token from elsewhere works", async () => {
    const from = "127.0.11.220";
    const answers: Answer[] = [];
    for (let i = 0; i < 10; i++) answers.push(await call(from, "/api/v1/status", `Bearer guess-${i}-xxxxxxxxxxxxxxxx`));
    expect(answers.slice(0, 5).map((a) => a.status)).toEqual([401, 401, 401, 401, 401]);
    expect(answers.slice(5).every((a) => a.status === 429 && Number(a.retryAfter) >= 1)).toBe(true);
    // Locked: even the right token from this address waits its turn.
    expect((await call(from, "/api/v1/status", `Bearer ${TOKEN}`)).status).toBe(429);
    expect((await call(from, "/status.json", `Bearer guess-x`)).status).toBe(429);
    expect((await call("127.0.11.221", "/api/v1/status", `Bearer ${TOKEN}`)).status).toBe(200);
  });
});
