// `ociregistry serve`: maps flags to the config and runs the library's server until a signal.
import { readImageList } from "../../config/image-list.ts";
import { createServer } from "../../server/server.ts";
import { command } from "../command.ts";

export default command({
  meta: { name: "serve", description: "Run the pull-through registry cache (example: ociregistry --image-path ./data serve --port 8080)" },
  args: {
    "preload-images": { type: "string", description: "Image list to pull into the store in the background at start", valueHint: "FILE" },
  },
  keys: ["upstream", "archives", "serve"],
  async run({ args, cfg, log }) {
    // A bad image list stops the start, before anything listens or downloads.
    const preload = args["preload-images"] ? readImageList(args["preload-images"], "--preload-images") : undefined;
    const server = await createServer(cfg, log, { preload, clientHints: !args["config-file"] });
    server.start();
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.on(sig, () => void server.stop().then(() => process.exit(0)));
    }
  },
});
