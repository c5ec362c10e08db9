// `ociregistry config check` and `config schema` as users run them (the compiled binary), and the
// Helm chart refusing a typo in its `config` value through the values.schema.json made from it.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { configJsonSchema } from "../../src/config/json-schema.ts";
import { BINARY, requireBinary } from "../helpers/binary.ts";
import { helmTemplate, helmTemplateError, only } from "../helpers/helm.ts";
import { run } from "../helpers/procs.ts";

let dir: string;
let good: string;
let bad: string;

beforeAll(() => {
  requireBinary();
  dir = mkdtempSync(join(tmpdir(), "ocireg-config-cmd-"));
  good = join(dir, "good.yaml");
  writeFileSync(good, [
    "port: 9000",
    "registries:",
    "  - name: harbor.corp.example",
    "    auth: { user: robot, passwordFromEnv: HARBOR_PW }",
    "admin: { token: admin-0123456789abcdef }",
    "store: s3://bucket/prefix",
    "s3: { endpoint: 'http://127.0.0.1:1', accessKeyId: AKID, secretAccessKey: s3-secret-value }",
    "",
  ].join("\n"));
  bad = join(dir, "bad.yaml");
  writeFileSync(bad, "registries:\n  - name: r.io\n    tls:\n      ca: /nonexistent/ca.pem\n");
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const ociregistry = (args: string[], env: Record<string, string> = {}) => run([BINARY, ...args], { env, allowFail: true });

describe("config check", () => {
  test("prints the resolved config with every secret masked, exit 0", async () => {
    const r = await ociregistry(["config", "check", "--config-file", good], { HARBOR_PW: "harbor-secret-value" });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain("port: 9000");
    expect(r.stdout).toContain("accessKeyId: AKID");
    expect(r.stdout).toContain("user: robot");
    for (const secret of ["harbor-secret-value", "admin-0123456789abcdef", "s3-secret-value"]) expect(r.stdout).not.toContain(secret);
  });

  test.each([
    ["before the subcommand", ["--config-file", "GOOD", "config", "check", "--port", "9100"]],
    ["between config and check", ["config", "--config-file", "GOOD", "check", "--port", "9100"]],
    ["after check", ["config", "check", "--port", "9100", "--config-file", "GOOD"]],
  ])("global flags work %s; a mirrored flag overrides the file", async (_, args) => {
    const r = await ociregistry(args.map((a) => (a === "GOOD" ? good : a)), { HARBOR_PW: "x" });
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain("port: 9100");
  });

  test("an error exits 2 naming the key", async () => {
    const r = await ociregistry(["config", "check", "--config-file", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe("ociregistry: registries[0].tls.ca: cannot read /nonexistent/ca.pem: ENOENT\n");
    expect(r.stdout).toBe("");
  });

  test("a missing variable, a typo and a bad flag exit 2 naming them", async () => {
    expect((await ociregistry(["config", "check", "--config-file", good])).stderr).toContain("registries[0].auth.passwordFromEnv: environment variable HARBOR_PW is not set");
    const typo = join(dir, "typo.yaml");
    writeFileSync(typo, "pullTimout: 90s\n");
    const t = await ociregistry(["config", "check", "--config-file", typo]);
    expect([t.code, t.stderr]).toEqual([2, "ociregistry: pullTimout: unknown key\n"]);
    const f = await ociregistry(["config", "check", "--upstreams", "all"]);
    expect([f.code, f.stderr]).toEqual([2, 'ociregistry: --upstreams: must be public, listed or any, got "all"\n']);
  });
});

describe("config schema", () => {
  test("prints the JSON Schema of the config file", async () => {
    const r = await ociregistry(["config", "schema"]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(configJsonSchema());
  });
});

describe("the Helm chart checks its config value against the schema", () => {
  test("a typo'd key fails helm template, naming it", async () => {
    const err = await helmTemplateError(["--set", "config.pullTimout=90s"]);
    expect(err).toContain("pullTimout");
    expect(err).toMatch(/Additional property pullTimout is not allowed/);
  });

  test("a wrong value type and a typo inside registries fail too", async () => {
    expect(await helmTemplateError(["--set", "config.upstreams=all"])).toContain("config.upstreams");
    const values = join(dir, "values.yaml");
    writeFileSync(values, "config:\n  registries:\n    - name: harbor.corp.example\n      auht: { user: u, password: p }\n");
    expect(await helmTemplateError(["-f", values])).toContain("auht");
  });

  test("valid values still render, their config passing config check", async () => {
    const values = join(dir, "ok-values.yaml");
    writeFileSync(values, "config:\n  logLevel: debug\n  pullTimeout: 90s\n  registries:\n    - name: harbor.corp.example\n      scheme: http\n");
    const cm = only(await helmTemplate(["-f", values]), "ConfigMap");
    const file = join(dir, "rendered.yaml");
    writeFileSync(file, cm.data!["config.yaml"]!);
    const r = await ociregistry(["config", "check", "--config-file", file]);
    expect([r.code, r.stderr]).toEqual([0, ""]);
    expect(r.stdout).toContain("pullTimeoutMs: 90000");
  });
});
