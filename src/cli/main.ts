#!/usr/bin/env bun
// The `ociregistry` command: a lazy map of subcommands, each a thin shell over library code.
import { defineCommand, runMain } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { globalArgs, hoistGlobalFlags } from "./globals.ts";

const main = defineCommand({
  meta: { name: "ociregistry", version: pkg.version, description: "Pull-through OCI registry cache and air-gap image tool" },
  args: { ...globalArgs },
  subCommands: {
    serve: () => import("./commands/serve.ts").then((m) => m.default),
    load: () => import("./commands/load.ts").then((m) => m.default),
    list: () => import("./commands/list.ts").then((m) => m.default),
    prune: () => import("./commands/prune.ts").then((m) => m.default),
    export: () => import("./commands/export.ts").then((m) => m.default),
    verify: () => import("./commands/verify.ts").then((m) => m.default),
    version: () => import("./commands/version.ts").then((m) => m.default),
  },
});

await runMain(main, { rawArgs: hoistGlobalFlags(process.argv.slice(2)) });
