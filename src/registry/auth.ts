// Optional basic auth for clients of the cache. bcrypt is slow on purpose, so a header that has
// been verified once is remembered (by its hash) for a while instead of re-hashed per request.
// bcrypt reads at most 72 bytes of a password, as Apache's htpasswd does; Bun would pre-hash a
// longer one instead, so it is cut to 72 bytes here and the full password works as with Apache.
// An unknown user costs a bcrypt verification too, so timing does not tell which users exist.
import { timingSafeEqual as cryptoEqual } from "node:crypto";
import type { DownstreamUser } from "../config/schema.ts";
import { BoundedMap } from "../oci/bounded-map.ts";
import { RegistryError } from "./errors.ts";


const REMEMBER_MS = 5 * 60_000;
const MAX_REMEMBERED = 10_000;
const BCRYPT_MAX_BYTES = 72;
const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$/;

export function createBasicAuth(
  users: DownstreamUser[],
  now: () => number = Date.now,
  verifyHash: (password: Uint8Array, hash: string) => Promise<boolean> = (p, h) => Bun.password.verify(p, h, "bcrypt"),
) {
  const byName = new Map(users.map((u) => [u.user, u.password]));
  const verified = new BoundedMap<string, number>(MAX_REMEMBERED);
  // Same cost as the configured hashes, so an unknown user takes as long as a wrong password.
  const cost = Math.max(4, ...users.map((u) => Number(BCRYPT_RE.exec(u.password)?.[1] ?? 4)));
  const decoy = Bun.password.hashSync("decoy", { algorithm: "bcrypt", cost });

  function challenge(message: string): RegistryError {
    return new RegistryError("UNAUTHORIZED", message, { headers: { "WWW-Authenticate": 'Basic realm="ociregistry"' } });
  }

  async function check(header: string | null): Promise<void> {
    if (!header?.startsWith("Basic ") || header.length > 8192) throw challenge("authentication required");
    const key = new Bun.CryptoHasher("sha256").update(header).digest("hex");
    const until = verified.get(key);
    if (until !== undefined && until > now()) return;
    const decoded = Buffer.from(header.slice(6).trim(), "base64");
    const i = decoded.indexOf(":");
    const stored = i > 0 ? byName.get(decoded.subarray(0, i).toString("utf8")) : undefined;
    const password = decoded.subarray(i + 1);
    let ok: boolean;
    if (stored === undefined) {
      await verifyHash(password.subarray(0, BCRYPT_MAX_BYTES), decoy);
      ok = false;
    } else if (BCRYPT_RE.test(stored)) {
      ok = await verifyHash(password.subarray(0, BCRYPT_MAX_BYTES), stored);
    } else {
      ok = timingSafeEqual(password, Buffer.from(stored));
    }
    if (!ok) throw challenge("invalid username or password");
    verified.set(key, now() + REMEMBER_MS);
  }

  return { check };
}

function timingSafeEqual(x: Buffer, y: Buffer): boolean {
  return x.length === y.length && cryptoEqual(x, y);
}
