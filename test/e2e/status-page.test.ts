// The status page at `/`, in a real headless Chromium driven with puppeteer-core: the
// compiled cache in front of a real distribution upstream, images pulled through it with skopeo.
// With the admin API on, the page asks for the token and lists the cached images, updating by
// itself; with it off, it shows aggregate figures only. (The screenshots in docs/ come from
// status-page-scale.test.ts.)
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startCache, type RunningCache } from "../helpers/binary.ts";
import { pngSize, startChromium, withPage as openPage, type Chromium, type PageUnderTest } from "../helpers/chromium.ts";
import { skopeoCopy } from "../helpers/clients.ts";
import { startDistribution, type Distribution } from "../helpers/distribution.ts";
import { makeImage, pushImage, type Image } from "../helpers/images.ts";
import { stopAll } from "../helpers/procs.ts";

const UPSTREAM = "127.0.3.2";
const TOKEN_ENV = "OCIREG_STATUS_PAGE_TOKEN";
const TOKEN = "status-page-e2e-token-7f3c9a";
const images: Record<"x" | "y", Image> = { x: makeImage(), y: makeImage() };

let upstream: Distribution;
let withAdmin: RunningCache;
let withoutAdmin: RunningCache;
let browser: Chromium;
let dir: string;

beforeAll(async () => {
  upstream = await startDistribution({ addr: `${UPSTREAM}:80` });
  for (const [name, img] of Object.entries(images)) await pushImage({ base: upstream.base }, `library/${name}`, "v1", img);
  dir = mkdtempSync(join(tmpdir(), "ocireg-status-page-"));
  const registries = `registries:\n  - name: ${UPSTREAM}\n    scheme: http\n`;
  writeFileSync(join(dir, "admin.yml"), `${registries}admin:\n  tokenFromEnv: ${TOKEN_ENV}\n`);
  writeFileSync(join(dir, "public.yml"), registries);
  withAdmin = await startCache(["--config-file", join(dir, "admin.yml"), "--image-path", join(dir, "store-admin")], { [TOKEN_ENV]: TOKEN });
  withoutAdmin = await startCache(["--config-file", join(dir, "public.yml"), "--image-path", join(dir, "store-public")]);
  browser = await startChromium();
}, 60_000);

afterAll(async () => {
  await stopAll(
    () => browser?.stop(),
    () => withAdmin?.stop(),
    () => withoutAdmin?.stop(),
    () => upstream?.stop(),
    () => upstream && rmSync(upstream.dir, { recursive: true, force: true }),
    () => dir && rmSync(dir, { recursive: true, force: true }),
  );
}, 60_000);

async function pull(cache: RunningCache, name: "x" | "y") {
  const r = await skopeoCopy(`127.0.0.1:${cache.port}/${UPSTREAM}/library/${name}:v1`);
  r.cleanup();
  expect(r.digest).toBe(images[name].digest);
}

type StatusPage = PageUnderTest;

/** Opens the page in a fresh tab (its own sessionStorage); closes the tab whatever happens. */
const withPage = (cache: RunningCache, body: (page: StatusPage) => Promise<void>) => openPage(browser, `${cache.url}/`, body);

const ROWS = `[...document.querySelectorAll("#images tr")].map((tr) => [...tr.cells].map((td) => td.textContent))`;
const text = (id: string) => `document.getElementById(${JSON.stringify(id)}).textContent`;
const hidden = (id: string) => `document.getElementById(${JSON.stringify(id)}).hidden`;
const bodyText = "document.body.innerText";

function sizeOf(img: Image) {
  return img.manifest.byteLength + img.blobs.reduce((n, b) => n + b.bytes.byteLength, 0);
}

