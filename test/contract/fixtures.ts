// What the contract cases share: bytes, a valid record, a blob put through a writer, a typed failure.
import { expect } from "bun:test";
import { digestOf } from "../../src/oci/digest.ts";
import type { Driver } from "../../src/store/driver.ts";
import { StoreError, type Store, type TagRecord } from "../../src/store/types.ts";

export const enc = (s: string) => new TextEncoder().encode(s);
export const bytesOf = async (b: Blob) => new Uint8Array(await b.arrayBuffer());

export function record(over: Partial<TagRecord> = {}): TagRecord {
  const t = new Date().toISOString();
  const manifest = enc('{"schemaVersion":2}');
  return {
    upstream: "up.test", repository: "team/app", tag: "v1", digest: digestOf(manifest), mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: manifest.byteLength, created: t, lastPulled: t, checked: t, ...over,
  };
}

export async function put(store: Store, bytes: Uint8Array, chunk = 7) {
  const w = await store.createBlobWriter(digestOf(bytes), { size: bytes.byteLength });
  for (let i = 0; i < bytes.byteLength; i += chunk) await w.write(bytes.subarray(i, i + chunk));
  await w.commit();
  await w.release();
}

export async function failure(p: Promise<unknown>): Promise<string> {
  const e = await p.then(() => null, (err) => err);
  expect(e).toBeInstanceOf(StoreError);
  return (e as StoreError).failure;
}

/** The layout over a fresh driver, initialised, and the driver itself (to plant damage under the layout). */
export type MakeStore = () => Promise<{ store: Store; driver: Driver }>;
