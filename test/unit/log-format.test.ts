// The shape of log lines (time and level first, one line per message line, fields as key=value
// or JSON fields) and the request-id rules of the access log.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger, fieldText, LogLines, logFields } from "../../src/log.ts";
import { createAccessLog, loggedPath, MAX_LOGGED_PATH, newRequestId, requestId } from "../../src/server/access.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-logfmt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (ERROR|WARN |INFO |DEBUG|TRACE) /;

function logged(format: "text" | "json", write: (log: ReturnType<typeof createLogger>["log"]) => void, level: "info" | "debug" = "debug"): string[] {
  const file = join(dir, `${format}-${Math.random()}.log`);
  const { log } = createLogger({ level, format, file });
  write(log);
  log.writer.flush();
  return readFileSync(file, "utf8").split("\n").slice(0, -1);
}

describe("text lines", () => {
  test("every line opens with an ISO-8601 UTC time with milliseconds and the level; a tag follows in brackets", () => {
    const lines = logged("text", (log) => {
      log.withTag("cache").info("cached docker.io/library/nginx:1.27 (sha256:abc)");
      log.warn("careful");
      log.error("broken");
      log.debug("detail");
      log.trace("hidden at debug");
    });
    expect(lines).toHaveLength(4);
    for (const l of lines) expect(l).toMatch(TIME);
    expect(lines[0]!.slice(24)).toBe(" INFO  [cache] cached docker.io/library/nginx:1.27 (sha256:abc)");
    expect(lines.slice(1).map((l) => l.slice(25))).toEqual(["WARN  careful", "ERROR broken", "DEBUG detail"]);
    expect(Math.abs(Date.parse(lines[0]!.slice(0, 24)) - Date.now())).toBeLessThan(5000);
  });

  test("no blank lines: warnings are not boxed, a banner's lines and an error's frames each get time and level, empty ones are dropped", () => {
    const lines = logged("text", (log) => {
      log.warn("first");
      log.info(new LogLines(["banner", "", "  second"]));
      log.error(new Error("boom"));
      log.warn("last");
    });
    expect(lines.every((l) => TIME.test(l))).toBe(true);
    expect(lines.filter((l) => l.trim() === "")).toHaveLength(0);
    expect(lines.slice(1, 3).map((l) => l.slice(31))).toEqual(["banner", "  second"]);
    expect(lines.some((l) => /ERROR {5}at /.test(l))).toBe(true);
  });

  test("fields are key=value pairs: bare when plain, quoted and escaped otherwise, null as -", () => {
    const [line] = logged("text", (log) => logFields(log, "info", "audit", "summary only in JSON", {
      action: "pin", target: "docker.io/library/nginx:1.27", client: null, reason: 'a "quoted" = value', evil: "x\x1b[2J\ny", n: 3, skipped: undefined,
    }));
    expect(line).toMatch(TIME);
    expect(line!.slice(24)).toBe(' INFO  [audit] action=pin target=docker.io/library/nginx:1.27 client=- reason="a \\"quoted\\" = value" evil=\"x\\x1b[2J\\ny\" n=3');
  });

  test("fieldText: empty strings and backslashes are quoted", () => {
    expect(fieldText("")).toBe('""');
    expect(fieldText("C:\\x")).toBe('"C:\\\\x"');
    expect(fieldText(false)).toBe("false");
  });

  test("lines with fields follow the level: below it nothing is written", () => {
    expect(logged("text", (log) => logFields(log, "debug", "x", "s", { a: 1 }), "info")).toEqual([]);
  });
});

describe("JSON lines", () => {
  test("time, level, tag and msg, and each field beside them, the exact strings", () => {
    const lines = logged("json", (log) => {
      log.withTag("cache").warn("careful\x1b");
      log.info(new LogLines(["a", "b"]));
      logFields(log, "info", "access", "GET /v2/ 200", { request_id: "r1", status: 200, cache: null, path: "/v2/\u202e" });
    }).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(3);
    for (const l of lines) expect(Number.isNaN(Date.parse(String(l.time)))).toBe(false);
    expect(lines[0]).toMatchObject({ level: "warn", tag: "cache", msg: "careful\x1b" });
    expect(lines[1]).toMatchObject({ level: "info", msg: "a\nb" });
    expect(lines[2]).toEqual({ time: lines[2]!.time, level: "info", tag: "access", msg: "GET /v2/ 200", request_id: "r1", status: 200, cache: null, path: "/v2/\u202e" });
  });
});

