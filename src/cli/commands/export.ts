// `ociregistry export --out FILE|-`: the store (or matching images) as a tar to carry across an
// air gap; `--format oci` writes an OCI image-layout archive for skopeo / ctr import.
import { exportArchive } from "../../cache/archive.ts";
import { compilePattern } from "../../config/values.ts";
import { command, existingStore } from "../command.ts";
import { formatBytes } from "../progress.ts";

export default command({
  meta: { name: "export", description: "Write the store, or the matching images, as a tar (example: ociregistry export --out store.tar --pattern 'registry.k8s.io/')" },
  args: {
    out: { type: "string", required: true, description: "Output file, or - for stdout", valueHint: "FILE" },
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches", valueHint: "REGEX" },
    format: { type: "enum", options: ["store", "oci"], default: "store", description: "store (an image path when extracted) or oci (OCI image layout)" },
  },
  async run({ args, cfg }) {
    const pattern = args.pattern === undefined ? undefined : compilePattern(args.pattern, "--pattern");
    const s = await exportArchive(await existingStore(cfg), args.out, { pattern, format: args.format as "store" | "oci" });
    for (const line of s.skipped) process.stderr.write(`skipped ${line}\n`);
    process.stderr.write(`exported ${s.images} image(s): ${s.manifests} manifest(s), ${s.blobs} blob(s), ${formatBytes(s.bytes)}\n`);
  },
});
