// `ociregistry verify [--repair]`: re-hash the store, report (and optionally remove) bad content.
import { problemCount, verifyStore } from "../../cache/verify.ts";
import { createUsage } from "../../store/usage.ts";
import { command, existingStore } from "../command.ts";

export default command({
  meta: { name: "verify", description: "Re-hash every blob and manifest; report corrupt or missing content (example: ociregistry verify --repair)" },
  args: {
    repair: { type: "boolean", description: "Remove corrupt content and dangling tag records so the next pull re-fetches them, and write missing image summaries into tag records (default: false)" },
  },
  async run({ args, cfg }) {
    const store = await existingStore(cfg);
    const r = await verifyStore(store, { repair: !!args.repair });
    // The size serve and load keep (state/usage.json) against what the walk found; the walk's figure is kept.
    const usage = createUsage(store);
    await usage.load();
    const recorded = usage.figures.bytes;
    const hadSnapshot = recorded > 0 || usage.figures.blobs > 0 || usage.figures.manifests > 0;
    const walked = await usage.reconcile();
    if (walked && hadSnapshot && walked.after.bytes !== recorded) {
      console.log(`size drift: ${recorded} bytes recorded, ${walked.after.bytes} held by ${walked.after.blobs} blobs and ${walked.after.manifests} manifests (corrected)`);
    } else if (walked) console.log(`store size: ${walked.after.bytes} bytes (${walked.after.blobs} blobs, ${walked.after.manifests} manifests), as recorded`);
    const verb = r.repaired ? "removed" : "found";
    for (const c of r.corrupt) console.log(`corrupt: ${c}${r.repaired ? " (removed)" : ""}`);
    for (const d of r.dangling) console.log(`missing manifest: ${d}${r.repaired ? " (tag record removed)" : ""}`);
    for (const d of r.damaged) console.log(`unreadable tag record: ${d}${r.repaired ? " (removed)" : ""}`);
    for (const i of r.invalid) console.log(`invalid reference in manifest ${i}`);
    for (const i of r.incomplete) console.log(`incomplete image: ${i} (pull or load it again to complete it)`);
    if (r.unsummarized) {
      console.log(r.repaired
        ? `image summary written to ${r.unsummarized} tag record(s)`
        : `${r.unsummarized} tag record(s) without a current image summary (list and prune read their manifests; verify --repair writes it)`);
    }
    for (const u of r.unreferenced) console.log(`unreferenced: ${u} (no record needs it; prune removes it once an hour old)`);
    const problems = problemCount(r);
    const notes = [r.incomplete.length && `${r.incomplete.length} incomplete image(s)`, r.unreferenced.length && `${r.unreferenced.length} unreferenced file(s)`].filter(Boolean);
    console.log(`checked ${r.blobs} blobs, ${r.manifests} manifests, ${r.tags} tags in ${cfg.imagePath}: ${problems} problem(s) ${verb}${notes.length ? `; ${notes.join(", ")}` : ""}`);
    if (problems && !r.repaired) {
      console.log("run `ociregistry verify --repair` to remove them; the next pull fetches them again");
      return 1;
    }
  },
});
