// `ociregistry version`
import { defineCommand } from "citty";
import pkg from "../../../package.json" with { type: "json" };

export default defineCommand({
  meta: { name: "version", description: "Print the version" },
  run() {
    console.log(`ociregistry ${pkg.version} (bun ${Bun.version})`);
  },
});
