// Signed S3 requests (AWS Signature Version 4) for what Bun.S3Client does not offer: multipart
// uploads completed or aborted at our word, listing and aborting incomplete uploads, and a
// conditional PUT. Path-style or virtual-hosted-style URLs.
export interface S3Access {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Bucket in the path (`endpoint/bucket/key`, RGW and MinIO) rather than in the host name. */
  pathStyle: boolean;
}

const sha256Hex = (data: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(data).digest("hex");
const hmac = (key: string | Uint8Array, data: string) => new Uint8Array(new Bun.CryptoHasher("sha256", key).update(data).digest());
/** RFC 3986 encoding, as SigV4 wants it. */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

export interface SignedRequest {
  query?: Record<string, string>;
  headers?: Record<string, string>;
  /** A Blob (a file slice) only with `unsignedPayload`: its bytes are not read here to be hashed. */
  body?: Uint8Array | string | Blob;
  timeoutMs?: number;
  /**
   * Sign `UNSIGNED-PAYLOAD` instead of the body's SHA-256: for blob parts, whose bytes the store
   * verifies against their digest anyway. Hashing every part again cost a full SHA-256 pass over
   * each blob on the thread that runs the download.
   */
  unsignedPayload?: boolean;
}

/** Sends a signed request for `key` ("" for the bucket itself). */
export async function s3Request(a: S3Access, method: string, key: string, r: SignedRequest = {}): Promise<Response> {
  const base = new URL(a.endpoint);
  const host = a.pathStyle ? base.host : `${a.bucket}.${base.host}`;
  const path = `${a.pathStyle ? `/${a.bucket}` : ""}/${key}`;
  const canonicalPath = path.split("/").map(encode).join("/");
  const query = Object.entries(r.query ?? {}).map(([k, v]) => [encode(k), encode(v)] as const).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
  const canonicalQuery = query.map(([k, v]) => `${k}=${v}`).join("&");
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
  const day = stamp.slice(0, 8);
  const body = r.body ?? "";
  if (body instanceof Blob && !r.unsignedPayload) throw new TypeError("s3Request: a Blob body is sent with unsignedPayload only");
  const payload = r.unsignedPayload || body instanceof Blob ? "UNSIGNED-PAYLOAD" : sha256Hex(body);
  const headers: Record<string, string> = { host, "x-amz-date": stamp, "x-amz-content-sha256": payload };
  for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = v.trim();
  const names = Object.keys(headers).sort();
  const canonical = [method, canonicalPath, canonicalQuery, ...names.map((n) => `${n}:${headers[n]}`), "", names.join(";"), headers["x-amz-content-sha256"]].join("\n");
  const scope = `${day}/${a.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", stamp, scope, sha256Hex(canonical)].join("\n");
  const key4 = hmac(hmac(hmac(hmac(`AWS4${a.secretAccessKey}`, day), a.region), "s3"), "aws4_request");
  const signature = Buffer.from(hmac(key4, toSign)).toString("hex");
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${a.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  const url = `${base.protocol}//${host}${canonicalPath}${canonicalQuery ? `?${canonicalQuery}` : ""}`;
  return fetch(url, { method, headers, body: typeof body === "string" ? (body || undefined) : body, signal: AbortSignal.timeout(r.timeoutMs ?? 60_000) });
}

/** The text of an XML element (first match); S3 answers are small and flat enough for this. */
export function xmlValue(xml: string, tag: string): string | undefined {
  const raw = xml.match(new RegExp(`<${tag}>([^<]*)</${tag}>`))?.[1];
  return raw === undefined ? undefined : decodeXmlText(raw);
}

const XML_ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** XML character data as text: the five named entities and numeric references (`&#38;`, `&#x26;`). */
export function decodeXmlText(raw: string): string {
  return raw.replace(/&(#x[0-9a-fA-F]+|#\d+|amp|lt|gt|quot|apos);/g, (whole, e: string) => {
    if (e[0] !== "#") return XML_ENTITIES[e]!;
    const code = e[1] === "x" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : whole;
  });
}

/** Every `<tag>…</tag>` block. */
export function xmlBlocks(xml: string, tag: string): string[] {
  return [...xml.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) => m[1]!);
}
