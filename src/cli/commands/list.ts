// `ociregistry list`: what the store holds, like `crictl images`.
import { listImages } from "../../cache/list.ts";
import { compilePattern } from "../../config/values.ts";
import { parseDigest } from "../../oci/digest.ts";
import { command, existingStore } from "../command.ts";
import { formatBytes } from "../progress.ts";

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("   ")).join("\n");
}

export default command({
  meta: { name: "list", description: "List the images in the store (example: ociregistry list --pattern 'docker.io/library/')" },
  args: {
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches this regular expression", valueHint: "REGEX" },
    long: { type: "boolean", description: "Show full digests (default: 12 characters)" },
    json: { type: "boolean", description: "Print JSON for scripts" },
  },
  async run({ args, cfg }) {
    const pattern = args.pattern === undefined ? undefined : compilePattern(args.pattern, "--pattern");
    const images = await listImages(existingStore(cfg), pattern, (where) => process.stderr.write(`skipped unreadable tag record ${where} (ociregistry verify reports it)\n`));
    if (args.json) {
      console.log(JSON.stringify(images, null, 2));
      return;
    }
    const rows = [["IMAGE", "TAG", "DIGEST", "SIZE", "LAST PULLED"]];
    for (const i of images) {
      const digest = args.long ? i.digest : parseDigest(i.digest)!.hex.slice(0, 12);
      rows.push([i.image, i.tag, digest, formatBytes(i.size), i.lastPulled.replace(/\.\d+Z$/, "Z")]);
    }
    console.log(table(rows));
  },
});
