// How long a relay waits for the owner's object once its bytes are verified (src/cache/relay.ts):
// `waitMs`, longer while the owner still holds its lease (it uploads after its clients are served),
// never past `maxWaitMs`; NotKept when the object did not appear.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { NotKept } from "../../src/cache/download.ts";
import { relaySpool } from "../../src/cache/relay.ts";
import { digestOf } from "../../src/oci/digest.ts";
import type { StoredBlob } from "../../src/store/types.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-relay-wait-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bytes = new TextEncoder().encode("relayed bytes");
const object: StoredBlob = { size: bytes.byteLength, file: new Blob([bytes]) };

/** A spool whose clock moves 5 s at each look for the object; the object appears at `appearsAt` s (never: Infinity). */
async function spool(o: { appearsAt: number; busy: boolean; maxWaitMs?: number }) {
  let t = 0;
  let looks = 0;
  const w = await relaySpool(dir, digestOf(bytes), bytes.byteLength, {
    stored: async () => {
      looks++;
      t += 5000;
      return t >= o.appearsAt * 1000 ? object : null;
    },
    verified: () => {},
    waitMs: 15_000,
    ownerBusy: async () => o.busy,
    ...(o.maxWaitMs ? { maxWaitMs: o.maxWaitMs } : {}),
    now: () => t,
  });
  await w.write(bytes);
  const result = await w.commit().then(() => "kept", (e: Error) => (e instanceof NotKept ? `not kept at ${t / 1000} s` : e.message));
  await w.release();
  return { result, looks };
}

describe("a relay waiting for the owner's object", () => {
  test("kept as soon as it appears within the wait", async () => {
    expect((await spool({ appearsAt: 10, busy: false })).result).toBe("kept");
  });

  test("past the wait, kept while the owner still holds its lease (its upload runs)", async () => {
    expect((await spool({ appearsAt: 40, busy: true, maxWaitMs: 60_000 })).result).toBe("kept");
  });

  test("past the wait with the owner's lease gone: not kept", async () => {
    expect((await spool({ appearsAt: 40, busy: false, maxWaitMs: 60_000 })).result).toBe("not kept at 15 s");
  });

  test("never past the longest wait, however busy the owner says it is", async () => {
    expect((await spool({ appearsAt: Infinity, busy: true, maxWaitMs: 60_000 })).result).toBe("not kept at 60 s");
  });
});
