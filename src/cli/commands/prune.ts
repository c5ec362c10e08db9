// `ociregistry prune --older-than 30d`: drop images nobody pulled (or cached) for that long.
import { pruneStore } from "../../cache/prune.ts";
import { parseDuration } from "../../config/duration.ts";
import { ConfigError } from "../../config/error.ts";
import { compilePattern } from "../../config/values.ts";
import { openStore } from "../../server/runtime.ts";
import { createUsage } from "../../store/usage.ts";
import { imagePattern, matchesAny } from "../../oci/pattern.ts";
import { recordName } from "../../store/record.ts";
import { command } from "../command.ts";
import { formatBytes } from "../progress.ts";

export default command({
  meta: { name: "prune", description: "Remove images not pulled (or cached) within a duration, and the content only they used (example: ociregistry prune --older-than 30d --dry-run)" },
  args: {
    "older-than": { type: "string", required: true, description: "Duration such as 30d, 12h, 90m", valueHint: "DURATION" },
    by: { type: "enum", options: ["lastPulled", "created"], default: "lastPulled", description: "Which time counts" },
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches", valueHint: "REGEX" },
    "dry-run": { type: "boolean", description: "Show what would be removed; remove nothing" },
  },
  async run({ args, cfg }) {
    const olderThanMs = parseDuration(args["older-than"]);
    if (olderThanMs === null) throw new ConfigError("--older-than", `"${args["older-than"]}" is not a duration like 30d, 12h or 90m`);
    const pattern = args.pattern === undefined ? undefined : compilePattern(args.pattern, "--pattern");
    const store = await openStore(cfg);
    await store.init();
    const pins = cfg.pinned.map(imagePattern);
    const r = await pruneStore(store, { olderThanMs, by: args.by as "lastPulled" | "created", pattern, dryRun: !!args["dry-run"], pinned: (t) => matchesAny(pins, recordName(t)) });
    // The store's size snapshot, walked again: a serve on the same store sees it within 30 s.
    if (!r.dryRun && (r.images.length || r.bytes)) await createUsage(store).reconcile().catch(() => null);
    const verb = r.dryRun ? "would remove" : "removed";
    // One write for all of them: a line each is a system call each, seconds for 50,000 images.
    if (r.images.length) console.log(r.images.map((i) => `${verb} ${i}`).join("\n"));
    for (const s of r.skipped) process.stderr.write(`skipped ${s}\n`);
    const orphans = r.unreferenced ? ` (${r.unreferenced} no record needed)` : "";
    console.log(`${verb} ${r.images.length} image(s), ${r.manifests} manifest(s), ${r.blobs} blob(s)${orphans}: ${formatBytes(r.bytes)}${r.dryRun ? "" : " freed"}`);
  },
});
