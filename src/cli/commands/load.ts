// `ociregistry load --image-file FILE` / `--archive FILE`: fill the store before an air gap, or
// merge an exported archive into it.
import { defineCommand } from "citty";
import { readFileSync } from "node:fs";
import { hostPlatform, parsePlatform, type PlatformChoice } from "../../cache/index.ts";
import { loadImages } from "../../cache/load.ts";
import { ConfigError, loadConfig } from "../../config/load.ts";
import { parseImageList } from "../../config/image-list.ts";
import type { Config } from "../../config/schema.ts";
import { createLogger, type Logger } from "../../log.ts";
import type { Platform } from "../../oci/mediatypes.ts";
import { importArchive } from "../../cache/archive.ts";
import { exitWithError } from "../fail.ts";
import { globalArgs, globalFlags, upstreamArgs } from "../globals.ts";
import { createProgressLine, formatBytes } from "../progress.ts";
import { createRuntime } from "../runtime.ts";

/** Every value of a repeatable flag (citty keeps only one). */
function allValues(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  rawArgs.forEach((a, i) => {
    if (a === flag && rawArgs[i + 1] !== undefined) out.push(rawArgs[i + 1]!);
    else if (a.startsWith(`${flag}=`)) out.push(a.slice(flag.length + 1));
  });
  return out;
}

export function platformChoice(values: string[], all: boolean): PlatformChoice {
  if (all) return "all";
  if (!values.length) return [hostPlatform()];
  return values.map((v) => {
    const p: Platform | null = parsePlatform(v);
    if (!p) throw new ConfigError("--platform", `"${v}" is not os/arch[/variant] (e.g. linux/arm64)`);
    return p;
  });
}

/** Pulls the images of a list file into the store; used by `load` and `serve --preload-images`. */
export async function loadImageFile(cfg: Config, log: Logger, file: string, platforms: PlatformChoice, concurrency: number, cache?: Awaited<ReturnType<typeof createRuntime>>["cache"]) {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot read the image list: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const refs = parseImageList(text, `image list ${file}`);
  const c = cache ?? (await createRuntime(cfg, log)).cache;
  const progress = createProgressLine();
  const started = Date.now();
  const outcome = await loadImages(c.pullImage, refs, {
    platforms, concurrency,
    onProgress: (p) => progress.update(p),
    onImage: (ref, r) => {
      progress.clear();
      if (r instanceof Error) log.error(`${ref}: ${r.message}`);
      else log.info(`${ref} ${r.digest} (${r.images} platform image(s), ${r.blobs} blobs, ${formatBytes(r.downloaded)} downloaded)`);
    },
  });
  progress.stop();
  await c.flush();
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  log.info(`loaded ${outcome.pulled.length} of ${outcome.pulled.length + outcome.failed.length} images, ${formatBytes(outcome.bytes)} downloaded in ${secs} s`);
  return outcome;
}

export default defineCommand({
  meta: { name: "load", description: "Pull the images of a list into the store, or merge an exported archive" },
  args: {
    ...globalArgs,
    ...upstreamArgs,
    "image-file": { type: "string", description: "File with one image reference per line (# comments allowed)", valueHint: "FILE" },
    archive: { type: "string", description: "Merge a tar made by `export` into the store, verifying every digest", valueHint: "FILE" },
    platform: { type: "string", description: "os/arch[/variant] to pull from an index; repeatable (default: this host's)", valueHint: "PLATFORM" },
    "all-platforms": { type: "boolean", description: "Pull every platform of an index (default: false)" },
    concurrency: { type: "string", description: "Images pulled at once (default: 4)", valueHint: "N" },
  },
  async run({ args, rawArgs }) {
    let cfg: Config;
    let platforms: PlatformChoice;
    let concurrency: number;
    try {
      cfg = loadConfig({ ...globalFlags(args), pullTimeout: args["pull-timeout"], dockerConfig: args["docker-config"] });
      platforms = platformChoice(allValues(rawArgs, "--platform"), !!args["all-platforms"]);
      concurrency = Number(args.concurrency ?? 4);
      if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new ConfigError("--concurrency", "must be a whole number from 1 to 64");
      if (!args["image-file"] === !args.archive) throw new ConfigError("load", "give exactly one of --image-file FILE or --archive FILE");
    } catch (err) {
      return exitWithError(err);
    }
    const log = createLogger(cfg.logLevel, cfg.logFormat);
    try {
      if (args.archive) {
        const { store } = await createRuntime(cfg, log);
        const r = await importArchive(store, args.archive);
        log.info(`merged ${args.archive}: ${r.blobs} blobs and ${r.manifests} manifests added (${r.skipped} already present), ${r.tags} tag records`);
        return;
      }
      const outcome = await loadImageFile(cfg, log, args["image-file"]!, platforms, concurrency);
      if (outcome.failed.length) {
        process.stderr.write(`failed:\n${outcome.failed.map((f) => `  ${f.ref}: ${f.error}`).join("\n")}\n`);
        process.exit(1);
      }
    } catch (err) {
      return exitWithError(err);
    }
  },
});
