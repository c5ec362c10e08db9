// What reaches a log file from hostile strings: in text, control characters and bidi overrides as
// visible escapes and one line per message (unless it is LogLines); in JSON, the same JSON value.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, escapeText, jsonText, LogLines } from "../../src/log.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const HOSTILE = "tags: \x1b[2J\x1b[H\x07fake\r\n[warn] forged line \u202egnp.exe\x9b31m\ttab";

function logged(format: "text" | "json", write: (log: ReturnType<typeof createLogger>["log"]) => void): string {
  const file = join(dir, `${format}-${Math.random()}.log`);
  const { log } = createLogger({ level: "debug", format, file });
  write(log);
  return readFileSync(file, "utf8");
}

describe("escapeText", () => {
  test("control characters, C1 and bidi overrides become escapes; printable text and backslashes stay", () => {
    expect(escapeText(HOSTILE)).toBe("tags: \\x1b[2J\\x1b[H\\x07fake\\r\\n[warn] forged line \\u202egnp.exe\\x9b31m\\ttab");
    expect(escapeText("héllo wörld 日本 C:\\dir \"q\"")).toBe("héllo wörld 日本 C:\\dir \"q\"");
  });
});

describe("the text log", () => {
  test("a hostile message, tag and error are one escaped line each, with no raw control byte", () => {
    const out = logged("text", (log) => {
      log.withTag("up\x1b").warn(HOSTILE);
      log.info("two", "args\x1b", { k: "v\x1b" });
      log.error(new Error("boom\x1b[31m\nnext"));
    });
    expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    expect(out).toContain(escapeText(HOSTILE));
    expect(out).toContain("up\\x1b");
    expect(out).toContain("two args\\x1b");
    expect(out).toContain("boom\\x1b[31m\\nnext");
    expect(out.split("\n").filter((l) => l.includes("forged line"))).toHaveLength(1);
    expect(out.split("\n").some((l) => l.startsWith("[warn] forged"))).toBe(false);
  });

  test("LogLines keeps its line breaks, each line escaped and a log line of its own", () => {
    const out = logged("text", (log) => log.info(new LogLines(["banner", "  second \x1b", "  third"])));
    expect(out.split("\n").map((l) => l.replace(/^\S+ INFO  /, ""))).toEqual(["banner", "  second \\x1b", "  third", ""]);
  });
});

describe("the JSON log", () => {
  test("one JSON object per message holding the exact string, with no raw control or bidi character", () => {
    const out = logged("json", (log) => {
      log.withTag("t").warn(HOSTILE);
      log.info(new LogLines(["a", "b"]));
    });
    expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/);
    const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { msg: string; tag?: string });
    expect(lines.map((l) => l.msg)).toEqual([HOSTILE, "a\nb"]);
  });

  test("jsonText is the same JSON value as JSON.stringify", () => {
    const v = { s: HOSTILE, n: [1, "\u2066x\u2069"] };
    expect(JSON.parse(jsonText(v, 2))).toEqual(v);
  });
});
