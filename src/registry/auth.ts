// Optional basic auth for clients of the cache. bcrypt is slow on purpose, so a header that has
// been verified once is remembered (by its hash) for a while instead of re-hashed per request.
import { timingSafeEqual as cryptoEqual } from "node:crypto";
import { RegistryError } from "./errors.ts";

export interface DownstreamUser {
  user: string;
  /** bcrypt hash or plain password. */
  password: string;
}

const REMEMBER_MS = 5 * 60_000;
const MAX_REMEMBERED = 10_000;

export function createBasicAuth(
  users: DownstreamUser[],
  now: () => number = Date.now,
  verifyHash: (password: string, hash: string) => Promise<boolean> = (p, h) => Bun.password.verify(p, h, "bcrypt"),
) {
  const byName = new Map(users.map((u) => [u.user, u.password]));
  const verified = new Map<string, number>();

  function challenge(message: string): RegistryError {
    return new RegistryError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": 'Basic realm="ociregistry"' } });
  }

  async function check(header: string | null): Promise<void> {
    if (!header?.startsWith("Basic ")) throw challenge("authentication required");
    const key = new Bun.CryptoHasher("sha256").update(header).digest("hex");
    const until = verified.get(key);
    if (until !== undefined && until > now()) return;
    const decoded = Buffer.from(header.slice(6).trim(), "base64").toString("utf8");
    const i = decoded.indexOf(":");
    const stored = i > 0 ? byName.get(decoded.slice(0, i)) : undefined;
    const password = decoded.slice(i + 1);
    const ok = stored !== undefined &&
      (/^\$2[aby]\$/.test(stored) ? await verifyHash(password, stored) : timingSafeEqual(password, stored));
    if (!ok) throw challenge("invalid username or password");
    if (verified.size >= MAX_REMEMBERED) verified.clear();
    verified.set(key, now() + REMEMBER_MS);
  }

  return { check };
}

function timingSafeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && cryptoEqual(x, y);
}
