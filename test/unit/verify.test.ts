import { expect, test } from "bun:test";
import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { verifyStore } from "../../src/cache/verify.ts";
import { makeImage } from "../helpers/images.ts";
import { waitFor } from "../helpers/procs.ts";
import { createTestRegistry } from "../helpers/registry.ts";

test("verify finds corrupt content, dangling and unreadable tag records; --repair removes them", async () => {
  const r = await createTestRegistry();
  const img = makeImage({ content: 2000 });
  r.upstream.add("app", "v1", img);
  await r.request("/v2/app/manifests/v1");
  for (const b of img.blobs) await (await r.request(`/v2/app/blobs/${b.digest}`)).arrayBuffer();
  await waitFor("the blobs to be committed", async () => (await Promise.all(img.blobs.map((b) => r.store.statBlob(b.digest)))).every(Boolean));
  expect(await verifyStore(r.store, { repair: false })).toMatchObject({ blobs: 2, manifests: 1, tags: 1, corrupt: [], dangling: [], damaged: [] });

  writeFileSync(join(r.root, "blobs/sha256", img.blobs[1]!.digest.slice(7)), "flipped");
  await r.store.writeTag({ ...(await r.store.readTag("up.test", "app", "v1"))!, tag: "gone", digest: `sha256:${"f".repeat(64)}` });
  mkdirSync(join(r.root, "repositories/up.test/app/_tags"), { recursive: true });
  writeFileSync(join(r.root, "repositories/up.test/app/_tags/torn.json"), '{"upstream":');
  const found = await verifyStore(r.store, { repair: false });
  expect(found.corrupt).toEqual([`blobs ${img.blobs[1]!.digest}`]);
  expect(found.dangling).toEqual([`up.test/app:gone -> sha256:${"f".repeat(64)}`]);
  expect(found.damaged).toEqual(["repositories/up.test/app/_tags/torn.json"]);

  await verifyStore(r.store, { repair: true });
  expect(await verifyStore(r.store, { repair: false })).toMatchObject({ blobs: 1, tags: 1, corrupt: [], dangling: [], damaged: [] });
  // The next pull fetches the removed blob again.
  const again = await r.request(`/v2/app/blobs/${img.blobs[1]!.digest}`);
  expect(new Uint8Array(await again.arrayBuffer())).toEqual(img.blobs[1]!.bytes);
});
