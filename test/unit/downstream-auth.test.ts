// Basic auth for clients of the cache.
import { describe, expect, test } from "bun:test";
import { createBasicAuth } from "../../src/registry/auth.ts";
import { RegistryError } from "../../src/registry/errors.ts";

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString("base64")}`;

describe("downstream basic auth", () => {
  test("accepts bcrypt and plain passwords, refuses everything else with a Basic challenge", async () => {
    const hash = await Bun.password.hash("pw1", { algorithm: "bcrypt", cost: 4 });
    const auth = createBasicAuth([{ user: "a", password: hash }, { user: "b", password: "pw2" }]);
    await auth.check(basic("a", "pw1"));
    await auth.check(basic("b", "pw2"));
    for (const h of [null, "Bearer x", basic("a", "wrong"), basic("c", "pw1"), basic("b", "pw2x"), "Basic !!!"]) {
      const err = await auth.check(h).catch((e) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).status).toBe(401);
      expect((err as RegistryError).headers).toEqual({ "WWW-Authenticate": 'Basic realm="ociregistry"' });
    }
  });

  test("a verified header is remembered for a while, so bcrypt is not paid per request", async () => {
    const hash = await Bun.password.hash("pw", { algorithm: "bcrypt", cost: 4 });
    let now = 0;
    let hashed = 0;
    const auth = createBasicAuth([{ user: "a", password: hash }], () => now, (p, h) => {
      hashed++;
      return Bun.password.verify(p, h, "bcrypt");
    });
    for (let i = 0; i < 100; i++) await auth.check(basic("a", "pw"));
    expect(hashed).toBe(1);
    now += 10 * 60_000;
    await auth.check(basic("a", "pw"));
    expect(hashed).toBe(2);
    await auth.check(basic("a", "bad")).catch(() => {});
    await auth.check(basic("a", "bad")).catch(() => {});
    expect(hashed).toBe(4);
  });

  test("a password longer than bcrypt's 72 bytes works in full, as with Apache's htpasswd", async () => {
    const long = "p".repeat(100);
    // htpasswd -B hashes the first 72 bytes; Bun.password.hash would pre-hash a longer one instead.
    const hash = await Bun.password.hash(long.slice(0, 72), { algorithm: "bcrypt", cost: 4 });
    const auth = createBasicAuth([{ user: "a", password: hash }]);
    await auth.check(basic("a", long));
    expect(await auth.check(basic("a", "p".repeat(71))).catch((e) => e)).toBeInstanceOf(RegistryError);
  });

  test("an unknown user costs a bcrypt verification, like a wrong password", async () => {
    const hash = await Bun.password.hash("pw", { algorithm: "bcrypt", cost: 4 });
    const verified: string[] = [];
    const auth = createBasicAuth([{ user: "a", password: hash }], Date.now, (p, h) => {
      verified.push(h);
      return Bun.password.verify(p, h, "bcrypt");
    });
    await auth.check(basic("nobody", "pw")).catch(() => {});
    await auth.check(basic("a", "wrong")).catch(() => {});
    expect(verified).toHaveLength(2);
    expect(verified[0]).toMatch(/^\$2[aby]\$04\$/);
    expect(verified[0]).not.toBe(hash);
  });
});
