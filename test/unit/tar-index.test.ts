// The tar indexer behind archive serving: every header format the tools write (ustar with its
// name prefix, pax, GNU long names, `./` names), exact offsets, and damaged or hostile files
// refused with a TarError in bounded time instead of crashing, hanging or reading them whole.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { indexTar, TarError, type TarEntry } from "../../src/archives/tar.ts";
import { tarFiles, tarHeader } from "../helpers/oci-archive.ts";
import { run } from "../helpers/procs.ts";

let work: string;
const LONG = `${"d".repeat(60)}/${"e".repeat(60)}/${"f".repeat(70)}.bin`; // 192 characters: ustar prefix
const LONGER = `${"g".repeat(120)}/${"h".repeat(120)}/${"i".repeat(120)}.bin`; // 362: pax or GNU only

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), "ocireg-tar-"));
  const src = join(work, "src");
  for (const name of [LONG, LONGER, "small.txt", "empty", "blobs/sha256/abc"]) {
    mkdirSync(join(src, name, ".."), { recursive: true });
    writeFileSync(join(src, name), name === "empty" ? "" : `content of ${name}\n`.repeat(name === "small.txt" ? 1 : 100));
  }
});

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Every indexed entry's bytes, read back at its offset, as `name → text`. */
function contents(file: string, entries: TarEntry[]): Record<string, string> {
  const bytes = readFileSync(file);
  return Object.fromEntries(entries.map((e) => [e.name, bytes.subarray(e.offset, e.offset + e.size).toString()]));
}

function expected(names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, readFileSync(join(work, "src", n)).toString()]));
}

describe("formats GNU tar writes", () => {
  for (const [format, names] of [
    ["ustar", [LONG, "small.txt", "empty", "blobs/sha256/abc"]],
    ["pax", [LONG, LONGER, "small.txt", "empty", "blobs/sha256/abc"]],
    ["gnu", [LONG, LONGER, "small.txt", "empty", "blobs/sha256/abc"]],
  ] as const) {
    test(`${format}: every file at its exact offset, long names whole`, async () => {
      const file = join(work, `${format}.tar`);
      await run(["tar", "-C", join(work, "src"), `--format=${format}`, "-cf", file, ...names]);
      const entries = await indexTar(file);
      expect(entries.map((e) => e.name).sort()).toEqual([...names].sort());
      expect(contents(file, entries)).toEqual(expected([...names]));
    });
  }

  test("names written as ./x (tar -C dir .) lose the ./ and directories are not listed", async () => {
    const file = join(work, "dot.tar");
    await run(["tar", "-C", join(work, "src"), "-cf", file, "."]);
    const names = (await indexTar(file)).map((e) => e.name).sort();
    expect(names).toEqual([LONG, LONGER, "blobs/sha256/abc", "empty", "small.txt"].sort());
  });
});

describe("damaged and hostile files", () => {
  const good = () => tarFiles([{ name: "a", bytes: new Uint8Array(3000).fill(97) }, { name: "b", bytes: new TextEncoder().encode("bee") }]);

  async function refused(bytes: Uint8Array, limits?: Parameters<typeof indexTar>[1]): Promise<string> {
    const file = join(work, `bad-${Math.random()}.tar`);
    writeFileSync(file, bytes);
    try {
      await indexTar(file, limits);
    } catch (err) {
      expect(err).toBeInstanceOf(TarError);
      return (err as Error).message;
    }
    throw new Error("indexTar accepted a bad file");
  }

  test("the untouched fixture indexes", async () => {
    const file = join(work, "good.tar");
    writeFileSync(file, good());
    expect((await indexTar(file)).map((e) => [e.name, e.size])).toEqual([["a", 3000], ["b", 3]]);
  });

  test.each([512 + 1000, 512 + 3072 + 200, 512 + 3072 + 512 + 512, 100])("a file cut at byte %p is truncated", async (at) => {
    const file = join(work, `cut-${at}.tar`);
    writeFileSync(file, good());
    truncateSync(file, at);
    await expect(indexTar(file)).rejects.toThrow(/truncated/);
  });

  test("an empty file and one without an end marker are truncated", async () => {
    expect(await refused(new Uint8Array(0))).toMatch(/truncated/);
    expect(await refused(good().subarray(0, 512 + 3072 + 512 + 512))).toMatch(/end marker/);
  });

  test("a header with a bad checksum is not a tar header", async () => {
    const bytes = good();
    bytes[512 + 3072 + 5] = 0x41; // inside the name of b
    expect(await refused(bytes)).toMatch(/not a tar header at offset 3584 \(bad checksum\)/);
    expect(await refused(new TextEncoder().encode("<html>".repeat(200)))).toMatch(/bad checksum|octal/);
  });

  test("a size beyond the end of the file, in octal or base-256, is truncated, not a huge read", async () => {
    const h = tarHeader("x", 0o77777777777);
    expect(await refused(Buffer.concat([h, new Uint8Array(2048)]))).toMatch(/truncated: entry "x"/);
    const b256 = tarHeader("y", 0);
    b256.set([0x80, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0], 124); // 2^36 bytes
    let sum = 0;
    b256.fill(32, 148, 156);
    for (const x of b256) sum += x;
    b256.set(new TextEncoder().encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
    expect(await refused(Buffer.concat([b256, new Uint8Array(2048)]))).toMatch(/needs 68719476736 bytes/);
  });

  test("oversized pax headers and long names are refused before they are read", async () => {
    const big = new Uint8Array(2 * 1024 * 1024);
    const pax = tarHeader("././@PaxHeader", 2 * 1024 * 1024, "x");
    expect(await refused(Buffer.concat([pax, big, new Uint8Array(1024)]))).toMatch(/metadata entry at offset 0 is larger than/);
    const gnu = tarHeader("././@LongLink", 2 * 1024 * 1024, "L");
    expect(await refused(Buffer.concat([gnu, big, new Uint8Array(1024)]))).toMatch(/larger than 1048576 bytes/);
  });

  test("a malformed pax record is refused", async () => {
    const rec = new TextEncoder().encode("99999 path=x\n");
    const bytes = Buffer.concat([tarHeader("p", rec.byteLength, "x"), rec, new Uint8Array(512 - rec.byteLength), good()]);
    expect(await refused(bytes)).toMatch(/pax header at offset 0 is malformed/);
  });

  test("more entries than the limit are refused", async () => {
    const many = tarFiles(Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, bytes: new Uint8Array(1) })));
    expect(await refused(many, { maxEntries: 10, maxMetaBytes: 1024 })).toMatch(/more than 10 entries/);
  });

  test("a 20,000-entry archive is indexed quickly through the read window", async () => {
    const file = join(work, "many.tar");
    writeFileSync(file, tarFiles(Array.from({ length: 20_000 }, (_, i) => ({ name: `blobs/sha256/${i}`, bytes: new Uint8Array(10) }))));
    const t0 = performance.now();
    expect(await indexTar(file)).toHaveLength(20_000);
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});
