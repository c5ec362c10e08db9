import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hoistGlobalFlags } from "../../src/cli/globals.ts";
import { parseDuration } from "../../src/config/duration.ts";
import { ConfigError, loadConfig } from "../../src/config/load.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-config-"));
function file(text: string, name = `c${Math.random()}.yml`) {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("config", () => {
  test("defaults match the seed project", () => {
    const c = loadConfig({}, {});
    expect(c).toMatchObject({ imagePath: "/var/lib/ociregistry", port: 8080, defaultNs: "docker.io", pullTimeoutMs: 60000, airGapped: false });
  });

  test("the file overrides defaults and flags override the file", () => {
    const f = file("imagePath: /data\nport: 9000\nlogLevel: debug\nregistries:\n  - name: localhost:5000\n    scheme: http\n");
    const c = loadConfig({ configFile: f, port: "9100" }, {});
    expect(c.imagePath).toBe("/data");
    expect(c.port).toBe(9100);
    expect(c.logLevel).toBe("debug");
    expect(c.registries).toEqual([{ name: "localhost:5000", scheme: "http" }]);
  });

  test.each([
    ["registries:\n  - name: r.io\n    scheme: ftp\n", "registries[0].scheme: must be http or https"],
    ["port: 70000\n", "port: must be a port number"],
    ["registries:\n  - scheme: http\n", "registries[0].name: must be a non-empty string"],
    ["registries:\n  - name: r.io\n    tls:\n      ca: /nonexistent/ca.pem\n", "registries[0].tls.ca: cannot read /nonexistent/ca.pem"],
    ["registries:\n  - name: r.io\n    tls:\n      cert: /x\n", "registries[0].tls.key: cert and key must be given together"],
    ["registries:\n  - name: r.io\n    auth:\n      user: u\n      passwordFromEnv: NOPE_NOT_SET\n", "registries[0].auth.passwordFromEnv: environment variable NOPE_NOT_SET is not set"],
    ["colour: blue\n", "colour: unknown key"],
    ["revalidateAfter: soon\n", "revalidateAfter: must be a duration"],
    ["port: [\n", "not valid YAML"],
    ["- a\n", "must be a YAML mapping"],
  ])("rejects %p naming the key", (text, message) => {
    expect(() => loadConfig({ configFile: file(text) }, {})).toThrow(message);
  });

  test("flag errors name the flag", () => {
    expect(() => loadConfig({ port: "http" }, {})).toThrow("--port: must be a port number");
    expect(() => loadConfig({ logLevel: "loud" }, {})).toThrow("--log-level: must be one of");
    expect(() => loadConfig({ pullTimeout: "-1" }, {})).toThrow(ConfigError);
    expect(() => loadConfig({ configFile: "/nonexistent.yml" }, {})).toThrow("--config-file: cannot read /nonexistent.yml");
  });

  test("passwordFromEnv reads the environment", () => {
    const f = file("registries:\n  - name: r.io\n    auth:\n      user: u\n      passwordFromEnv: PW\n");
    expect(loadConfig({ configFile: f }, { PW: "s3cret" }).registries[0]!.auth).toEqual({ user: "u", password: "s3cret" });
  });

  test("durations", () => {
    expect(parseDuration("30d")).toBe(30 * 86_400_000);
    expect(parseDuration("12h")).toBe(12 * 3_600_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("90")).toBe(90_000);
    expect(parseDuration("1y")).toBeNull();
  });
});

describe("global flags before the subcommand", () => {
  test.each([
    [["--config-file", "F", "serve"], ["serve", "--config-file", "F"]],
    [["--config-file=F", "--log-level", "debug", "serve", "--port", "1"], ["serve", "--config-file=F", "--log-level", "debug", "--port", "1"]],
    [["serve", "--config-file", "F"], ["serve", "--config-file", "F"]],
    [["--help"], ["--help"]],
    [[], []],
  ])("%p -> %p", (argv, want) => expect(hoistGlobalFlags(argv)).toEqual(want));
});
