// Our logger (src/log.ts) past consola: nested tags, levels, and a flood of one message held back.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "../../src/log.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-logthrottle-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = () => join(dir, `${Math.random()}.log`);
const read = (f: string) => readFileSync(f, "utf8").split("\n").slice(0, -1).map((l) => l.slice(25));

describe("logger", () => {
  test("withTag nests tags as parent:child; lines below the level are not written", () => {
    const f = file();
    const { log } = createLogger({ level: "info", format: "text", file: f });
    log.withTag("a").withTag("b").info("x");
    log.withTag("a").debug("hidden");
    expect(read(f)).toEqual(["INFO  [a:b] x"]);
  });

  test("the same message many times within a second: five written, the rest counted in one line", async () => {
    const f = file();
    const { log } = createLogger({ level: "info", format: "text", file: f });
    const w = log.withTag("up");
    for (let i = 0; i < 50; i++) w.warn("same");
    w.warn("different");
    expect(read(f)).toEqual([...Array(5).fill("WARN  [up] same"), "WARN  [up] same (repeated 45 times)", "WARN  [up] different"]);
    for (let i = 0; i < 8; i++) w.warn("again");
    await Bun.sleep(1200);
    expect(read(f).slice(-2)).toEqual(["WARN  [up] again", "WARN  [up] again (repeated 3 times)"]);
  });

  test("messages that differ are all written", () => {
    const f = file();
    const { log } = createLogger({ level: "info", format: "json", file: f });
    for (let i = 0; i < 20; i++) log.info(`n=${i}`);
    expect(readFileSync(f, "utf8").split("\n").slice(0, -1).map((l) => JSON.parse(l).msg)).toEqual(Array.from({ length: 20 }, (_, i) => `n=${i}`));
  });
});
