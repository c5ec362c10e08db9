// Debian's Chromium, headless, driven over the Chrome DevTools Protocol with Bun's WebSocket
// client: a small CDP client of our own (no puppeteer or playwright, which would download a
// browser). One browser per test file; one tab (target) per page under test.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { requireTool, stopProcess, track, waitFor } from "./procs.ts";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

type Params = Record<string, unknown>;
interface CdpEvent { method: string; params: Params; sessionId?: string }

/** One WebSocket to the browser; commands for a tab carry its session id (flat sessions). */
class Cdp {
  private next = 1;
  private pending = new Map<number, { resolve: (v: Params) => void; reject: (e: Error) => void; method: string }>();
  private listeners = new Set<(e: CdpEvent) => void>();

  private constructor(private ws: WebSocket) {
    ws.addEventListener("message", (m) => {
      const msg = JSON.parse(String(m.data)) as { id?: number; result?: Params; error?: { message: string }; method?: string; params?: Params; sessionId?: string };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(`${p.method}: ${msg.error.message}`));
        else p?.resolve(msg.result ?? {});
      } else if (msg.method) {
        for (const l of this.listeners) l({ method: msg.method, params: msg.params ?? {}, sessionId: msg.sessionId });
      }
    });
    ws.addEventListener("close", () => {
      for (const p of this.pending.values()) p.reject(new Error(`${p.method}: the DevTools connection closed`));
      this.pending.clear();
    });
  }

  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`cannot connect to ${url}`)), { once: true });
    });
    return new Cdp(ws);
  }

  send(method: string, params: Params = {}, sessionId?: string): Promise<Params> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    });
  }

  on(listener: (e: CdpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close() {
    this.ws.close();
  }
}

export interface Page {
  /** Navigates and waits for the load event. */
  goto(url: string): Promise<void>;
  /** Evaluates an expression in the page (promises are awaited) and returns its value as JSON. */
  evaluate<T = unknown>(expression: string): Promise<T>;
  /** Polls an expression until it is truthy; returns that value. */
  waitFor<T = unknown>(what: string, expression: string, timeoutMs?: number): Promise<T>;
  /** Focuses the element and types text into it, as a keyboard would. */
  type(selector: string, text: string): Promise<void>;
  /** A left click in the middle of the element. */
  click(selector: string): Promise<void>;
  /** A PNG of the viewport. */
  screenshot(): Promise<Uint8Array>;
  /** Uncaught exceptions and console or CSP errors the page reported (network errors left out). */
  errors(): string[];
  close(): Promise<void>;
}

export interface Browser {
  newPage(viewport?: { width: number; height: number }): Promise<Page>;
  stop(): Promise<void>;
}

/** Our processes: those whose command line names our own temp dir (profile, crash database). */
function processesUsing(dir: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, "utf8").includes(dir)) pids.push(Number(e));
    } catch {
      // gone already
    }
  }
  return pids;
}

