// Signed S3 requests for what Bun.S3Client cannot send (creating a bucket, listing and aborting
// incomplete multipart uploads, a PUT with If-None-Match): AWS Signature Version 4, path-style.
export interface S3Credentials {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

const hex = (b: ArrayBuffer | Uint8Array) => Buffer.from(b instanceof Uint8Array ? b : new Uint8Array(b)).toString("hex");
const sha256 = (data: string | Uint8Array) => new Bun.CryptoHasher("sha256").update(data).digest("hex");
const hmac = (key: string | Uint8Array, data: string) => new Uint8Array(new Bun.CryptoHasher("sha256", key).update(data).digest());

/** RFC 3986 encoding as SigV4 wants it: everything but A-Z a-z 0-9 - _ . ~ */
const encode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Sends a signed request to `/bucket[/key]?query` (query values are raw, not encoded).
 * The body is signed by its SHA-256; headers given are signed too.
 */
export async function s3Raw(
  creds: S3Credentials,
  method: string,
  path: string,
  opts: { query?: Record<string, string>; headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<Response> {
  const base = new URL(creds.endpoint);
  const canonicalPath = path.split("/").map(encode).join("/");
  const query = Object.entries(opts.query ?? {}).map(([k, v]) => [encode(k), encode(v)] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const canonicalQuery = query.map(([k, v]) => `${k}=${v}`).join("&");
  const now = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+/, "");
  const day = now.slice(0, 8);
  const body = opts.body ?? "";
  const headers: Record<string, string> = {
    host: base.host,
    "x-amz-date": now,
    "x-amz-content-sha256": sha256(body),
  };
  for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = v.trim();
  const names = Object.keys(headers).sort();
  const canonical = [method, canonicalPath, canonicalQuery, names.map((n) => `${n}:${headers[n]}\n`).join(""), names.join(";"),
    headers["x-amz-content-sha256"]].join("\n");
  const scope = `${day}/${creds.region}/s3/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", now, scope, sha256(canonical)].join("\n");
  let key = hmac(`AWS4${creds.secretAccessKey}`, day);
  for (const part of [creds.region, "s3", "aws4_request"]) key = hmac(key, part);
  const signature = hex(hmac(key, toSign));
  const { host: _host, ...sent } = headers;
  sent.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${names.join(";")}, Signature=${signature}`;
  const url = `${base.origin}${canonicalPath}${canonicalQuery ? `?${canonicalQuery}` : ""}`;
  return fetch(url, { method, headers: sent, body: method === "GET" || method === "HEAD" ? undefined : body });
}

/** Throws with the S3 error body unless the response is 2xx; returns the body text. */
export async function ok(res: Response | Promise<Response>): Promise<string> {
  const r = await res;
  const text = await r.text();
  if (!r.ok) throw new Error(`S3 ${r.status}: ${text}`);
  return text;
}

export async function createBucket(creds: S3Credentials, bucket: string): Promise<void> {
  await ok(s3Raw(creds, "PUT", `/${bucket}`));
}

export interface IncompleteUpload {
  key: string;
  uploadId: string;
}

/** ListMultipartUploads (`GET /bucket?uploads`): the uploads started and neither completed nor aborted. */
export async function listIncompleteUploads(creds: S3Credentials, bucket: string, prefix = ""): Promise<IncompleteUpload[]> {
  const xml = await ok(s3Raw(creds, "GET", `/${bucket}`, { query: { uploads: "", prefix } }));
  return [...xml.matchAll(/<Upload>([\s\S]*?)<\/Upload>/g)].map((m) => ({
    key: xmlText(m[1]!, "Key"),
    uploadId: xmlText(m[1]!, "UploadId"),
  }));
}

/** AbortMultipartUpload (`DELETE /bucket/key?uploadId=`): frees the parts. */
export async function abortUpload(creds: S3Credentials, bucket: string, upload: IncompleteUpload): Promise<void> {
  await ok(s3Raw(creds, "DELETE", `/${bucket}/${upload.key}`, { query: { uploadId: upload.uploadId } }));
}

/** PUT that only creates: `If-None-Match: *`. Resolves to the HTTP status (200, or 412 when the key exists). */
export async function putIfAbsent(creds: S3Credentials, bucket: string, key: string, body: string | Uint8Array): Promise<number> {
  const r = await s3Raw(creds, "PUT", `/${bucket}/${key}`, { body, headers: { "if-none-match": "*" } });
  await r.arrayBuffer();
  return r.status;
}

function xmlText(xml: string, tag: string): string {
  const m = xml.match(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`));
  return (m?.[1] ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&");
}