/** The row the page should show for an image pulled between `since` and now. */
function expectRow(row: string[] | undefined, name: "x" | "y", since: number) {
  const img = images[name];
  expect(sizeOf(img)).toBeLessThan(1024);
  expect(row?.slice(0, 4)).toEqual([`${UPSTREAM}/library/${name}`, "v1", img.digest.slice(7, 19), `${sizeOf(img)} B`]);
  const pulled = Date.parse(row![4]!);
  expect(row![4]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  expect(pulled).toBeGreaterThanOrEqual(Math.floor(since / 1000) * 1000);
  expect(pulled).toBeLessThanOrEqual(Date.now());
}

async function login(page: StatusPage, token: string) {
  await page.type("#token", token);
  await page.click("#login button[type=submit]");
}

describe("the status page with the admin API on", () => {
  test("asks for the token, then lists the pulled image and adds the next pull's image by itself without a reload", async () => {
    const since = Date.now();
    await pull(withAdmin, "x");
    await withPage(withAdmin, async (page) => {
      // Before the token: the login form only, nothing about the store.
      await page.waitFor("the login form", `!${hidden("login")}`);
      expect(await page.evaluate(hidden("status"))).toBe(true);
      expect(await page.evaluate(ROWS)).toEqual([]);
      expect(await page.evaluate<string>(bodyText)).not.toContain("library/x");

      await login(page, TOKEN);
      const rows = await page.waitFor<string[][]>("the first image row", `(() => { const r = ${ROWS}; return r.length ? r : null; })()`);
      expect(rows).toHaveLength(1);
      expectRow(rows[0], "x", since);
      expect(await page.evaluate(hidden("login"))).toBe(true);
      expect(await page.evaluate(text("tags"))).toBe("1");
      expect(await page.evaluate(text("hitrate"))).toMatch(/^\d+ %$/);
      const upstreams = await page.evaluate<string[][]>(`[...document.querySelectorAll("#upstreams tr")].map((tr) => [...tr.cells].map((td) => td.textContent))`);
      expect(upstreams).toContainEqual([UPSTREAM, "http", "anonymous", "healthy", "0", "–"]);
      // The token lives in this tab's sessionStorage only: not in localStorage, a cookie or the URL.
      expect(await page.evaluate(`sessionStorage.getItem("ociregistry-token")`)).toBe(TOKEN);
      expect(await page.evaluate(`[localStorage.length, document.cookie, location.href]`)).toEqual([0, "", `${withAdmin.url}/`]);

      // A second pull shows up on the next refresh; the marker proves the document was not reloaded.
      await page.evaluate(`window.__sameDocument = true`);
      const since2 = Date.now();
      await pull(withAdmin, "y");
      const two = await page.waitFor<string[][]>("the second image row", `(() => { const r = ${ROWS}; return r.length === 2 ? r : null; })()`, 10_000);
      expectRow(two[0], "x", since);
      expectRow(two[1], "y", since2);
      expect(await page.evaluate(`window.__sameDocument === true`)).toBe(true);
      expect(await page.evaluate(text("tags"))).toBe("2");

      const png = await page.screenshot();
      expect(pngSize(png)).toEqual({ width: 1280, height: 800 });
      writeFileSync(join(dir, "status-page.png"), png);
    });
  });

  test("a wrong token shows the error, keeps the login form and shows no images", async () => {
    await pull(withAdmin, "x");
    await withPage(withAdmin, async (page) => {
      await page.waitFor("the login form", `!${hidden("login")}`);
      await login(page, "not-the-admin-token-at-all");
      const err = await page.waitFor<string>("the error", text("err"));
      expect(err).toContain("refused");
      expect(await page.evaluate(`[${hidden("login")}, ${hidden("status")}]`)).toEqual([false, true]);
      expect(await page.evaluate(ROWS)).toEqual([]);
      expect(await page.evaluate(`sessionStorage.getItem("ociregistry-token")`)).toBeNull();
      // A refresh later the page still asks for the token and shows nothing of the store.
      await Bun.sleep(3500);
      expect(await page.evaluate(`[${hidden("login")}, ${hidden("status")}]`)).toEqual([false, true]);
      const shown = await page.evaluate<string>(bodyText);
      expect(shown).not.toContain("library/x");
      expect(shown).not.toContain(images.x.digest.slice(7, 19));
    });
  });
});

describe("the status page with the admin API off", () => {
  test("shows the tag count, store size and a hit rate after a warm pull, and no image names", async () => {
    await pull(withoutAdmin, "x");
    await pull(withoutAdmin, "x");
    await pull(withoutAdmin, "y");
    const status = await (await fetch(`${withoutAdmin.url}/status.json`)).json() as {
      store: { tags: number; blobs: number; manifests: number; bytes: number }; cache: { hitRate: number };
    };
    expect(status.store).toMatchObject({ tags: 2, blobs: 4, manifests: 2 });
    expect(status.store.bytes).toBe(sizeOf(images.x) + sizeOf(images.y));
    expect(status.cache.hitRate).toBeGreaterThan(0);
    await withPage(withoutAdmin, async (page) => {
      await page.waitFor("the figures", `!${hidden("status")} && ${text("tags")} === "2"`);
      expect(await page.evaluate(hidden("login"))).toBe(true);
      expect(await page.evaluate(text("items"))).toBe("4 / 2");
      const bytes = status.store.bytes;
      expect(await page.evaluate(text("bytes"))).toBe(bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KiB`);
      const rate = await page.evaluate<string>(text("hitrate"));
      expect(rate).toBe(`${Math.round(status.cache.hitRate * 100)} %`);
      expect(Number.parseInt(rate)).toBeGreaterThan(0);
      // Aggregates only: no image list, no names, tags or digests anywhere on the page.
      expect(await page.evaluate(`[${hidden("imagesection")}, document.querySelectorAll("#images tr").length]`)).toEqual([true, 0]);
      const shown = await page.evaluate<string>(bodyText);
      for (const name of ["x", "y"] as const) {
        expect(shown).not.toContain(`library/${name}`);
        expect(shown).not.toContain(images[name].digest.slice(7, 19));
      }
      // Everything the page's script fetched was the public figures, never the admin API.
      const fetched = await page.evaluate<string[]>(`performance.getEntriesByType("resource")
        .filter((e) => e.initiatorType === "fetch").map((e) => new URL(e.name).pathname)`);
      expect(fetched.length).toBeGreaterThan(0);
      expect(new Set(fetched)).toEqual(new Set(["/status.json"]));
    });
  });
});
