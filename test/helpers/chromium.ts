// Debian's Chromium, headless, driven with puppeteer-core (which never downloads a browser): one
// browser per test file with its own temp profile, one tab per page under test.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import puppeteer, { TimeoutError, type Browser, type Page } from "puppeteer-core";
import { requireTool } from "./procs.ts";

export const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

export interface Tab {
  page: Page;
  /** Uncaught exceptions and console or CSP errors the page reported (network errors left out). */
  errors(): string[];
}

export interface Chromium {
  browser: Browser;
  newTab(viewport?: { width: number; height: number }): Promise<Tab>;
  stop(): Promise<void>;
}

export async function startChromium(): Promise<Chromium> {
  requireTool(CHROMIUM);
  const dir = mkdtempSync(join(tmpdir(), "ocireg-chromium-"));
  let browser: Browser;
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      // Exactly these flags, not puppeteer's defaults: without the background-networking ones
      // Chromium keeps dialling Google's hosts, which this closed network refuses.
      ignoreDefaultArgs: true,
      args: [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--disable-crash-reporter", "--disable-breakpad",
        `--user-data-dir=${join(dir, "profile")}`, "--window-size=1280,800", "about:blank",
      ],
      // Crash reports and other config go under our temp dir, not ~/.config.
      env: { ...process.env, XDG_CONFIG_HOME: join(dir, "config"), XDG_CACHE_HOME: join(dir, "cache") },
      timeout: 20_000,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    browser,
    async newTab(viewport = { width: 1280, height: 800 }) {
      const page = await browser.newPage();
      await page.setViewport({ ...viewport, deviceScaleFactor: 1 });
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(err instanceof Error ? err.stack ?? err.message : String(err)));
      // puppeteer's "console" event merges the Log domain's entries, network ones included (the
      // wrong-token test provokes a 401 on purpose), and drops their source: listen ourselves.
      const cdp = await page.createCDPSession();
      cdp.on("Log.entryAdded", ({ entry }) => {
        if (entry.level === "error" && entry.source !== "network") errors.push(`${entry.source}: ${entry.text}`);
      });
      cdp.on("Runtime.consoleAPICalled", (e) => {
        if (e.type === "error") errors.push(`console.error: ${JSON.stringify(e.args.map((a) => a.value ?? a.description))}`);
      });
      await Promise.all([cdp.send("Log.enable"), cdp.send("Runtime.enable")]);
      return { page, errors: () => [...errors] };
    },
    async stop() {
      // close() waits for the browser process to exit (and kills it if it will not).
      await browser.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An expression evaluated in the page (a promise is awaited), its value as JSON. */
export function evaluate<T = unknown>(page: Page, expression: string): Promise<T> {
  return page.evaluate(expression) as Promise<T>;
}

/** Polls an expression until it is truthy; returns that value. */
export async function waitForValue<T = unknown>(page: Page, what: string, expression: string, timeoutMs = 10_000): Promise<T> {
  try {
    const handle = await page.waitForFunction(expression, { timeout: timeoutMs, polling: 100 });
    return await handle.jsonValue() as T;
  } catch (err) {
    if (err instanceof TimeoutError) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    throw err;
  }
}

/** The width and height a PNG's IHDR chunk declares. */
export function pngSize(png: Uint8Array): { width: number; height: number } {
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (!sig.every((b, i) => png[i] === b)) throw new Error("not a PNG");
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

/** A page under test: puppeteer's, plus expressions evaluated and awaited by their text. */
export interface PageUnderTest {
  page: Page;
  type(selector: string, text: string): Promise<void>;
  click(selector: string): Promise<void>;
  screenshot(opts?: { fullPage?: boolean }): Promise<Uint8Array>;
  evaluate<T = unknown>(expression: string): Promise<T>;
  waitFor<T = unknown>(what: string, expression: string, timeoutMs?: number): Promise<T>;
}

/** Opens `url` in a fresh tab (its own sessionStorage), runs `body`, expects no page errors; closes the tab whatever happens. */
export async function withPage(browser: Chromium, url: string, body: (page: PageUnderTest) => Promise<void>, viewport = { width: 1280, height: 800 }) {
  const { page, errors } = await browser.newTab(viewport);
  try {
    await page.goto(url);
    await body({
      page,
      type: (selector, text) => page.type(selector, text),
      click: (selector) => page.click(selector),
      screenshot: (opts) => page.screenshot(opts),
      evaluate: (expression) => evaluate(page, expression),
      waitFor: (what, expression, timeoutMs) => waitForValue(page, what, expression, timeoutMs),
    });
    const seen = errors();
    if (seen.length) throw new Error(`the page reported errors: ${seen.join("; ")}`);
  } finally {
    await page.close();
  }
}
