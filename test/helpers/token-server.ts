// A Docker token server (the distribution "token" auth protocol) for e2e tests: checks basic
// credentials, answers GET /token?service=&scope= with an ES256 JWT that distribution verifies
// against the certificate in its rootcertbundle (matched by the libtrust key ID in `kid`).
import { createHash, createPrivateKey, createPublicKey, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { run } from "./procs.ts";

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** Certificate distribution must trust (auth.token.rootcertbundle). */
  certPath: string;
  /** Token requests received: `user scope` ("-" when anonymous). */
  requests: string[];
  stop(): void;
}

function base32(bytes: Uint8Array): string {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  let out = "";
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** libtrust's key ID: base32 of the first 240 bits of sha256(SPKI DER), in groups of four. */
function libtrustKeyId(spkiDer: Uint8Array): string {
  const b32 = base32(createHash("sha256").update(spkiDer).digest().subarray(0, 30));
  return b32.match(/.{4}/g)!.join(":");
}

const b64url = (b: Uint8Array | string) => Buffer.from(b).toString("base64url");

export async function startTokenServer(opts: { dir: string; host: string; user: string; password: string }): Promise<TokenServer> {
  const keyPath = join(opts.dir, "token.key");
  const certPath = join(opts.dir, "token.crt");
  await run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
    "-subj", "/CN=token issuer", "-keyout", keyPath, "-out", certPath]);
  const key = createPrivateKey(readFileSync(keyPath));
  const kid = libtrustKeyId(createPublicKey(key).export({ type: "spki", format: "der" }));
  const service = "test-registry";
  const issuer = "test-token-issuer";
  const requests: string[] = [];
  const expected = `Basic ${Buffer.from(`${opts.user}:${opts.password}`).toString("base64")}`;

  const server = Bun.serve({
    hostname: opts.host, port: 0,
    fetch(req) {
      const url = new URL(req.url);
      if (url.pathname !== "/token") return new Response("not found", { status: 404 });
      const auth = req.headers.get("authorization");
      const scope = url.searchParams.get("scope") ?? "";
      requests.push(`${auth ? Buffer.from(auth.slice(6), "base64").toString().split(":")[0] : "-"} ${scope}`);
      if (auth !== expected) return Response.json({ details: "bad credentials" }, { status: 401 });
      const access = scope
        ? scope.split(" ").map((s) => {
            const [type, name, actions] = s.split(":");
            return { type, name, actions: (actions ?? "").split(",").filter((a) => a === "pull" || a === "push") };
          })
        : [];
      const now = Math.floor(Date.now() / 1000);
      const header = b64url(JSON.stringify({ typ: "JWT", alg: "ES256", kid }));
      const claims = b64url(JSON.stringify({
        iss: issuer, sub: opts.user, aud: service, exp: now + 300, nbf: now - 10, iat: now,
        jti: crypto.randomUUID(), access,
      }));
      const signature = sign("sha256", Buffer.from(`${header}.${claims}`), { key, dsaEncoding: "ieee-p1363" });
      const token = `${header}.${claims}.${b64url(signature)}`;
      return Response.json({ token, access_token: token, expires_in: 300, issued_at: new Date().toISOString() });
    },
  });
  return {
    realm: `http://${opts.host}:${server.port}/token`, service, issuer, certPath, requests,
    stop: () => void server.stop(true),
  };
}
