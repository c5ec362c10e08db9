// `ociregistry prune --older-than 30d`: drop images nobody pulled (or cached) for that long.
import { defineCommand } from "citty";
import { pruneStore } from "../../cache/prune.ts";
import { parseDuration } from "../../config/duration.ts";
import { ConfigError } from "../../config/error.ts";
import { loadConfig } from "../../config/load.ts";
import { createFsStore } from "../../store/fs.ts";
import { exitWithError } from "../fail.ts";
import { globalArgs, globalFlags } from "../globals.ts";
import { formatBytes } from "../progress.ts";
import { compilePattern } from "./list.ts";

export default defineCommand({
  meta: { name: "prune", description: "Remove images not pulled (or cached) within a duration, and the content only they used" },
  args: {
    ...globalArgs,
    "older-than": { type: "string", description: "Duration such as 30d, 12h, 90m (required)", valueHint: "DURATION" },
    by: { type: "string", description: "lastPulled or created (default: lastPulled)", valueHint: "FIELD" },
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches", valueHint: "REGEX" },
    "dry-run": { type: "boolean", description: "Show what would be removed; remove nothing" },
  },
  async run({ args }) {
    let imagePath: string;
    let olderThanMs: number;
    let by: "lastPulled" | "created";
    let pattern: RegExp | undefined;
    try {
      imagePath = loadConfig(globalFlags(args)).imagePath;
      if (!args["older-than"]) throw new ConfigError("--older-than", "is required (e.g. --older-than 30d)");
      const d = parseDuration(args["older-than"]);
      if (d === null) throw new ConfigError("--older-than", `"${args["older-than"]}" is not a duration like 30d, 12h or 90m`);
      olderThanMs = d;
      const b = args.by ?? "lastPulled";
      if (b !== "lastPulled" && b !== "created") throw new ConfigError("--by", "must be lastPulled or created");
      by = b;
      pattern = compilePattern(args.pattern);
    } catch (err) {
      return exitWithError(err);
    }
    const store = createFsStore(imagePath);
    await store.init();
    const r = await pruneStore(store, { olderThanMs, by, pattern, dryRun: !!args["dry-run"] });
    const verb = r.dryRun ? "would remove" : "removed";
    for (const i of r.images) console.log(`${verb} ${i}`);
    for (const s of r.skipped) process.stderr.write(`skipped ${s}\n`);
    console.log(`${verb} ${r.images.length} image(s), ${r.manifests} manifest(s), ${r.blobs} blob(s): ${formatBytes(r.bytes)}${r.dryRun ? "" : " freed"}`);
  },
});
