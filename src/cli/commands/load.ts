// `ociregistry load --image-file FILE` / `--archive FILE`: fill the store before an air gap, or
// merge an exported archive into it.
import { importArchive } from "../../cache/archive.ts";
import type { PlatformChoice } from "../../cache/index.ts";
import { hostPlatform, parsePlatform } from "../../oci/platform.ts";
import { pullImages } from "../../cache/pull-images.ts";
import { readImageList } from "../../config/image-list.ts";
import { ConfigError } from "../../config/error.ts";
import { createRuntime, openStore } from "../../server/runtime.ts";
import { createUsage } from "../../store/usage.ts";
import { command, UsageError } from "../command.ts";
import { createProgressLine, formatBytes } from "../progress.ts";

/** Every value of a repeatable flag (citty keeps only one). */
function allValues(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  rawArgs.forEach((a, i) => {
    if (a === flag && rawArgs[i + 1] !== undefined) out.push(rawArgs[i + 1]!);
    else if (a.startsWith(`${flag}=`)) out.push(a.slice(flag.length + 1));
  });
  return out;
}

function platformChoice(values: string[], all: boolean): PlatformChoice {
  if (all) return "all";
  if (!values.length) return [hostPlatform()];
  return values.map((v) => parsePlatform(v) ?? (() => {
    throw new ConfigError("--platform", `"${v}" is not os/arch[/variant] (e.g. linux/arm64)`);
  })());
}

export default command({
  meta: { name: "load", description: "Pull the images of a list into the store, or merge an exported archive (example: ociregistry load --image-file images.txt)" },
  args: {
    "image-file": { type: "string", description: "File with one image reference per line (# comments allowed)", valueHint: "FILE" },
    archive: { type: "string", description: "Merge a tar made by `export` into the store, verifying every digest", valueHint: "FILE" },
    platform: { type: "string", description: "os/arch[/variant] to pull from an index; repeatable (default: this host's)", valueHint: "PLATFORM" },
    "all-platforms": { type: "boolean", description: "Pull every platform of an index (default: false)" },
    pin: { type: "boolean", description: "Pin what is loaded: a bounded store (maxSize, minFreeSpace) never evicts it (default: false)" },
    "with-referrers": { type: "boolean", description: "Also pull every referrer (signatures, SBOMs, attestations) and cosign's .sig/.att/.sbom tags (default: false)" },
    concurrency: { type: "string", description: "Images pulled at once (default: 4)", valueHint: "N" },
  },
  keys: ["upstream"],
  async run({ args, rawArgs, cfg, log }) {
    if (!args["image-file"] === !args.archive) throw new UsageError("load: give exactly one of --image-file FILE or --archive FILE");
    if (args.archive) {
      // Merging an archive needs only the store: no upstreams, no cache.
      const store = await openStore(cfg);
      await store.init();
      const r = await importArchive(store, args.archive);
      log.info(`merged ${args.archive}: ${r.blobs} blobs and ${r.manifests} manifests added (${r.skipped} already present), ${r.tags} tag records`);
      // The store's size snapshot, walked again: a serve on the same store sees it within 30 s.
      await createUsage(store).reconcile().catch(() => null);
      return;
    }
    const platforms = platformChoice(allValues(rawArgs, "--platform"), !!args["all-platforms"]);
    const concurrency = Number(args.concurrency ?? 4);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new ConfigError("--concurrency", "must be a whole number from 1 to 64");
    const refs = readImageList(args["image-file"]!, "--image-file");
    // The image list is the operator's own choice, not a client's: its upstreams count as listed.
    const { cache } = await createRuntime(cfg, log, { listed: refs.map((r) => r.upstream) });
    // A bounded store admits what it has room for: its size is counted before the first commit.
    if (cache.quota.bounded) await cache.usage.load().then(() => cache.usage.reconcile());
    const progress = createProgressLine();
    const started = Date.now();
    const outcome = await pullImages(cache.pullImage, refs, {
      platforms, concurrency, withReferrers: !!args["with-referrers"], pinned: !!args.pin,
      onProgress: (p) => progress.update(p),
      onImage: (ref, r) => {
        progress.clear();
        if (r instanceof Error) log.error(`${ref}: ${r.message}`);
        else log.info(`${ref} ${r.digest} (${r.images} image manifest(s), ${r.blobs} blobs${r.referrers ? `, ${r.referrers} referrer(s)` : ""}, ${formatBytes(r.downloaded)} downloaded)`);
      },
    });
    progress.stop();
    await cache.flush();
    // The store's size snapshot, walked again: a serve on the same store sees it within 30 s.
    await cache.usage.reconcile().catch(() => null);
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    log.info(`loaded ${outcome.pulled.length} of ${outcome.pulled.length + outcome.failed.length} images, ${formatBytes(outcome.bytes)} downloaded in ${secs} s`);
    if (outcome.failed.length) {
      process.stderr.write(`failed:\n${outcome.failed.map((f) => `  ${f.ref}: ${f.error}`).join("\n")}\n`);
      return 1;
    }
  },
});
