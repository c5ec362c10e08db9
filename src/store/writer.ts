// The one hash → write → verify → commit sequence every back-end's blob writer goes through: the
// back-end only says where bytes go, how to read them back, how to publish them and how to drop
// them; this checks the size as bytes arrive and the digest before anything is published.
import { createDigester, parseDigest } from "../oci/digest.ts";
import { StoreError, type BlobWriter } from "./types.ts";

export interface WriterBackend {
  write(chunk: Uint8Array, position: number): Promise<void>;
  readAt(position: number, into: Uint8Array): Promise<number>;
  /** Makes the verified bytes visible under their digest, at once. */
  publish(): Promise<void>;
  /** Removes everything written; must not throw when there is nothing. */
  drop(): Promise<void>;
  /** Frees what readAt needs (after publish or drop). */
  release(): Promise<void>;
}

export function verifyingWriter(digest: string, expectedSize: number | undefined, backend: WriterBackend): BlobWriter {
  const d = parseDigest(digest);
  if (!d) throw new StoreError("corrupt", `not a digest: ${JSON.stringify(digest)}`);
  const hasher = createDigester(d.algorithm);
  let written = 0;
  let state: "open" | "verified" | "committed" | "dropped" = "open";

  async function fail(message: string): Promise<never> {
    state = "dropped";
    await backend.drop().catch(() => {});
    throw new StoreError("corrupt", message);
  }

  return {
    get written() {
      return written;
    },
    async write(chunk) {
      if (state !== "open") throw new StoreError("conflict", `the writer of ${digest} is closed`);
      if (expectedSize !== undefined && written + chunk.byteLength > expectedSize) {
        await fail(`more than the ${expectedSize} bytes announced for ${digest}`);
      }
      hasher.update(chunk);
      // Counted once written: a reader may read up to `written` at once.
      await backend.write(chunk, written);
      written += chunk.byteLength;
    },
    readAt: (position, into) => backend.readAt(position, into),
    async verify() {
      if (state === "verified") return;
      if (state !== "open") throw new StoreError("conflict", `the writer of ${digest} is closed`);
      if (expectedSize !== undefined && written !== expectedSize) await fail(`${written} of the ${expectedSize} bytes announced for ${digest}`);
      const got = hasher.digest();
      if (got !== digest) await fail(`content does not match its digest ${digest} (got ${got})`);
      state = "verified";
    },
    async commit() {
      await this.verify();
      try {
        await backend.publish();
        state = "committed";
      } catch (err) {
        state = "dropped";
        await backend.drop().catch(() => {});
        throw err;
      }
    },
    async abort() {
      if (state !== "open" && state !== "verified") return;
      state = "dropped";
      await backend.drop();
    },
    release: () => backend.release(),
  };
}
