// Helpers of the store-scale case: a filesystem that holds a million small files without a disk
// that is slow at them or a tmpfs that spends a page of memory on each, and verify's record pass
// timed apart from its content pass.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { verifyStore } from "../../../src/cache/verify.ts";
import { createFsStore } from "../../../src/store/fs.ts";
import type { Store } from "../../../src/store/types.ts";
import { Scope, sh } from "../lib.ts";
import type { Ctx } from "../report.ts";

const SBIN = { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" };

/**
 * Where the 1,000,000-tag store goes (3 million files of under 1 KiB): as root, an ext4 made for
 * them in a sparse file, mounted over loop (1 KiB inodes holding each file's bytes inline, no
 * journal): about 4 GB instead of 12 on a 4 KiB-block disk or tmpfs, written in a few minutes.
 * Otherwise the temp directory, which may be slow.
 */
export async function millionStoreDir(ss: Scope, ctx: Ctx): Promise<string> {
  const dir = ss.tempDir("ocireg-bench-million-");
  const mkfs = Bun.which("mkfs.ext4", SBIN);
  if (process.getuid?.() !== 0 || !mkfs) {
    ctx.log(`not root or no mkfs.ext4: the 1,000,000-tag store is written to ${dir} (12 GB on a 4 KiB-block filesystem)`);
    return join(dir, "store");
  }
  const image = join(dir, "fs.img");
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  await sh(["truncate", "-s", "6G", image]);
  await sh([mkfs, "-q", "-F", "-O", "inline_data,^has_journal", "-I", "1024", "-N", "3300000", "-b", "4096", image]);
  await sh(["mount", "-o", "loop,noatime", image, mnt]);
  ss.add(() => sh(["umount", mnt], { allowFail: true }));
  ctx.log(`1,000,000 tags: store on an ext4 with inline data mounted at ${mnt} (a sparse file in ${dir})`);
  return join(mnt, "store");
}

/** `verify` of a store, in-process: the content pass, the record pass, and manifests the record pass read. */
export async function verifyRecordPass(root: string): Promise<{ contentS: number; recordS: number; manifestReads: number }> {
  const inner = createFsStore(root);
  let recordsFrom = 0;
  let manifestReads = 0;
  const store: Store = Object.assign(Object.create(inner) as Store, {
    allTags(onDamaged?: (where: string) => void) {
      recordsFrom ||= performance.now();
      return inner.allTags(onDamaged);
    },
    readManifest(digest: string) {
      if (recordsFrom) manifestReads++;
      return inner.readManifest(digest);
    },
  });
  const t0 = performance.now();
  await verifyStore(store, { repair: false });
  return { contentS: (recordsFrom - t0) / 1000, recordS: (performance.now() - recordsFrom) / 1000, manifestReads };
}
