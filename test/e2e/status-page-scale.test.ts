// The status page in headless Chromium against the compiled cache serving a 30,000-tag store
// (scripts/bench/make-store.ts): it shows images a page at a time and searches them on the server,
// one refresh transfers at most ~50 KB, the last hour's charts fill with traffic, an unreachable
// upstream's last error is shown, pin/unpin, delete and a prune preview work through the page, and
// an air-gapped cache says so. UPDATE_SCREENSHOT=1 refreshes docs/status-page.png and
// docs/status-page-admin.png.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { makeStore } from "../../scripts/bench/make-store.ts";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { pngSize, startChromium, withPage, type Chromium, type PageUnderTest } from "../helpers/chromium.ts";
import { stopAll } from "../helpers/procs.ts";

/** The upstream the records name; nothing listens there, so a cold pull fails as unreachable. */
const UPSTREAM = "127.0.26.2";
const TAGS = 30_000;
const TOKEN_ENV = "OCIREG_SCALE_PAGE_TOKEN";
const TOKEN = "status-page-scale-e2e-token-91b2";
const DOCS = join(import.meta.dir, "../../docs");
const MANIFEST = "application/vnd.oci.image.manifest.v1+json";

let dir: string;
let big: RunningCache;
let airGapped: RunningCache;
let browser: Chromium;

beforeAll(async () => {
  // 30,000 record files: tmpfs makes them in a second (a disk takes half a minute).
  dir = mkdtempSync(join(existsSync("/dev/shm") ? "/dev/shm" : tmpdir(), "ocireg-page-scale-"));
  makeStore(TAGS, join(dir, "big"), UPSTREAM);
  makeStore(200, join(dir, "small"), UPSTREAM);
  const registries = `registries:\n  - name: ${UPSTREAM}\n    scheme: http\nrevalidateAfter: 1h\npullTimeout: 5s\n`;
  writeFileSync(join(dir, "big.yml"), `${registries}maxSize: 2MiB\nadmin:\n  tokenFromEnv: ${TOKEN_ENV}\n`);
  writeFileSync(join(dir, "airgapped.yml"), `${registries}airGapped: true\n`);
  big = await startCache(["--config-file", join(dir, "big.yml"), "--image-path", join(dir, "big")], { [TOKEN_ENV]: TOKEN });
  airGapped = await startCache(["--config-file", join(dir, "airgapped.yml"), "--image-path", join(dir, "small")]);
  browser = await startChromium();
}, 120_000);

afterAll(async () => {
  await stopAll(
    () => browser?.stop(),
    () => big?.stop(),
    () => airGapped?.stop(),
    () => dir && rmSync(dir, { recursive: true, force: true }),
  );
}, 60_000);

const text = (id: string) => `document.getElementById(${JSON.stringify(id)}).textContent`;
const hidden = (id: string) => `document.getElementById(${JSON.stringify(id)}).hidden`;
const TAGS_SHOWN = `[...document.querySelectorAll("#images tr")].map((tr) => tr.cells[0].textContent + ":" + tr.cells[1].textContent)`;
const name = (repo: number, tag: number) => `${UPSTREAM}/bench/r${String(repo).padStart(5, "0")}:t${String(tag).padStart(5, "0")}`;
const recordFile = (repo: number, tag: number) =>
  join(dir, "big/repositories", UPSTREAM, `bench/r${String(repo).padStart(5, "0")}`, "_tags", `t${String(tag).padStart(5, "0")}.json`);

function saveScreenshot(png: Uint8Array, file: string) {
  expect(pngSize(png).width).toBe(1280);
  writeFileSync(join(dir, file), png);
  if (process.env.UPDATE_SCREENSHOT === "1") {
    mkdirSync(DOCS, { recursive: true });
    writeFileSync(join(DOCS, file), png);
  }
}

/** Logs in and waits for the first page of images. */
async function loggedIn(page: PageUnderTest) {
  await page.waitFor("the login form", `!${hidden("login")}`);
  await page.type("#token", TOKEN);
  await page.click("#login button[type=submit]");
  // The first page needs the tag index (one listing of 30,000 keys).
  await page.waitFor("the first page of images", `document.querySelectorAll("#images tr").length === 50`, 30_000);
}

