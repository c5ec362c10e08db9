// The store contract on the S3 driver, against a real S3 service (Ceph RGW, test/helpers/rgw.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordKey } from "../../src/store/keys.ts";
import { processOwner } from "../../src/store/owner.ts";
import { createLayoutStore } from "../../src/store/layout.ts";
import { TOMBSTONE_MS } from "../../src/store/s3/conditional.ts";
import { s3Driver } from "../../src/store/s3/store.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";
import { record } from "./fixtures.ts";
import { storeContract } from "./store-contract.ts";

let rgw: Rgw;
const scratch = mkdtempSync(join(tmpdir(), "ocireg-s3-contract-"));
let n = 0;

beforeAll(async () => {
  rgw = await startRgw();
  await rgw.createBucket("contract");
}, 120_000);

afterAll(async () => {
  await rgw?.stop();
  rmSync(scratch, { recursive: true, force: true });
}, 60_000);

// Each test gets a prefix of its own: a fresh, empty store in the same bucket.
storeContract("S3 (Ceph RGW)", async () => s3Driver({
  endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
  pathStyle: true, prefix: `t${n++}/`, scratchDir: scratch, partSize: 5 * 1024 * 1024,
}));

// A removal on S3 is a tombstone (If-Match) then a DELETE: what readers and writers do meanwhile.
describe("records being removed on S3 (tombstones)", () => {
  const driver = () => s3Driver({
    endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
    pathStyle: true, prefix: `t${n++}/`, scratchDir: scratch,
  });
  const place = { upstream: "up.test", repository: "team/app", tag: "v1" };
  const tombstone = (at: Date) => new TextEncoder().encode(`\0ociregistry-removed ${at.toISOString()}\n`);

  test("a record being removed reads as absent, is neither listed as a record nor as damaged, and a create waits for the delete", async () => {
    const d = driver();
    const store = createLayoutStore(d);
    await d.put(recordKey(place), tombstone(new Date()));
    expect(await store.readTag(place.upstream, place.repository, place.tag)).toBeNull();
    const damaged: string[] = [];
    expect(await Array.fromAsync(store.allTags((w) => damaged.push(w)))).toEqual([]);
    expect(damaged).toEqual([]);
    // The remover deletes its tombstone a moment later: the create that waited for it then succeeds.
    setTimeout(() => void d.remove(recordKey(place)), 150);
    const u = await store.updateTag(place, (cur) => cur ?? record());
    expect(u).toMatchObject({ written: true, created: true });
    expect((await store.readTag(place.upstream, place.repository, place.tag))?.digest).toBe(record().digest);
  });

  test(`a tombstone older than ${TOMBSTONE_MS / 1000} s (its remover died) is overwritten`, async () => {
    const d = driver();
    const store = createLayoutStore(d);
    await d.put(recordKey(place), tombstone(new Date(Date.now() - TOMBSTONE_MS - 5000)));
    expect(await store.updateTag(place, (cur) => cur ?? record())).toMatchObject({ written: true, created: true });
  });
});

describe("the S3 store's local scratch directory", () => {
  test("at start, the scratch copies and relay spools of killed local processes are removed; a live process's stay", async () => {
    const local = mkdtempSync(join(scratch, "local-"));
    const dead = join(local, "tmp", "deadbeef-999999-1", "relays");
    const live = join(local, "tmp", processOwner());
    for (const d of [dead, live]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, "part"), "half");
    }
    const d = s3Driver({
      endpoint: rgw.endpoint, region: rgw.region, bucket: "contract", accessKeyId: rgw.accessKeyId, secretAccessKey: rgw.secretAccessKey,
      pathStyle: true, prefix: `t${n++}/`, scratchDir: local,
    });
    expect(await createLayoutStore(d).init()).toBe(1);
    expect(readdirSync(join(local, "tmp"))).toEqual([processOwner()]);
    expect(readFileSync(join(live, "part"), "utf8")).toBe("half");
  });
});
