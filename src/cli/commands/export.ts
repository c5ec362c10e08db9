// `ociregistry export --out FILE|-`: the store (or matching images) as a tar to carry across an
// air gap; `--format oci` writes an OCI image-layout archive for skopeo / ctr import.
import { defineCommand } from "citty";
import { ConfigError } from "../../config/error.ts";
import { loadConfig } from "../../config/load.ts";
import { exportArchive } from "../../cache/archive.ts";
import { createFsStore } from "../../store/fs.ts";
import { exitWithError } from "../fail.ts";
import { globalArgs, globalFlags } from "../globals.ts";
import { formatBytes } from "../progress.ts";
import { compilePattern } from "./list.ts";

export default defineCommand({
  meta: { name: "export", description: "Write the store, or the matching images, as a tar" },
  args: {
    ...globalArgs,
    out: { type: "string", description: "Output file, or - for stdout (required)", valueHint: "FILE" },
    pattern: { type: "string", description: "Only images whose upstream/repository:tag matches", valueHint: "REGEX" },
    format: { type: "string", description: "store (an image path when extracted) or oci (OCI image layout) (default: store)", valueHint: "FORMAT" },
  },
  async run({ args }) {
    let imagePath: string;
    let pattern: RegExp | undefined;
    let format: "store" | "oci";
    try {
      imagePath = loadConfig(globalFlags(args)).imagePath;
      if (!args.out) throw new ConfigError("--out", "is required (a file, or - for stdout)");
      pattern = compilePattern(args.pattern);
      const f = args.format ?? "store";
      if (f !== "store" && f !== "oci") throw new ConfigError("--format", "must be store or oci");
      format = f;
    } catch (err) {
      return exitWithError(err);
    }
    try {
      const s = await exportArchive(createFsStore(imagePath), args.out, { pattern, format });
      for (const line of s.skipped) process.stderr.write(`skipped ${line}\n`);
      process.stderr.write(`exported ${s.images} image(s): ${s.manifests} manifest(s), ${s.blobs} blob(s), ${formatBytes(s.bytes)}\n`);
    } catch (err) {
      return exitWithError(err);
    }
  },
});
