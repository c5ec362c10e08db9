// `ociregistry list`: what the store holds, like `crictl images`; with --archives (or the config's
// archives.path), also the images of the .oci archives `serve` would serve first. Names, tags and
// file names come from upstreams and archives: every cell and message is printed escaped.
import type { ArchiveListedImage } from "../../archives/list.ts";
import { createArchiveSource } from "../../archives/source.ts";
import { listImages, type ListedImage } from "../../cache/list.ts";
import { compilePattern } from "../../config/values.ts";
import { escapeText, jsonText } from "../../log.ts";
import { parseDigest } from "../../oci/digest.ts";
import { imagePattern } from "../../oci/pattern.ts";
import { command, existingStore } from "../command.ts";
import { formatBytes } from "../progress.ts";

/** Aligned columns of escaped cells: a cell can neither move the cursor nor start a line. */
function table(cells: string[][]): string {
  const rows = cells.map((r) => r.map(escapeText));
  // A loop, not Math.max(...column): a million rows would overflow the call stack as arguments.
  const widths = rows[0]!.map(() => 0);
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i]!, c.length);
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("   ")).join("\n");
}

const warn = (message: string) => process.stderr.write(`${escapeText(message)}\n`);

export default command({
  meta: { name: "list", description: "List the images in the store (example: ociregistry list --pattern 'docker.io/library/')" },
  args: {
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches this regular expression", valueHint: "REGEX" },
    long: { type: "boolean", description: "Show full digests (default: 12 characters)" },
    json: { type: "boolean", description: "Print JSON for scripts" },
  },
  keys: ["archives"],
  async run({ args, cfg }) {
    const pattern = args.pattern === undefined ? undefined : compilePattern(args.pattern, "--pattern");
    const images: Array<ListedImage | ArchiveListedImage> = await listImages(await existingStore(cfg), pattern, (where) => warn(`skipped unreadable tag record ${where} (ociregistry verify reports it)`), cfg.pinned.map(imagePattern));
    if (cfg.archives) {
      const archives = createArchiveSource(cfg.archives.path, { log: { debug() {}, info() {}, warn() {} } });
      for (const p of (await archives.rescan()).problems) warn(p);
      const found = await archives.images((abs, problem) => warn(`skipped archive ${abs}: ${problem}`));
      images.push(...found.filter((i) => !pattern || pattern.test(`${i.image}:${i.tag}`)));
    }
    if (args.json) {
      console.log(jsonText(images, 2));
      return;
    }
    const rows = [["IMAGE", "TAG", "DIGEST", "SIZE", "LAST PULLED", "PINNED", ...(cfg.archives ? ["ARCHIVE"] : [])]];
    for (const i of images) {
      const digest = args.long ? i.digest : parseDigest(i.digest)!.hex.slice(0, 12);
      const pulled = "lastPulled" in i ? i.lastPulled.replace(/\.\d+Z$/, "Z") : "-";
      rows.push([i.image, i.tag, digest, formatBytes(i.size), pulled, "pinned" in i && i.pinned ? "yes" : "-", ...(cfg.archives ? ["archive" in i ? i.archive : "-"] : [])]);
    }
    console.log(table(rows));
  },
});
