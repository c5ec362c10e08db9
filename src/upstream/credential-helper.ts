// Docker credential helpers (`docker-credential-<name> get`, the documented protocol: the server
// URL on standard input, `{"ServerURL","Username","Secret"}` on standard output). An answer is
// kept for a while and asked again when the upstream refused it.
import type { CredentialSource } from "./client.ts";

const KEEP_MS = 5 * 60_000;
const TIMEOUT_MS = 10_000;
const MAX_OUTPUT = 64 * 1024;

/** The server name Docker passes to helpers for an upstream. */
function serverUrl(upstream: string): string {
  return upstream === "docker.io" ? "https://index.docker.io/v1/" : upstream;
}

export function credentialHelper(helper: string, upstream: string, warn: (msg: string) => void, now: () => number = Date.now): CredentialSource {
  let cached: { at: number; value: { user: string; password: string } | undefined } | null = null;
  let pending: Promise<{ user: string; password: string } | undefined> | null = null;

  async function ask(): Promise<{ user: string; password: string } | undefined> {
    const bin = `docker-credential-${helper}`;
    let proc;
    try {
      proc = Bun.spawn([bin, "get"], { stdin: "pipe", stdout: "pipe", stderr: "pipe", timeout: TIMEOUT_MS });
    } catch (err) {
      warn(`credential helper ${bin} for ${upstream} cannot run: ${(err as Error).message}`);
      return undefined;
    }
    proc.stdin.write(serverUrl(upstream));
    await proc.stdin.end();
    const [out, errText, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    if (code !== 0) {
      // "credentials not found" is how a helper says it has nothing for this server: pull anonymously.
      if (!/not found/i.test(out + errText)) warn(`credential helper ${bin} for ${upstream} failed (exit ${code}): ${(out || errText).trim().slice(0, 200)}`);
      return undefined;
    }
    try {
      const v = JSON.parse(out.slice(0, MAX_OUTPUT)) as { Username?: unknown; Secret?: unknown };
      if (typeof v.Username === "string" && typeof v.Secret === "string" && v.Secret) return { user: v.Username, password: v.Secret };
    } catch {
      // reported below
    }
    warn(`credential helper ${bin} for ${upstream} did not answer with {"Username", "Secret"}`);
    return undefined;
  }

  return {
    get() {
      if (cached && now() - cached.at < KEEP_MS) return Promise.resolve(cached.value);
      pending ??= ask().then((value) => {
        cached = { at: now(), value };
        return value;
      }).finally(() => (pending = null));
      return pending;
    },
    refresh() {
      cached = null;
    },
  };
}