describe("request ids", () => {
  test.each([
    ["abc-123", true], ["A.b_c:d-9", true], ["x".repeat(128), true],
    ["x".repeat(129), false], ["", false], ["has space", false], ["new\nline", false], ["quote\"", false], ["é", false], ["a=b", false], ["a/b", false],
  ])("a client's %j is kept: %p", (given, kept) => {
    const id = requestId(given);
    if (kept) expect(id).toBe(given);
    else expect(id).toMatch(/^[0-9a-z]{12}$/);
  });

  test("without one, a short random id: 12 characters, none repeated over 10,000", () => {
    expect(requestId(null)).toMatch(/^[0-9a-z]{12}$/);
    const ids = new Set(Array.from({ length: 10_000 }, newRequestId));
    expect(ids.size).toBe(10_000);
  });

  test("a long path is cut to a bound and marked", () => {
    expect(loggedPath("/v2/x")).toBe("/v2/x");
    const cut = loggedPath(`/v2/${"a".repeat(5000)}`);
    expect(cut).toHaveLength(MAX_LOGGED_PATH + 3);
    expect(cut.endsWith("...")).toBe(true);
  });
});

describe("the access line", () => {
  test("text: every field as key=value in a fixed order, the path escaped and bounded", () => {
    const [line] = logged("text", (log) => createAccessLog(log)({
      id: "r1", client: "127.0.0.1", method: "GET", path: `/v2/a\x1bb/${"p".repeat(600)}`, status: 200, bytes: 1234, durationMs: 0.123456,
      exchange: { cache: "hit", upstream: "docker.io" },
    }));
    expect(line).toMatch(TIME);
    const m = line!.slice(25).match(/^INFO {2}\[access\] request_id=r1 client=127\.0\.0\.1 method=GET path=(\S+) status=200 bytes=1234 duration_ms=0\.12 cache=hit upstream=docker\.io$/);
    expect(m).not.toBeNull();
    expect(m![1]!.startsWith("/v2/a\\x1bb/")).toBe(true);
    expect(m![1]!.length).toBeLessThan(MAX_LOGGED_PATH + 10);
  });

  test("JSON: the same fields, null where there is nothing to say", () => {
    const [line] = logged("json", (log) => createAccessLog(log)({
      id: "r2", client: undefined, method: "HEAD", path: "/healthz", status: 200, bytes: null, durationMs: 1, exchange: undefined,
    }));
    expect(JSON.parse(line!)).toMatchObject({ level: "info", tag: "access", msg: "HEAD /healthz 200", request_id: "r2", client: null, bytes: null, cache: null, upstream: null, duration_ms: 1 });
  });
});

describe("access lines are batched", () => {
  const entry = (id: string) => ({ id, client: "127.0.0.1", method: "GET", path: "/v2/", status: 200, bytes: 0, durationMs: 1, exchange: undefined });
  const lines = (file: string) => readFileSync(file, "utf8").split("\n").slice(0, -1);

  test("gathered and written together within the batch time, not one write per request", async () => {
    const file = join(dir, `batch-${Math.random()}.log`);
    const { log } = createLogger({ level: "info", format: "text", file });
    const access = createAccessLog(log);
    for (let i = 0; i < 50; i++) access(entry(`b${i}`));
    expect(readFileSync(file, "utf8")).toBe("");
    await Bun.sleep(60);
    expect(lines(file).map((l) => l.match(/request_id=(\S+)/)![1])).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));
  });

  test("any other line writes the gathered ones first: the log keeps its order", () => {
    const file = join(dir, `order-${Math.random()}.log`);
    const { log } = createLogger({ level: "info", format: "json", file });
    const access = createAccessLog(log);
    access(entry("first"));
    log.warn("then a warning");
    access(entry("last"));
    const got = lines(file).map((l) => JSON.parse(l));
    expect(got.map((l) => l.request_id ?? l.msg)).toEqual(["first", "then a warning"]);
    log.writer.flush();
    expect(lines(file).map((l) => JSON.parse(l).request_id ?? JSON.parse(l).msg)).toEqual(["first", "then a warning", "last"]);
  });

  test("reopen writes the gathered lines to the old file before switching", () => {
    const file = join(dir, `reopen-${Math.random()}.log`);
    const { log, reopen } = createLogger({ level: "info", format: "text", file });
    createAccessLog(log)(entry("before-rotate"));
    const rotated = `${file}.1`;
    renameSync(file, rotated);
    reopen();
    expect(readFileSync(rotated, "utf8")).toContain("request_id=before-rotate");
  });

  test("past 64 KiB of gathered lines they are written at once (memory stays bounded)", () => {
    const file = join(dir, `big-${Math.random()}.log`);
    const { log } = createLogger({ level: "info", format: "text", file });
    const access = createAccessLog(log);
    for (let i = 0; i < 2000; i++) access(entry(`n${i}`));
    expect(readFileSync(file, "utf8").length).toBeGreaterThan(64 * 1024);
    log.writer.flush();
    expect(lines(file).length).toBe(2000);
  });
});
