// `ociregistry serve`: maps flags to the config and runs the library's server until a signal:
// SIGTERM/SIGINT stop it gracefully (a second one exits at once), SIGHUP reloads the config.
import { readImageList } from "../../config/image-list.ts";
import { resolveConfig } from "../../config/resolve.ts";
import { createServer } from "../../server/server.ts";
import { command } from "../command.ts";
import { configFlags } from "../globals.ts";
import type { FlagGroup } from "../../config/values.ts";

const KEYS: FlagGroup[] = ["upstream", "archives", "serve"];

export default command({
  meta: { name: "serve", description: "Run the pull-through registry cache (example: ociregistry --image-path ./data serve --port 8080)" },
  args: {
    "preload-images": { type: "string", description: "Image list to pull into the store in the background at start", valueHint: "FILE" },
  },
  keys: KEYS,
  async run({ args, cfg, log, setLogLevel }) {
    // A bad image list stops the start, before anything listens or downloads.
    const preload = args["preload-images"] ? readImageList(args["preload-images"], "--preload-images") : undefined;
    // A reload reads the file again; flags still win over it, as at start.
    const reread = () => resolveConfig(configFlags(args, KEYS));
    const server = await createServer(cfg, log, { preload, clientHints: !args["config-file"], reread, setLogLevel });
    server.start();
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      process.on(sig, () => {
        if (server.stopping) {
          log.warn(`${sig} again: exiting at once, requests and downloads in flight are cut`);
          process.exit(1);
        }
        void server.stop().then(() => process.exit(0));
      });
    }
    // Besides reopening the log file (command.ts), SIGHUP reloads the config.
    process.on("SIGHUP", () => void server.reload("SIGHUP"));
  },
});
