// Moving images across an air gap: `export` writes the store (or some images) as a tar that
// extracts to a valid image path, or as an OCI image-layout archive; `load --archive` merges such
// a tar into a store, verifying every digest and never trusting a path in it.
import { createReadStream, createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Writable } from "node:stream";
import tar from "tar-stream";
import { createDigester, digestOf, parseDigest } from "../oci/digest.ts";
import { MAX_MANIFEST_BYTES, OCI_INDEX, detectMediaType, parseManifest } from "../oci/mediatypes.ts";
import { isHost, isRepositoryName } from "../oci/names.ts";
import { contentKey, parseContentKey, parseRecordKey, recordKey } from "../store/keys.ts";
import { isRecordTag, isValidTagRecord, recordName, serializeTagRecord } from "../store/record.ts";
import { StoreError, type Store, type TagRecord } from "../store/types.ts";
import { closureOf, missingContent, summarizeImage } from "./closure.ts";

/**
 * node:stream, loaded on first use: the compiled bundle hoists every static import of a built-in
 * to its top, so a static one here would load streams (~5 MiB of RSS) into every serve.
 */
const streams = () => ({
  Readable: (require("node:stream") as typeof import("node:stream")).Readable,
  pipeline: (require("node:stream/promises") as typeof import("node:stream/promises")).pipeline,
});

export interface ExportOptions {
  /** Only tag records whose `<upstream>/<repository>:<tag>` matches. */
  pattern?: RegExp;
  format: "store" | "oci";
}

export interface ExportSummary {
  images: number;
  manifests: number;
  blobs: number;
  bytes: number;
  /** Images left out because the store does not hold all they need, and malformed references skipped. */
  skipped: string[];
}

const MTIME = new Date(0);

async function addEntry(pack: tar.Pack, name: string, body: Uint8Array | Blob, size: number) {
  await new Promise<void>((resolve, reject) => {
    const entry = pack.entry({ name, size, mode: 0o644, mtime: MTIME }, (err) => (err ? reject(err) : resolve()));
    if (body instanceof Uint8Array) {
      entry.end(Buffer.from(body));
    } else {
      streams().Readable.fromWeb(body.stream() as never).pipe(entry);
    }
  });
}

/** Streams a tar of the selected images to `out` (a path, or "-" for stdout). */
export async function exportArchive(store: Store, out: string, opts: ExportOptions): Promise<ExportSummary> {
  const records: TagRecord[] = [];
  const skipped: string[] = [];
  const memo = new Map<string, Promise<string[]>>();
  for await (const r of store.allTags((where) => skipped.push(`unreadable tag record ${where}`))) {
    if (opts.pattern && !opts.pattern.test(recordName(r))) continue;
    // An image that cannot be pulled on the far side is not carried there.
    const missing = await missingContent(store, r.digest, memo);
    if (missing.length) skipped.push(`${recordName(r)}: incomplete (missing ${missing[0]}${missing.length > 1 ? ` and ${missing.length - 1} more` : ""})`);
    else records.push(r);
  }
  const needed = await closureOf(store, records.map((r) => r.digest));
  skipped.push(...needed.invalid.map((i) => `invalid reference in manifest ${i}`));
  const pack = tar.pack();
  const sink = out === "-" ? process.stdout : createWriteStream(out);
  const done = streams().pipeline(pack, sink as Writable);
  const summary: ExportSummary = { images: records.length, manifests: 0, blobs: 0, bytes: 0, skipped };
  // The OCI layout keeps manifests among the blobs; the store keeps them apart.
  const manifestKind = opts.format === "oci" ? "blobs" : "manifests";

  if (opts.format === "oci") {
    await addEntry(pack, "oci-layout", new TextEncoder().encode('{"imageLayoutVersion":"1.0.0"}'), 30);
  }
  for (const digest of [...needed.blobs].sort()) {
    const blob = await store.statBlob(digest);
    if (!blob) continue; // not cached: a platform nobody pulled
    await addEntry(pack, contentKey("blobs", digest), blob.file, blob.size);
    summary.blobs++;
    summary.bytes += blob.size;
  }
  for (const digest of [...needed.manifests].sort()) {
    const bytes = await store.readManifest(digest);
    if (!bytes) continue;
    await addEntry(pack, contentKey(manifestKind, digest), bytes, bytes.byteLength);
    summary.manifests++;
    summary.bytes += bytes.byteLength;
  }
  if (opts.format === "oci") {
    const index = {
      schemaVersion: 2, mediaType: OCI_INDEX,
      manifests: records.map((r) => ({
        mediaType: r.mediaType, digest: r.digest, size: r.size,
        annotations: { "org.opencontainers.image.ref.name": recordName(r), "io.containerd.image.name": recordName(r) },
      })),
    };
    const bytes = new TextEncoder().encode(JSON.stringify(index));
    await addEntry(pack, "index.json", bytes, bytes.byteLength);
  } else {
    // Tag records last: whoever extracts a partial archive never gets a record without its content.
    for (const r of records) {
      const bytes = serializeTagRecord(r);
      await addEntry(pack, recordKey(r), bytes, bytes.byteLength);
    }
  }
  pack.finalize();
  await done;
  return summary;
}

