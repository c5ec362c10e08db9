// Optional basic auth for clients of the cache. bcrypt is slow on purpose, so a login that has
// been verified once is remembered (user, password hash, stored hash) for a while instead of
// re-hashed per request. bcrypt reads at most 72 bytes of a password, as Apache's htpasswd does;
// Bun would pre-hash a longer one instead, so it is cut to 72 bytes here and the full password
// works as with Apache. An unknown user costs a bcrypt verification too, so timing does not tell
// which users exist. Failed logins are throttled per client address and user (throttle.ts) before
// any bcrypt runs, and bcrypt runs a few at a time, clients without failures first (verify-queue.ts).
import { timingSafeEqual as cryptoEqual } from "node:crypto";
import type { DownstreamUser } from "../config/schema.ts";
import { BoundedMap } from "../lib/bounded-map.ts";
import { RegistryError } from "./errors.ts";
import { clientKey, createLoginThrottle, type AttemptEnd, type Refusal } from "./throttle.ts";
import { createVerifyQueue, VerifyBusy } from "./verify-queue.ts";

/** How long a verified login is taken without bcrypt (kept short: it also outlives a password change). */
const REMEMBER_MS = 2 * 60_000;
const MAX_REMEMBERED = 1000;
const BCRYPT_MAX_BYTES = 72;
const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$/;

export interface BasicAuthOptions {
  throttle?: ReturnType<typeof createLoginThrottle>;
  queue?: ReturnType<typeof createVerifyQueue>;
}

export type BasicAuth = ReturnType<typeof createBasicAuth>;

/** The 429 of a throttled login or admin request; says which key is locked and for how long. */
export function tooManyAttempts(r: Refusal, what: string): { message: string; retryAfter: string } {
  const seconds = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
  const who = r.key.startsWith("user ") ? "for this user name" : "from this address";
  return { message: `too many failed ${what} ${who}; try again in ${seconds} s`, retryAfter: String(seconds) };
}

export function createBasicAuth(
  users: DownstreamUser[],
  now: () => number = Date.now,
  verifyHash: (password: Uint8Array, hash: string) => Promise<boolean> = (p, h) => Bun.password.verify(p, h, "bcrypt"),
  opts: BasicAuthOptions = {},
) {
  const byName = new Map(users.map((u) => [u.user, u.password]));
  const verified = new BoundedMap<string, number>(MAX_REMEMBERED);
  const throttle = opts.throttle ?? createLoginThrottle({ now });
  const queue = opts.queue ?? createVerifyQueue();
  // Same cost as the configured hashes, so an unknown user takes as long as a wrong password.
  const cost = Math.max(4, ...users.map((u) => Number(BCRYPT_RE.exec(u.password)?.[1] ?? 4)));
  const decoy = Bun.password.hashSync("decoy", { algorithm: "bcrypt", cost });

  function challenge(message: string): RegistryError {
    return new RegistryError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": 'Basic realm="ociregistry"' } });
  }

  function tooMany(r: Refusal): RegistryError {
    const t = tooManyAttempts(r, "logins");
    return new RegistryError("TOOMANYREQUESTS", t.message, { headers: { "Retry-After": t.retryAfter } });
  }

  async function verify(name: string, password: Uint8Array, stored: string | undefined, first: boolean): Promise<boolean> {
    if (stored === undefined) {
      await queue.run(first, () => verifyHash(password.subarray(0, BCRYPT_MAX_BYTES), decoy));
      return false;
    }
    if (BCRYPT_RE.test(stored)) return queue.run(first, () => verifyHash(password.subarray(0, BCRYPT_MAX_BYTES), stored));
    return timingSafeEqual(Buffer.from(password), Buffer.from(stored));
  }

  /** Resolves when `header` logs in as a configured user; throws the 401 or 429 to answer otherwise. */
  async function check(header: string | null, client?: string): Promise<void> {
    if (!header?.startsWith("Basic ") || header.length > 8192) throw challenge("authentication required");
    const address = `address ${clientKey(client)}`;
    const locked = throttle.refusal(address);
    if (locked) throw tooMany(locked);
    const decoded = Buffer.from(header.slice(6).trim(), "base64");
    const i = decoded.indexOf(":");
    if (i <= 0) {
      throttle.fail(address);
      throw challenge("invalid username or password");
    }
    const name = decoded.subarray(0, i).toString("utf8");
    const password = decoded.subarray(i + 1);
    const stored = byName.get(name);
    const remembered = new Bun.CryptoHasher("sha256").update(name).update("\0").update(stored ?? "").update("\0").update(password).digest("hex");
    const until = verified.get(remembered);
    // A login that worked a moment ago passes even while its user name is locked by someone
    // else's guesses (a running pull sends it with every request); the address lock still holds.
    if (until !== undefined && until > now()) return;
    const user = `user ${name.length > 128 ? new Bun.CryptoHasher("sha256").update(name).digest("hex") : name}`;
    const begun = throttle.begin([address, user], [user]);
    if (typeof begun !== "function") {
      // A guess at a locked user still counts against its address.
      if (begun.key === user) throttle.fail(address);
      throw tooMany(begun);
    }
    let end: AttemptEnd = "failed";
    try {
      const ok = await verify(name, password, stored, throttle.clean(address));
      if (!ok) throw challenge("invalid username or password");
      end = "ok";
      verified.set(remembered, now() + REMEMBER_MS);
    } catch (err) {
      if (!(err instanceof VerifyBusy)) throw err;
      end = "dropped";
      throw new RegistryError("TOOMANYREQUESTS", "too many logins are being checked right now; try again in a second", { headers: { "Retry-After": "1" } });
    } finally {
      begun(end);
    }
  }

  return { check };
}

function timingSafeEqual(x: Buffer, y: Buffer): boolean {
  return x.length === y.length && cryptoEqual(x, y);
}
