// `ociregistry serve`: maps flags to the config and runs the library's server until a signal.
import { readImageList } from "../../config/image-list.ts";
import { createServer } from "../../server/server.ts";
import { command } from "../command.ts";
import { archivesArg, upstreamArgs } from "../globals.ts";

export default command({
  meta: { name: "serve", description: "Run the pull-through registry cache (example: ociregistry --image-path ./data serve --port 8080)" },
  args: {
    ...upstreamArgs,
    ...archivesArg,
    host: { type: "string", description: "Address to listen on (default: 0.0.0.0)", valueHint: "ADDR" },
    port: { type: "string", description: "Port to listen on (default: 8080)", valueHint: "PORT" },
    "default-ns": { type: "string", description: "Upstream for requests that name none (default: docker.io)", valueHint: "HOST" },
    "revalidate-after": { type: "string", description: "Check cached tags upstream after this long (default: 5m)", valueHint: "DURATION" },
    "air-gapped": { type: "boolean", description: "Never contact an upstream; serve only the store (default: false)" },
    "preload-images": { type: "string", description: "Image list to pull into the store in the background at start", valueHint: "FILE" },
  },
  flags: (args) => ({
    host: args.host, port: args.port, defaultNs: args["default-ns"], pullTimeout: args["pull-timeout"],
    revalidateAfter: args["revalidate-after"], airGapped: args["air-gapped"], dockerConfig: args["docker-config"],
    archives: args.archives, upstreams: args.upstreams,
  }),
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
