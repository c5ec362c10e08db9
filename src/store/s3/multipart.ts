// S3 multipart uploads driven by hand: parts go up while the bytes arrive, and the upload is
// completed (the object appears, at once) only after the store has verified the digest, or
// aborted (nothing appears) otherwise. Incomplete uploads a crash left are listed and aborted.
import { StoreError } from "../types.ts";
import { s3Request, xmlBlocks, xmlValue, type S3Access } from "./sigv4.ts";

async function ok(res: Response, what: string): Promise<string> {
  const text = await res.text();
  if (!res.ok) throw new StoreError("unavailable", `S3 ${what}: HTTP ${res.status} ${xmlValue(text, "Code") ?? ""} ${xmlValue(text, "Message") ?? ""}`.trim());
  return text;
}

export async function startUpload(a: S3Access, key: string): Promise<string> {
  const text = await ok(await s3Request(a, "POST", key, { query: { uploads: "" } }), `starting an upload of ${key}`);
  const id = xmlValue(text, "UploadId");
  if (!id) throw new StoreError("unavailable", `S3 starting an upload of ${key}: no UploadId in the answer`);
  return id;
}

/** A whole object in one PUT, sent from a slice of a file (a blob under one part). */
export async function putObject(a: S3Access, key: string, body: Blob): Promise<void> {
  const res = await s3Request(a, "PUT", key, { body, timeoutMs: 300_000, unsignedPayload: true });
  await ok(res, `writing ${key}`);
}

/** Uploads part `n`: its bytes in memory, or a slice of a file (sent from the file). */
export async function uploadPart(a: S3Access, key: string, uploadId: string, n: number, bytes: Uint8Array | Blob): Promise<string> {
  const res = await s3Request(a, "PUT", key, { query: { partNumber: String(n), uploadId }, body: bytes, timeoutMs: 300_000, unsignedPayload: true });
  await ok(res, `uploading part ${n} of ${key}`);
  const etag = res.headers.get("etag");
  if (!etag) throw new StoreError("unavailable", `S3 uploading part ${n} of ${key}: no ETag`);
  return etag;
}

export async function completeUpload(a: S3Access, key: string, uploadId: string, etags: string[]): Promise<void> {
  const body = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join("")}</CompleteMultipartUpload>`;
  const text = await ok(await s3Request(a, "POST", key, { query: { uploadId }, body, timeoutMs: 300_000 }), `completing the upload of ${key}`);
  // S3 may answer 200 with an error inside.
  if (text.includes("<Error>")) throw new StoreError("unavailable", `S3 completing the upload of ${key}: ${xmlValue(text, "Code")} ${xmlValue(text, "Message") ?? ""}`);
}

export async function abortUpload(a: S3Access, key: string, uploadId: string): Promise<void> {
  const res = await s3Request(a, "DELETE", key, { query: { uploadId } });
  await res.body?.cancel();
  if (!res.ok && res.status !== 404) throw new StoreError("unavailable", `S3 aborting the upload of ${key}: HTTP ${res.status}`);
}

/** Incomplete multipart uploads under a prefix (the first 1,000). */
export async function incompleteUploads(a: S3Access, prefix: string): Promise<Array<{ key: string; uploadId: string; initiated: number }>> {
  const text = await ok(await s3Request(a, "GET", "", { query: { uploads: "", prefix } }), "listing incomplete uploads");
  return xmlBlocks(text, "Upload").map((u) => ({
    key: xmlValue(u, "Key") ?? "", uploadId: xmlValue(u, "UploadId") ?? "", initiated: Date.parse(xmlValue(u, "Initiated") ?? ""),
  })).filter((u) => u.key && u.uploadId);
}
