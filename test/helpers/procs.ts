// Starting and stopping test processes; every process a test starts is stopped by it.
import type { Subprocess } from "bun";
import { readFileSync } from "node:fs";

const started = new Set<Subprocess>();
// A test that times out never reaches its afterAll: kill what it started when the runner exits.
process.on("exit", () => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
});

/** Remembers a process so it is killed when the test runner exits, whatever happened. */
export function track<T extends Subprocess>(p: T): T {
  started.add(p);
  void p.exited.then(() => started.delete(p));
  return p;
}

export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not ready yet
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(50);
  }
}

export async function stopProcess(p: Subprocess, signal: NodeJS.Signals = "SIGTERM") {
  if (p.exitCode !== null || p.signalCode !== null) return;
  p.kill(signal);
  const killer = setTimeout(() => p.kill("SIGKILL"), 10_000);
  await p.exited;
  clearTimeout(killer);
}

/** Runs a command to completion; throws with its output when it fails. */
export async function run(cmd: string[], opts: { env?: Record<string, string>; cwd?: string; allowFail?: boolean } = {}) {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe", env: { ...process.env, ...opts.env }, cwd: opts.cwd });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0 && !opts.allowFail) throw new Error(`${cmd.join(" ")} exited ${code}\n${stdout}\n${stderr}`);
  return { stdout, stderr, code };
}

export function requireTool(path: string) {
  if (!Bun.which(path) && !require("node:fs").existsSync(path)) {
    throw new Error(`${path} is required for the e2e tests; run scripts/install-test-deps.sh (as root) first`);
  }
}

/** Unmounts everything mounted under `dir` (deepest first), as daemons may leave mounts behind. */
export async function unmountUnder(dir: string) {
  const prefix = dir.endsWith("/") ? dir : `${dir}/`;
  const points = readFileSync("/proc/self/mounts", "utf8").split("\n")
    .map((l) => l.split(" ")[1]?.replace(/\\040/g, " "))
    .filter((m): m is string => !!m && (m === dir || m.startsWith(prefix)))
    .sort((a, b) => b.length - a.length);
  for (const m of points) {
    const r = await run(["umount", m], { allowFail: true });
    if (r.code !== 0) await run(["umount", "-l", m], { allowFail: true });
  }
}

/** Runs every stop function, even after one failed; then throws the first failure. */
export async function stopAll(...stops: Array<() => unknown>) {
  const errors: unknown[] = [];
  for (const stop of stops) {
    try {
      await stop();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length) throw errors[0];
}
