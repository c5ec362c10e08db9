// deploy/systemd/ociregistry.service and scripts/install.sh: the install into a staging root,
// systemd's own checks of the installed unit, and the unit's command line against the binary.
// (No systemd runs the unit here: this machine's PID 1 is not systemd.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BINARY, requireBinary } from "../helpers/binary.ts";
import { requireTool, run, stopProcess, track, waitFor } from "../helpers/procs.ts";

const ROOT = join(import.meta.dir, "../..");
const UNIT = "etc/systemd/system/ociregistry.service";
let work: string;
let staged: string;
let installOutput: string;

/** `key=value` lines of a unit or environment file; repeated keys keep every value. */
function directives(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const m = line.match(/^([A-Za-z_]+)=(.*)$/);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

async function install(destdir: string, extra: string[] = []) {
  return run(["bash", "scripts/install.sh", "--binary", BINARY, "--destdir", destdir, ...extra], { cwd: ROOT });
}

/** A staging root systemd-analyze can load units from: the distribution's units plus ours. */
function withSystemUnits(root: string) {
  cpSync("/usr/lib/systemd/system", join(root, "usr/lib/systemd/system"), { recursive: true, verbatimSymlinks: true });
}

beforeAll(async () => {
  requireBinary();
  requireTool("systemd-analyze");
  work = mkdtempSync(join(tmpdir(), "ocireg-systemd-"));
  staged = join(work, "root");
  installOutput = (await install(staged)).stdout;
  withSystemUnits(staged);
});

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("scripts/install.sh --destdir", () => {
  test("puts the binary, the unit, /etc/ociregistry and the defaults file under the staging root", () => {
    const bin = statSync(join(staged, "usr/local/bin/ociregistry"));
    expect([bin.size, bin.mode & 0o777]).toEqual([statSync(BINARY).size, 0o755]);
    expect(readFileSync(join(staged, UNIT), "utf8")).toBe(readFileSync(join(ROOT, "deploy/systemd/ociregistry.service"), "utf8"));
    expect(statSync(join(staged, "etc/ociregistry")).isDirectory()).toBe(true);
    expect(statSync(join(staged, "etc/default/ociregistry")).mode & 0o777).toBe(0o600);
  });

  test("starts nothing and says what to run on the target", () => {
    expect(installOutput).toContain("systemctl daemon-reload && systemctl enable --now ociregistry");
  });

  test("keeps an existing /etc/default/ociregistry on a second install", async () => {
    const root = join(work, "again");
    await install(root);
    writeFileSync(join(root, "etc/default/ociregistry"), 'OCIREGISTRY_ARGS="--port 5000"\n');
    await install(root);
    expect(readFileSync(join(root, "etc/default/ociregistry"), "utf8")).toBe('OCIREGISTRY_ARGS="--port 5000"\n');
  });

  test("--prefix installs the binary there and points ExecStart at it", async () => {
    const root = join(work, "opt");
    await install(root, ["--prefix", "/opt/ociregistry"]);
    withSystemUnits(root);
    expect(statSync(join(root, "opt/ociregistry/bin/ociregistry")).isFile()).toBe(true);
    const exec = directives(readFileSync(join(root, UNIT), "utf8")).get("ExecStart")!;
    expect(exec[0]!.split(" ")[0]).toBe("/opt/ociregistry/bin/ociregistry");
    const r = await run(["systemd-analyze", "verify", `--root=${root}`, "ociregistry.service"], { allowFail: true });
    expect([r.code, r.stderr]).toEqual([0, ""]);
  });

  test("refuses a binary that does not exist", async () => {
    const r = await run(["bash", "scripts/install.sh", "--binary", join(work, "missing"), "--destdir", join(work, "x")], { cwd: ROOT, allowFail: true });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("is not an executable");
  });
});

describe("the installed unit", () => {
  test("passes systemd-analyze verify without a warning", async () => {
    const r = await run(["systemd-analyze", "verify", `--root=${staged}`, "ociregistry.service"], { allowFail: true });
    expect([r.code, r.stderr]).toEqual([0, ""]);
  });

  test("is rated at most 2.0 by systemd-analyze security", async () => {
    const r = await run(["systemd-analyze", "security", "--offline=true", `--root=${staged}`, "--threshold=20", "ociregistry.service"], { allowFail: true });
    expect(r.code).toBe(0);
  });

  test("runs as a dynamic user with its store in the state directory, hardened", () => {
    const d = directives(readFileSync(join(staged, UNIT), "utf8"));
    const one = (k: string) => d.get(k)?.join(" ");
    expect(one("DynamicUser")).toBe("yes");
    expect(one("StateDirectory")).toBe("ociregistry");
    expect(one("ExecStart")).toContain(` --image-path /var/lib/${one("StateDirectory")} `);
    for (const [k, v] of [["ProtectSystem", "strict"], ["ProtectHome", "yes"], ["PrivateTmp", "yes"], ["NoNewPrivileges", "yes"],
      ["Restart", "on-failure"], ["KillSignal", "SIGTERM"], ["TimeoutStopSec", "45"], ["LimitNOFILE", "65536"],
      ["AmbientCapabilities", ""], ["CapabilityBoundingSet", ""]]) {
      expect([k, one(k!)]).toEqual([k, v]);
    }
    // The defaults file is optional (`-`), so the unit starts without one.
    expect(one("EnvironmentFile")).toBe("-/etc/default/ociregistry");
  });

  test("its ExecStart, with OCIREGISTRY_ARGS from the defaults file, starts a serving cache", async () => {
    const exec = directives(readFileSync(join(staged, UNIT), "utf8")).get("ExecStart")![0]!;
    const env = directives(readFileSync(join(staged, "etc/default/ociregistry"), "utf8"));
    expect(env.get("OCIREGISTRY_ARGS")).toEqual(['""']);
    // systemd splits an unquoted $VAR at spaces; the test sets it to listen on a free loopback port.
    const args = "--host 127.0.0.1 --port 0".split(" ");
    const argv = exec.split(" ").flatMap((w) => (w === "$OCIREGISTRY_ARGS" ? args : [w]));
    const store = join(work, "store");
    argv[0] = join(staged, "usr/local/bin/ociregistry");
    argv[argv.indexOf("--image-path") + 1] = store;
    const proc = track(Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" }));
    try {
      let out = "";
      for (const s of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[]) {
        void (async () => {
          for await (const c of s) out += new TextDecoder().decode(c);
        })();
      }
      await waitFor("the cache to listen", async () => /on port \d+/.test(out));
      const port = out.match(/on port (\d+)/)![1];
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      expect(res.status).toBe(200);
      expect(statSync(join(store, "blobs")).isDirectory()).toBe(true);
    } finally {
      await stopProcess(proc);
    }
    expect(proc.exitCode).toBe(0);
  });
});