export async function startChromium(): Promise<Browser> {
  requireTool(CHROMIUM);
  const dir = mkdtempSync(join(tmpdir(), "ocireg-chromium-"));
  const profile = join(dir, "profile");
  // Without the background-networking flags Chromium keeps dialling Google's hosts, which this
  // closed network refuses. Crash reports and other config go under our temp dir, not ~/.config.
  const proc: Subprocess = track(Bun.spawn([CHROMIUM,
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
    `--user-data-dir=${profile}`, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
    "--window-size=1280,800", "about:blank",
  ], { stdout: "ignore", stderr: "pipe", env: { ...process.env, XDG_CONFIG_HOME: join(dir, "config"), XDG_CACHE_HOME: join(dir, "cache") } }));
  // stderr is drained for as long as Chromium runs (it logs a lot; a full pipe would stall it).
  let log = "";
  void (async () => {
    for await (const c of proc.stderr as ReadableStream<Uint8Array>) log = (log + new TextDecoder().decode(c)).slice(-64 * 1024);
  })();
  let wsUrl = "";
  try {
    await waitFor("Chromium's DevTools endpoint", async () => {
      if (proc.exitCode !== null) throw new Error(`chromium exited ${proc.exitCode}:\n${log}`);
      wsUrl = log.match(/DevTools listening on (ws:\/\/\S+)/)?.[1] ?? "";
      return !!wsUrl;
    }, 20_000);
  } catch (err) {
    await stopProcess(proc, "SIGKILL");
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  const cdp = await Cdp.connect(wsUrl);

  async function newPage(viewport = { width: 1280, height: 800 }): Promise<Page> {
    const { targetId } = await cdp.send("Target.createTarget", { url: "about:blank" }) as { targetId: string };
    const { sessionId } = await cdp.send("Target.attachToTarget", { targetId, flatten: true }) as { sessionId: string };
    const send = (method: string, params: Params = {}) => cdp.send(method, params, sessionId);
    const errors: string[] = [];
    const off = cdp.on((e) => {
      if (e.sessionId !== sessionId) return;
      if (e.method === "Runtime.exceptionThrown") {
        const d = e.params.exceptionDetails as { text: string; exception?: { description?: string } };
        errors.push(d.exception?.description ?? d.text);
      } else if (e.method === "Log.entryAdded") {
        const entry = e.params.entry as { level: string; source: string; text: string };
        if (entry.level === "error" && entry.source !== "network") errors.push(`${entry.source}: ${entry.text}`);
      } else if (e.method === "Runtime.consoleAPICalled" && e.params.type === "error") {
        errors.push(`console.error: ${JSON.stringify(e.params.args)}`);
      }
    });
    await Promise.all([send("Page.enable"), send("Runtime.enable"), send("Log.enable")]);
    await send("Emulation.setDeviceMetricsOverride", { ...viewport, deviceScaleFactor: 1, mobile: false });

    async function evaluate<T>(expression: string): Promise<T> {
      const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }) as {
        result: { value?: T }; exceptionDetails?: { text: string; exception?: { description?: string } };
      };
      if (r.exceptionDetails) throw new Error(`${expression}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      return r.result.value as T;
    }

    /** The middle of an element, in viewport pixels, after scrolling it into view. */
    async function centre(selector: string): Promise<{ x: number; y: number }> {
      const c = await evaluate<{ x: number; y: number } | null>(`(() => {
        const el = document.querySelector(${JSON.stringify(selector)});
        if (!el) return null;
        el.scrollIntoView({ block: "center" });
        const r = el.getBoundingClientRect();
        return r.width && r.height ? { x: r.left + r.width / 2, y: r.top + r.height / 2 } : null;
      })()`);
      if (!c) throw new Error(`${selector} is not on the page or not visible`);
      return c;
    }

    return {
      async goto(url) {
        const loaded = new Promise<void>((resolve) => {
          const stop = cdp.on((e) => {
            if (e.sessionId === sessionId && e.method === "Page.loadEventFired") {
              stop();
              resolve();
            }
          });
        });
        const r = await send("Page.navigate", { url }) as { errorText?: string };
        if (r.errorText) throw new Error(`${url}: ${r.errorText}`);
        await loaded;
      },
      evaluate,
      async waitFor<T>(what: string, expression: string, timeoutMs = 10_000) {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const v = await evaluate<T>(expression);
          if (v) return v;
          if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
          await Bun.sleep(100);
        }
      },
      async type(selector, text) {
        const { x, y } = await centre(selector);
        for (const type of ["mousePressed", "mouseReleased"]) await send("Input.dispatchMouseEvent", { type, x, y, button: "left", clickCount: 1 });
        const focused = await evaluate<boolean>(`document.activeElement === document.querySelector(${JSON.stringify(selector)})`);
        if (!focused) throw new Error(`a click on ${selector} did not focus it`);
        await send("Input.insertText", { text });
      },
      async click(selector) {
        const { x, y } = await centre(selector);
        for (const type of ["mousePressed", "mouseReleased"]) await send("Input.dispatchMouseEvent", { type, x, y, button: "left", clickCount: 1 });
      },
      async screenshot() {
        const { data } = await send("Page.captureScreenshot", { format: "png" }) as { data: string };
        return new Uint8Array(Buffer.from(data, "base64"));
      },
      errors: () => [...errors],
      async close() {
        off();
        await cdp.send("Target.closeTarget", { targetId });
      },
    };
  }

  return {
    newPage,
    async stop() {
      cdp.close();
      await stopProcess(proc);
      // The zygote, renderers and helpers go with the browser; make sure before removing the profile.
      await waitFor("Chromium's helper processes to exit", async () => processesUsing(dir).length === 0, 5_000)
        .catch(() => {
          for (const pid of processesUsing(dir)) {
            try {
              process.kill(pid, "SIGKILL");
            } catch {
              // exited meanwhile
            }
          }
        });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The width and height a PNG's IHDR chunk declares. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => png[i] === b)) throw new Error("not a PNG");
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}
