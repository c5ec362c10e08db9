#!/usr/bin/env bun
// The `ociregistry` command: a lazy map of subcommands, each a thin shell over library code.
import { defineCommand, runCommand, runMain } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { reportError } from "./command.ts";
import { globalArgs, hoistGlobalFlags } from "./globals.ts";

const main = defineCommand({
  meta: {
    name: "ociregistry", version: pkg.version,
    description: "Pull-through OCI registry cache and air-gap image tool (example: ociregistry --image-path ./data serve)",
  },
  args: { ...globalArgs },
  subCommands: {
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    load: () => import("./commands/load.ts").then((m) => m.default),
    list: () => import("./commands/list.ts").then((m) => m.default),
    prune: () => import("./commands/prune.ts").then((m) => m.default),
    export: () => import("./commands/export.ts").then((m) => m.default),
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    config: () => import("./commands/config.ts").then((m) => m.default),
    "configure-node": () => import("./commands/configure-node.ts").then((m) => m.default),
    version: () => import("./commands/version.ts").then((m) => m.default),
  },
});

const argv = hoistGlobalFlags(process.argv.slice(2));
if (argv.length === 0 || argv.some((a) => a === "--help" || a === "-h") || (argv.length === 1 && ["--version", "-v"].includes(argv[0]!))) {
  // citty prints usage and versions.
  await runMain(main, { rawArgs: argv });
} else {
  try {
    await runCommand(main, { rawArgs: argv });
  } catch (err) {
    // Unknown commands, missing or invalid arguments: a usage error, exit 2.
    const code = reportError(err);
    const unknown = (err as { code?: unknown })?.code === "E_UNKNOWN_COMMAND";
    if (code === 2) process.stderr.write(`run \`ociregistry${unknown ? "" : ` ${argv[0]}`} --help\` for usage\n`);
    process.exit(code);
  }
}