/** Types a search and waits until the rows are what it finds. */
async function search(page: PageUnderTest, q: string, want: string) {
  // Cleared as a user would (an input event); the new text typed key by key.
  await page.evaluate(`(() => { const s = document.getElementById("search"); s.value = ""; s.dispatchEvent(new Event("input")); })()`);
  if (q) await page.type("#search", q);
  await page.waitFor(`the search for ${q}`, `${text("range")} === ${JSON.stringify(want)}`);
}

describe("the status page over a 30,000-tag store", () => {
  test("loads, pages and searches on the server; one refresh transfers at most 50 KB and costs the server milliseconds", async () => {
    await withPage(browser, `${big.url}/`, async (page) => {
      await loggedIn(page);
      expect(await page.evaluate(text("tags"))).toBe(String(TAGS));
      expect(await page.evaluate(text("range"))).toBe(`1–50 of ${TAGS}`);
      expect((await page.evaluate<string[]>(TAGS_SHOWN)).slice(0, 2)).toEqual([name(0, 0), name(0, 1)]);

      await page.click("#next");
      await page.waitFor("the second page", `${text("range")} === "51–100 of ${TAGS}"`);
      expect((await page.evaluate<string[]>(TAGS_SHOWN))[0]).toBe(name(0, 50));
      await page.click("#prev");
      await page.waitFor("the first page again", `${text("range")} === "1–50 of ${TAGS}"`);

      await search(page, "R00123:T0004", "1–10 of 10");
      expect(await page.evaluate<string[]>(TAGS_SHOWN)).toEqual(Array.from({ length: 10 }, (_, i) => name(123, 40 + i)));

      // One refresh, measured in the browser: the status figures and one page of images.
      await search(page, "", `1–50 of ${TAGS}`);
      await page.evaluate(`performance.clearResourceTimings()`);
      await Bun.sleep(3300);
      const entries = await page.evaluate<Array<{ path: string; bytes: number }>>(`performance.getEntriesByType("resource")
        .filter((e) => e.initiatorType === "fetch").map((e) => ({ path: new URL(e.name).pathname, bytes: e.transferSize }))`);
      const paths = entries.map((e) => e.path);
      expect(paths).toContain("/api/v1/status");
      expect(paths).toContain("/api/v1/images");
      const refreshes = paths.filter((p) => p === "/api/v1/status").length;
      const perRefresh = entries.reduce((n, e) => n + e.bytes, 0) / refreshes;
      console.log(`one refresh of the status page over ${TAGS} tags: ${Math.round(perRefresh)} bytes`);
      expect(perRefresh).toBeGreaterThan(5_000);
      expect(perRefresh).toBeLessThanOrEqual(50 * 1024);
    });
    // What a refresh costs the server, from outside: ten pages of 50 well under a second in all.
    const headers = { Authorization: `Bearer ${TOKEN}` };
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) {
      const r = await fetch(`${big.url}/api/v1/images?limit=50&cursor=${encodeURIComponent(name(100 + i, 0))}`, { headers });
      expect(((await r.json()) as { images: unknown[] }).images).toHaveLength(50);
      expect((await fetch(`${big.url}/api/v1/status`, { headers })).status).toBe(200);
    }
    const ms = performance.now() - t0;
    console.log(`10 refreshes (status + a page of 50) over ${TAGS} tags: ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(1500);
  }, 90_000);

  test("the last hour's charts, disk use against its bound and an upstream's last error", async () => {
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${big.url}/v2/${UPSTREAM}/bench/r00007/manifests/t${String(i).padStart(5, "0")}`, { headers: { Accept: MANIFEST } });
      expect(r.status).toBe(200);
      await r.arrayBuffer();
    }
    // A tag the store lacks: the upstream does not answer.
    const cold = await fetch(`${big.url}/v2/${UPSTREAM}/bench/r00007/manifests/not-cached`, { headers: { Accept: MANIFEST } });
    expect(cold.status).toBeGreaterThanOrEqual(500);
    await cold.arrayBuffer();
    await withPage(browser, `${big.url}/`, async (page) => {
      await loggedIn(page);
      const drawn = (id: string) => `document.querySelector("#${id} path").getAttribute("d").length > 0`;
      for (const id of ["chart-requests", "chart-hits", "chart-bytes", "chart-errors"]) await page.waitFor(`the ${id} bars`, drawn(id));
      expect(Number(await page.evaluate(text("chart-requests-total")))).toBeGreaterThanOrEqual(21);
      expect(Number(await page.evaluate(text("chart-errors-total")))).toBeGreaterThanOrEqual(1);
      expect(await page.evaluate(text("chart-hits-total"))).toMatch(/^\d+ %$/);
      expect(await page.evaluate(text("bytes"))).toMatch(/ of 2\.0 MiB$/);
      expect(await page.evaluate(`[${hidden("usedmeter")}, document.querySelector("#usedmeter div").style.width]`)).toEqual([false, expect.stringMatching(/^\d+(\.\d)?%$/)]);
      expect(await page.evaluate(text("free"))).toMatch(/iB$/);
      const row = await page.evaluate<string[]>(`[...document.querySelectorAll("#upstreams tr")].map((tr) => [...tr.cells].map((td) => td.textContent)).find((r) => r[0] === "${UPSTREAM}")`);
      expect(row[5]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ unreachable: /);
      expect(await page.evaluate<string>("document.body.innerText")).toContain("all times UTC");
      saveScreenshot(await page.screenshot(), "status-page.png");
    });
  }, 90_000);

  test("pin, unpin, delete and a prune preview through the page", async () => {
    await withPage(browser, `${big.url}/`, async (page) => {
      await loggedIn(page);
      await search(page, "r00299:t00099", "1–1 of 1");
      const cells = `[...document.querySelectorAll("#images tr td")].map((td) => td.textContent)`;
      const pinned = () => JSON.parse(readFileSync(recordFile(299, 99), "utf8")).pinned === true;
      expect(pinned()).toBe(false);
      await page.click("#images button:first-child");
      await page.waitFor("the pinned row", `${cells}[5] === "pinned"`);
      expect(pinned()).toBe(true);
      await page.click("#images button:first-child");
      await page.waitFor("the unpinned row", `${cells}[5] === "" && ${cells}[6].startsWith("pin")`);
      expect(pinned()).toBe(false);

      // Delete asks first: one click arms the button, the second deletes.
      await page.click("#images button:last-child");
      expect(await page.evaluate(`document.querySelector("#images button:last-child").textContent`)).toBe("confirm delete");
      expect(existsSync(recordFile(299, 99))).toBe(true);
      await page.click("#images button:last-child");
      await page.waitFor("the row gone", `${text("range")} === "no images match"`);
      expect(existsSync(recordFile(299, 99))).toBe(false);
      expect(await page.evaluate(text("note"))).toMatch(/^deleted 127\.0\.26\.2\/bench\/r00299:t00099 \(/);

      // The preview removes nothing: about half the records were last pulled 30 or more days ago.
      await search(page, "r00010:", "1–50 of 100");
      await page.evaluate(`(() => { const i = document.getElementById("olderthan"); i.value = "30d"; })()`);
      await page.click("#prune button[type=submit]");
      const said = await page.waitFor<string>("the prune preview", `${text("pruneresult")} || ""`, 30_000);
      const n = Number(said.match(/^would remove (\d+) image\(s\)/)?.[1]);
      expect(n).toBeGreaterThan(TAGS * 0.4);
      expect(n).toBeLessThan(TAGS * 0.6);
      expect(existsSync(recordFile(0, 59))).toBe(true); // 59 days old: a prune would take it
      saveScreenshot(await page.screenshot(), "status-page-admin.png");
    });
  }, 90_000);
});

describe("an air-gapped cache's status page", () => {
  test("says it is air-gapped instead of calling its upstreams healthy", async () => {
    await withPage(browser, `${airGapped.url}/`, async (page) => {
      await page.waitFor("the figures", `!${hidden("status")} && ${text("tags")} === "200"`);
      expect(await page.evaluate(hidden("airgap"))).toBe(false);
      const rows = await page.evaluate<string[][]>(`[...document.querySelectorAll("#upstreams tr")].map((tr) => [...tr.cells].map((td) => td.textContent))`);
      expect(rows.length).toBeGreaterThan(0);
      for (const r of rows) expect(r[3]).toBe("air-gapped (not contacted)");
      expect(await page.evaluate<string>("document.body.innerText")).not.toContain("healthy");
    });
  });
});
