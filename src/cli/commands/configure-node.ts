// `ociregistry configure-node --mirror URL --all`: makes this node's containerd (or k3s / RKE2)
// pull through the cache, with the upstream as fallback; `--remove` takes it out again.
import { defineCommand } from "citty";
import { resolve } from "node:path";
import { applyChanges, describeChange } from "../node-config/changes.ts";
import { planNode, type NodeOptions } from "../node-config/plan.ts";
import { UsageError } from "../command.ts";

export default defineCommand({
  meta: {
    name: "configure-node",
    description: "Write (or --remove) this node's containerd hosts.toml files or k3s registries.yaml so it pulls through the cache (example: ociregistry configure-node --mirror http://10.0.0.10:31080 --all)",
  },
  args: {
    mirror: { type: "string", description: "The cache as this node reaches it (http:// or https://, host and port)", valueHint: "URL" },
    ca: { type: "string", description: "The CA of the cache's certificate (PEM), for an https mirror", valueHint: "FILE" },
    registries: { type: "string", description: "The registries to mirror, comma-separated (docker.io,registry.k8s.io,…)", valueHint: "LIST" },
    all: { type: "boolean", description: "Mirror every registry (containerd's _default; k3s's \"*\")" },
    "containerd-dir": { type: "string", description: "containerd's hosts directory (config_path)", default: "/etc/containerd/certs.d", valueHint: "DIR" },
    "containerd-config": { type: "string", description: "Also set config_path in this containerd config.toml (containerd must then be restarted)", valueHint: "FILE" },
    k3s: { type: "string", description: "Write this k3s / RKE2 registries.yaml instead of hosts.toml files", valueHint: "FILE" },
    remove: { type: "boolean", description: "Take out exactly what configure-node wrote, nothing else" },
    "dry-run": { type: "boolean", description: "Print what would be written; change nothing" },
    "keep-running": { type: "boolean", description: "Stay running after writing, and on SIGTERM take out what was written (the chart's DaemonSet: uninstalling cleans every node)" },
  },
  async run({ args }) {
    if (args.all && args.registries) throw new UsageError("give --registries or --all, not both");
    if (args.k3s && args["containerd-config"]) throw new UsageError("--containerd-config is for containerd's own hosts.toml files; k3s and RKE2 need only --k3s FILE");
    const registries = args.all ? "all" as const : args.registries?.split(",").map((r) => r.trim()).filter(Boolean);
    if (registries && registries.length === 0) throw new UsageError("--registries names no registry");
    if (args["keep-running"] && (args.remove || args["dry-run"])) throw new UsageError("--keep-running writes, waits and removes: not with --remove or --dry-run");
    const options: NodeOptions = {
      mirror: args.mirror, caFile: args.ca, registries,
      containerdDir: resolve(args["containerd-dir"]),
      k3sFile: args.k3s ? resolve(args.k3s) : undefined,
      containerdConfig: args["containerd-config"] ? resolve(args["containerd-config"]) : undefined,
      remove: args.remove,
    };
    // The handlers go in before anything is written: a SIGTERM the moment the first file lands
    // must still take it out again (without a handler the signal would end the process as it is).
    const stopped = args["keep-running"]
      ? new Promise<string>((done) => {
        for (const s of ["SIGTERM", "SIGINT"] as const) process.once(s, () => done(s));
      })
      : null;
    carryOut(options, !!args["dry-run"]);
    if (!stopped) return;
    const signal = await stopped;
    console.log(`${signal}: taking out what configure-node wrote`);
    carryOut({ ...options, remove: true }, false);
  },
});

function carryOut(options: NodeOptions, dryRun: boolean) {
  const plan = planNode(options);
  if (!dryRun) applyChanges(plan.changes);
  for (const c of plan.changes) console.log(describeChange(c, dryRun));
  if (plan.changes.length === 0) console.log(options.remove ? "nothing to remove: configure-node wrote nothing here" : "unchanged: the node is already configured");
  for (const n of plan.notes) process.stderr.write(`${n}\n`);
}
