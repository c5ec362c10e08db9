import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { hoistGlobalFlags } from "../../src/cli/globals.ts";
import { parseDuration } from "../../src/config/duration.ts";
import { ConfigError, resolveConfig } from "../../src/config/resolve.ts";

const dir = mkdtempSync(join(tmpdir(), "ocireg-config-"));
function file(text: string, name = `c${Math.random()}.yml`) {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe("config", () => {
  test("defaults match the seed project", () => {
    const c = resolveConfig({}, {});
    expect(c).toMatchObject({ imagePath: "/var/lib/ociregistry", port: 8080, defaultNs: "docker.io", pullTimeoutMs: 60000, airGapped: false });
  });

  test("the file overrides defaults and flags override the file", () => {
    const f = file("imagePath: /data\nport: 9000\nlogLevel: debug\nregistries:\n  - name: localhost:5000\n    scheme: http\n");
    const c = resolveConfig({ configFile: f, port: "9100" }, {});
    expect(c.imagePath).toBe("/data");
    expect(c.port).toBe(9100);
    expect(c.logLevel).toBe("debug");
    expect(c.registries).toEqual([{ name: "localhost:5000", scheme: "http", originFallback: true }]);
  });

  test.each([
    ["registries:\n  - name: r.io\n    scheme: ftp\n", "registries[0].scheme: must be http or https"],
    ["port: 70000\n", "port: must be a port number"],
    ["registries:\n  - scheme: http\n", "registries[0].name: must be a non-empty string"],
    ["registries:\n  - name: r.io\n    endpoints: [ftp://x]\n", "registries[0].endpoints[0].url: must be an http:// or https:// URL"],
    ["registries:\n  - name: r.io\n    endpoints: [{url: 'https://m.io?x=1'}]\n", "registries[0].endpoints[0].url: may have a path but no query"],
    ["registries:\n  - name: r.io\n    originFallback: false\n", "registries[0].originFallback: false needs at least one endpoint"],
    ["registries:\n  - name: r.io\n    userAgent: \"a\\nb\"\n", "registries[0].userAgent: must not contain control characters"],
    ["registries:\n  - name: r.io\n    tls:\n      ca: /nonexistent/ca.pem\n", "registries[0].tls.ca: cannot read /nonexistent/ca.pem"],
    ["registries:\n  - name: r.io\n    tls:\n      cert: /x\n", "registries[0].tls.key: cert and key must be given together"],
    ["registries:\n  - name: r.io\n    auth:\n      user: u\n      passwordFromEnv: NOPE_NOT_SET\n", "registries[0].auth.passwordFromEnv: environment variable NOPE_NOT_SET is not set"],
    ["colour: blue\n", "colour: unknown key"],
    ["revalidateAfter: soon\n", "revalidateAfter: must be a duration"],
    ["port: [\n", "not valid YAML"],
    ["- a\n", "must be a YAML mapping"],
    ["archives: /srv/oci\n", "archives: must be a mapping with path"],
    ["archives:\n  rescan: 1m\n", "archives.path: must be a non-empty string"],
    ["archives:\n  path: /srv/oci\n  rescan: 100ms\n", "archives.rescan: must be at least 1s"],
    ["archives:\n  path: /srv/oci\n  watch: true\n", "archives.watch: unknown key"],
  ])("rejects %p naming the key", (text, message) => {
    expect(() => resolveConfig({ configFile: file(text) }, {})).toThrow(message);
  });

  test("archives: path and rescan (default 10m); --archives sets the path and keeps the file's rescan", () => {
    expect(resolveConfig({ configFile: file("archives:\n  path: /srv/oci\n") }, {}).archives).toEqual({ path: "/srv/oci", rescanMs: 600_000 });
    expect(resolveConfig({ configFile: file("archives: {path: /a, rescan: 30s}\n"), archives: "/b" }, {}).archives).toEqual({ path: "/b", rescanMs: 30_000 });
    expect(resolveConfig({ archives: "/c" }, {}).archives).toEqual({ path: "/c", rescanMs: 600_000 });
    expect(resolveConfig({}, {}).archives).toBeUndefined();
    expect(() => resolveConfig({ archives: "" }, {})).toThrow("--archives: must be a non-empty string");
  });

  test("flag errors name the flag", () => {
    expect(() => resolveConfig({ port: "http" }, {})).toThrow("--port: must be a port number");
    expect(() => resolveConfig({ logLevel: "loud" }, {})).toThrow("--log-level: must be one of");
    expect(() => resolveConfig({ pullTimeout: "-1" }, {})).toThrow(ConfigError);
    expect(() => resolveConfig({ configFile: "/nonexistent.yml" }, {})).toThrow("--config-file: cannot read /nonexistent.yml");
  });

  test("passwordFromEnv reads the environment", () => {
    const f = file("registries:\n  - name: r.io\n    auth:\n      user: u\n      passwordFromEnv: PW\n");
    expect(resolveConfig({ configFile: f }, { PW: "s3cret" }).registries[0]!.auth).toEqual({ user: "u", password: "s3cret" });
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

describe("credentials and TLS settings", () => {
  test("a Docker config.json supplies credentials for registries without their own", () => {
    const dc = file(JSON.stringify({ auths: {
      "https://index.docker.io/v1/": { auth: Buffer.from("hubuser:hubpass").toString("base64") },
      "harbor.example": { auth: Buffer.from("robot:tok:en").toString("base64") },
      "own.example": { auth: Buffer.from("other:other").toString("base64") },
    } }), "config.json");
    const f = file("registries:\n  - name: own.example\n    auth: { user: mine, password: mine }\n");
    const c = resolveConfig({ configFile: f, dockerConfig: dc }, {});
    const by = Object.fromEntries(c.registries.map((r) => [r.name, r.auth]));
    expect(by["docker.io"]).toEqual({ user: "hubuser", password: "hubpass" });
    expect(by["harbor.example"]).toEqual({ user: "robot", password: "tok:en" });
    expect(by["own.example"]).toEqual({ user: "mine", password: "mine" });
  });

  test("a broken Docker config names the flag", () => {
    expect(() => resolveConfig({ dockerConfig: file("{nope") }, {})).toThrow("--docker-config:");
  });

  test("htpasswd accepts bcrypt entries only", () => {
    const ok = file("alice:$2y$05$qvNvM47gv78Ec1QVH2eO0Ova1Eb0WRuFT85SozSsld3Zk.t3v4G.q\n");
    expect(resolveConfig({ configFile: file(`htpasswd: ${ok}\n`) }, {}).users).toEqual([
      { user: "alice", password: "$2y$05$qvNvM47gv78Ec1QVH2eO0Ova1Eb0WRuFT85SozSsld3Zk.t3v4G.q" },
    ]);
    const md5 = file("bob:$apr1$abc$def\n");
    expect(() => resolveConfig({ configFile: file(`htpasswd: ${md5}\n`) }, {})).toThrow("line 1: only bcrypt entries");
  });

  test("serverTlsConfig errors name the key", () => {
    expect(() => resolveConfig({ configFile: file("serverTlsConfig:\n  cert: /nope.pem\n  key: /nope.key\n") }, {}))
      .toThrow("serverTlsConfig.cert: cannot read /nope.pem");
    expect(() => resolveConfig({ configFile: file(`serverTlsConfig:\n  cert: ${file("x")}\n  key: ${file("y")}\n  clientAuth: verify\n`) }, {}))
      .toThrow("serverTlsConfig.ca: is required when clientAuth is verify");
    expect(() => resolveConfig({ configFile: file(`serverTlsConfig:\n  cert: ${file("x")}\n  key: ${file("y")}\n  clientAuth: maybe\n`) }, {}))
      .toThrow("serverTlsConfig.clientAuth: must be none or verify");
  });

  test("mirror endpoints, origin fallback and User-Agent per upstream", () => {
    const c = resolveConfig({ configFile: file(`registries:
  - name: docker.io
    endpoints:
      - https://harbor.corp/dockerhub-proxy/
      - { url: "http://mirror.local:5000", auth: { user: m, password: p } }
    originFallback: false
    userAgent: corp-cache/1
`) }, {});
    expect(c.registries[0]).toMatchObject({
      name: "docker.io", originFallback: false, userAgent: "corp-cache/1",
      endpoints: [{ url: "https://harbor.corp/dockerhub-proxy" }, { url: "http://mirror.local:5000", auth: { user: "m", password: "p" } }],
    });
  });

  test("credential helpers from a Docker config.json and UPSTREAM_CREDENTIALS fill registries without credentials", () => {
    const dc = file(JSON.stringify({ credHelpers: { "123.dkr.ecr.us-east-1.amazonaws.com": "ecr-login" }, credsStore: "desktop", auths: { "ghcr.io": { auth: Buffer.from("u:p").toString("base64") } } }));
    const c = resolveConfig({ configFile: file("registries:\n  - name: own.io\n    auth: { user: a, password: b }\n"), dockerConfig: dc }, {
      UPSTREAM_CREDENTIALS: JSON.stringify({ "quay.io": { username: "q", password: "qp" }, "ghcr.io": { username: "x", password: "y" } }),
    });
    const by = Object.fromEntries(c.registries.map((r) => [r.name, r]));
    expect(by["own.io"]).toMatchObject({ auth: { user: "a", password: "b" } });
    expect(by["own.io"]!.credentialHelper).toBeUndefined();
    expect(by["123.dkr.ecr.us-east-1.amazonaws.com"]!.credentialHelper).toBe("ecr-login");
    expect(by["ghcr.io"]).toMatchObject({ auth: { user: "u", password: "p" } }); // auths first
    expect(by["docker.io"]!.credentialHelper).toBe("desktop"); // credsStore: the default namespace
    expect(by["quay.io"]).toMatchObject({ auth: { user: "q", password: "qp" } });
    expect(() => resolveConfig({ dockerConfig: file(JSON.stringify({ credsStore: "../x" })) }, {})).toThrow("must name a credential helper");
    expect(() => resolveConfig({}, { UPSTREAM_CREDENTIALS: "{nope" })).toThrow("UPSTREAM_CREDENTIALS: must be a JSON object");
  });
});
