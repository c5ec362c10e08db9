// Signed S3 requests for what Bun.S3Client cannot send (creating and deleting a bucket, listing
// and aborting incomplete multipart uploads, a PUT with If-None-Match), path-style. The signing
// and the XML reading are the store's own (src/store/s3/sigv4.ts): one SigV4 in the project.
import { s3Request, xmlBlocks, xmlValue, type S3Access } from "../../src/store/s3/sigv4.ts";

export type S3Credentials = Omit<S3Access, "bucket" | "pathStyle">;

/** Sends a signed request for `key` in `bucket` ("" for the bucket itself); query values are raw. */
export function s3Raw(
  creds: S3Credentials,
  method: string,
  bucket: string,
  key = "",
  opts: { query?: Record<string, string>; headers?: Record<string, string>; body?: string | Uint8Array } = {},
): Promise<Response> {
  return s3Request({ ...creds, bucket, pathStyle: true }, method, key, opts);
}

/** Throws with the S3 error body unless the response is 2xx; returns the body text. */
export async function ok(res: Response | Promise<Response>): Promise<string> {
  const r = await res;
  const text = await r.text();
  if (!r.ok) throw new Error(`S3 ${r.status}: ${text}`);
  return text;
}

export async function createBucket(creds: S3Credentials, bucket: string): Promise<void> {
  await ok(s3Raw(creds, "PUT", bucket));
}

export interface IncompleteUpload {
  key: string;
  uploadId: string;
}

/** ListMultipartUploads (`GET /bucket?uploads`): the uploads started and neither completed nor aborted. */
export async function listIncompleteUploads(creds: S3Credentials, bucket: string, prefix = ""): Promise<IncompleteUpload[]> {
  const xml = await ok(s3Raw(creds, "GET", bucket, "", { query: { uploads: "", prefix } }));
  return xmlBlocks(xml, "Upload").map((u) => ({ key: xmlValue(u, "Key") ?? "", uploadId: xmlValue(u, "UploadId") ?? "" }));
}

/** AbortMultipartUpload (`DELETE /bucket/key?uploadId=`): frees the parts. */
export async function abortUpload(creds: S3Credentials, bucket: string, upload: IncompleteUpload): Promise<void> {
  await ok(s3Raw(creds, "DELETE", bucket, upload.key, { query: { uploadId: upload.uploadId } }));
}

/** PUT that only creates: `If-None-Match: *`. Resolves to the HTTP status (200, or 412 when the key exists). */
export async function putIfAbsent(creds: S3Credentials, bucket: string, key: string, body: string | Uint8Array): Promise<number> {
  const r = await s3Raw(creds, "PUT", bucket, key, { body, headers: { "if-none-match": "*" } });
  await r.arrayBuffer();
  return r.status;
}
