// The store contract on the S3 driver, against a real S3 service (Ceph RGW, test/helpers/rgw.ts).
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { s3Driver } from "../../src/store/s3/store.ts";
import { startRgw, type Rgw } from "../helpers/rgw.ts";
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
