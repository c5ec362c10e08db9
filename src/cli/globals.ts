// Flags every subcommand accepts, and the argv rewrite that lets users put them before the
// subcommand (`ociregistry --config-file F serve`) as the seed project's users do.
import type { ArgsDef } from "citty";
import type { ConfigFlags } from "../config/resolve.ts";

export const globalArgs = {
  "config-file": { type: "string", description: "YAML configuration file", valueHint: "FILE" },
  "image-path": { type: "string", description: "Image store directory (default: /var/lib/ociregistry)", valueHint: "DIR" },
  "log-level": { type: "string", description: "error, warn, info, debug or trace (default: info)", valueHint: "LEVEL" },
  "log-format": { type: "string", description: "text or json (default: text)", valueHint: "FORMAT" },
  store: { type: "string", description: "s3://BUCKET/PREFIX to keep the store in S3 (config s3 for the endpoint and keys); --image-path then holds temporary files", valueHint: "URL" },
  "log-file": { type: "string", description: "Append logs to this file (reopened on SIGHUP) instead of standard error", valueHint: "FILE" },
} as const satisfies ArgsDef;

const VALUE_FLAGS = new Set(Object.keys(globalArgs).map((k) => `--${k}`));

/** Moves global flags that precede the subcommand to after it, where citty parses them. */
export function hoistGlobalFlags(argv: string[]): string[] {
  const before: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const a = argv[i]!;
    const bare = a.split("=")[0]!;
    if (!VALUE_FLAGS.has(bare)) break;
    before.push(a);
    if (!a.includes("=") && i + 1 < argv.length) before.push(argv[++i]!);
    i++;
  }
  if (i >= argv.length || before.length === 0) return argv;
  return [argv[i]!, ...before, ...argv.slice(i + 1)];
}

export function globalFlags(args: Record<string, unknown>): ConfigFlags {
  const s = (k: string) => (typeof args[k] === "string" ? (args[k] as string) : undefined);
  return { configFile: s("config-file"), imagePath: s("image-path"), logLevel: s("log-level"), logFormat: s("log-format"), logFile: s("log-file"), store: s("store") };
}

/** Flags of the commands that talk to upstreams (serve, load). */
export const upstreamArgs = {
  "pull-timeout": { type: "string", description: "Milliseconds to wait for upstream data (default: 60000)", valueHint: "MS" },
  "docker-config": { type: "string", description: "Docker config.json whose auths give upstream credentials", valueHint: "FILE" },
  upstreams: {
    type: "string", valueHint: "POLICY",
    description: "public: any upstream on public addresses, internal ones only when listed (default); listed: registries entries only; any: every host, internal services included",
  },
} as const satisfies ArgsDef;

/** `--archives DIR` (serve, list): a directory of .oci archives (config `archives.path`). */
export const archivesArg = {
  archives: { type: "string", description: "Serve images from the .oci archives under this directory first (config archives.path)", valueHint: "DIR" },
} as const satisfies ArgsDef;
