// Digest parsing and hashing. Only sha256 and sha512 are accepted, per the OCI image spec.

export type DigestAlgorithm = "sha256" | "sha512";

export interface Digest {
  algorithm: DigestAlgorithm;
  hex: string;
  /** `algorithm:hex` */
  value: string;
}

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): boolean {
  return DIGEST_RE.test(s);
}

/** Parses `sha256:<64 hex>` or `sha512:<128 hex>`; null for anything else. */
export function parseDigest(s: string): Digest | null {
  if (!DIGEST_RE.test(s)) return null;
  const i = s.indexOf(":");
  return { algorithm: s.slice(0, i) as DigestAlgorithm, hex: s.slice(i + 1), value: s };
}

export function digestOf(bytes: Uint8Array, algorithm: DigestAlgorithm = "sha256"): string {
  const h = new Bun.CryptoHasher(algorithm);
  h.update(bytes);
  return `${algorithm}:${h.digest("hex")}`;
}

/** An incremental hasher for streamed content. */
export function createDigester(algorithm: DigestAlgorithm) {
  const h = new Bun.CryptoHasher(algorithm);
  return {
    update(chunk: Uint8Array) {
      h.update(chunk);
    },
    digest(): string {
      return `${algorithm}:${h.digest("hex")}`;
    },
  };
}