export interface ImportSummary {
  blobs: number;
  manifests: number;
  skipped: number;
  tags: number;
}


async function readAll(stream: AsyncIterable<Buffer>, limit: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    size += c.length;
    if (size > limit) throw new Error(`entry larger than ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Merges a tar made by `export` into the store. Throws on the first bad entry; what was merged before stays valid. */
export async function importArchive(store: Store, file: string): Promise<ImportSummary> {
  const summary: ImportSummary = { blobs: 0, manifests: 0, skipped: 0, tags: 0 };
  const records: TagRecord[] = [];
  const extract = tar.extract();
  const consume = (async () => {
    for await (const e of extract) {
      const entry = e as typeof e & AsyncIterable<Buffer>;
      const name = entry.header.name;
      // Entries are the store's keys (tar may prefix "./"), read with the store's own key parsers.
      const key = name.startsWith("./") ? name.slice(2) : name;
      if (entry.header.type === "directory") {
        entry.resume();
        continue;
      }
      const content = parseContentKey(key);
      const place = parseRecordKey(key);
      if (content && entry.header.type === "file") {
        const digest = content.digest;
        if (content.kind === "manifests") {
          const bytes = await readAll(entry, MAX_MANIFEST_BYTES);
          if (digestOf(bytes, parseDigest(digest)!.algorithm) !== digest) throw new Error(`${file}: ${name} does not match its digest`);
          if (await store.readManifest(digest)) summary.skipped++;
          else {
            await store.writeManifest(digest, bytes);
            summary.manifests++;
          }
        } else if (await store.statBlob(digest)) {
          entry.resume();
          summary.skipped++;
        } else {
          await importBlob(store, entry, digest, `${file}: ${name}`);
          summary.blobs++;
        }
      } else if (place && entry.header.type === "file") {
        const { upstream, repository, tag } = place;
        if (!isHost(upstream) || !isRepositoryName(repository) || !isRecordTag(tag)) {
          throw new Error(`${file}: ${name} is not a valid tag record path`);
        }
        let rec: unknown;
        try {
          rec = JSON.parse(new TextDecoder().decode(await readAll(entry, 64 * 1024)));
        } catch {
          throw new Error(`${file}: ${name} is not a JSON tag record`);
        }
        if (!isValidTagRecord(rec, { upstream, repository, tag })) {
          throw new Error(`${file}: ${name} is not a valid tag record of ${recordName({ upstream, repository, tag })} (a record named by a digest must point at that digest)`);
        }
        records.push(rec);
      } else if (name === "index.json" || name === "oci-layout") {
        throw new Error(`${file} is an OCI image-layout archive; load --archive takes the default export format`);
      } else {
        throw new Error(`${file}: unexpected entry ${JSON.stringify(name)}; not an archive made by ociregistry export`);
      }
    }
  })();
  // The reader's own failure (a bad entry, a full disk) is the one to report; the tar stream then
  // only says it was closed early.
  const [read, merged] = await Promise.allSettled([streams().pipeline(createReadStream(file), extract), consume]);
  if (merged.status === "rejected") throw merged.reason;
  if (read.status === "rejected") throw read.reason;
  for (const rec of records) {
    const manifest = await store.readManifest(rec.digest);
    if (!manifest || !detectMediaType(parseManifest(manifest) ?? {})) {
      throw new Error(`${file}: tag record ${recordName(rec)} points at ${rec.digest}, which the archive does not contain`);
    }
    const existing = await store.readTag(rec.upstream, rec.repository, rec.tag);
    const lastPulled = existing && existing.lastPulled > rec.lastPulled ? existing.lastPulled : rec.lastPulled;
    // The summary is made again from the manifest itself: an archive's word on what an image needs is not taken.
    const { image: _, ...fields } = rec;
    const image = summarizeImage(rec.digest, manifest);
    await store.writeTag({ ...fields, lastPulled, ...(image ? { image } : {}) });
    summary.tags++;
  }
  return summary;
}

async function importBlob(store: Store, entry: AsyncIterable<Buffer>, digest: string, what: string) {
  const writer = await store.createBlobWriter(digest);
  try {
    for await (const chunk of entry) await writer.write(chunk);
    await writer.commit();
  } catch (err) {
    await writer.abort().catch(() => {});
    throw err instanceof StoreError && err.failure === "corrupt" ? new Error(`${what} does not match its digest`) : err;
  } finally {
    await writer.release().catch(() => {});
  }
}
