// The CLI side of the config schema: flags made from keys, global flags around `config check`,
// the masked printout and the JSON Schema's coverage of every key.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ArgsDef } from "citty";
import { configFlags, globalArgs, hoistGlobalFlags, keyArgs } from "../../src/cli/globals.ts";
import { configJsonSchema } from "../../src/config/json-schema.ts";
import { resolveConfig } from "../../src/config/resolve.ts";
import { entries } from "../../src/config/schema.ts";
import { MASK, maskedConfig } from "../../src/config/show.ts";

describe("flags made from the schema", () => {
  test("each group has the flags it had, named after their keys, with the defaults in the help", () => {
    expect(Object.keys(globalArgs).sort()).toEqual(["config-file", "image-path", "log-file", "log-format", "log-level", "max-size", "min-free-space", "store"]);
    expect(Object.keys(keyArgs("upstream")).sort()).toEqual(["docker-config", "pull-timeout", "upstreams"]);
    expect(Object.keys(keyArgs("serve")).sort()).toEqual(["air-gapped", "default-ns", "host", "port", "revalidate-after", "shutdown-delay"]);
    expect(Object.keys(keyArgs("archives"))).toEqual(["archives"]);
    expect(keyArgs("serve")["air-gapped"]!.type).toBe("boolean");
    expect(keyArgs("serve").port!.description).toContain("(default: 8080)");
    expect((globalArgs as ArgsDef)["image-path"]!.description).toContain("(default: /var/lib/ociregistry)");
  });

  test("parsed args become the flags of their keys; only the command's groups count", () => {
    const args = { "config-file": "c.yml", "image-path": "/d", port: "9000", "air-gapped": true, upstreams: "any" };
    expect(configFlags(args, ["serve"])).toEqual({ configFile: "c.yml", imagePath: "/d", port: "9000", airGapped: true });
    expect(configFlags(args, ["upstream"])).toEqual({ configFile: "c.yml", imagePath: "/d", upstreams: "any" });
  });

  test("a flag error names the flag; a flag overrides the key it mirrors", () => {
    expect(() => resolveConfig({ revalidateAfter: "soon" }, {})).toThrow('--revalidate-after: must be a duration like 30s, 5m or 1h, got "soon"');
    expect(() => resolveConfig({ store: "s3:/x" }, {})).toThrow("--store: must be s3://BUCKET");
    expect(resolveConfig({ airGapped: "true", defaultNs: "Quay.IO" }, {})).toMatchObject({ airGapped: true, defaultNs: "quay.io" });
  });
});

describe("global flags around config check", () => {
  test.each([
    [["--config-file", "F", "config", "check"], ["config", "check", "--config-file", "F"]],
    [["config", "--config-file", "F", "check"], ["config", "check", "--config-file", "F"]],
    [["--log-level=debug", "config", "--config-file", "F", "check", "--port", "1"], ["config", "check", "--log-level=debug", "--config-file", "F", "--port", "1"]],
    [["config", "check", "--config-file", "F"], ["config", "check", "--config-file", "F"]],
    [["config", "schema"], ["config", "schema"]],
    [["--config-file", "F", "serve"], ["serve", "--config-file", "F"]],
  ])("%p -> %p", (argv, want) => expect(hoistGlobalFlags(argv)).toEqual(want));
});

describe("config check's printout", () => {
  test("passwords, tokens, the S3 secret and private keys are masked; PEM files shown by size", () => {
    const cfg = resolveConfig({}, {});
    cfg.registries = [{ name: "r.io", scheme: "https", originFallback: true, auth: { user: "u", password: "pw-1" }, tls: { ca: "CA-PEM", key: "KEY-PEM", cert: "CERT" },
      endpoints: [{ url: "https://m", auth: { user: "m", password: "pw-2" } }] }];
    cfg.users = [{ user: "alice", password: "pw-3" }];
    cfg.adminToken = "tok-0123456789abcdef";
    cfg.s3 = { endpoint: "http://s3", region: "r", bucket: "b", prefix: "", accessKeyId: "AK", secretAccessKey: "pw-4", forcePathStyle: true, redirect: false, abortUploadsAfterMs: 1, localCopyBytes: 0, uploadTrailBytes: 0 };
    cfg.serverTlsConfig = { cert: "C", key: "SERVER-KEY", clientAuth: "none" };
    const text = JSON.stringify(maskedConfig(cfg));
    for (const secret of ["pw-1", "pw-2", "pw-3", "pw-4", "tok-0123456789abcdef", "KEY-PEM", "SERVER-KEY", "CA-PEM"]) expect(text).not.toContain(secret);
    expect(text).toContain(MASK);
    expect(text).toContain('"accessKeyId":"AK"');
    expect(text).toContain("(PEM, 6 bytes)");
  });
});

describe("the JSON Schema", () => {
  const schema = configJsonSchema() as { $schema: string; properties: Record<string, { description?: string; properties?: Record<string, unknown> }>; additionalProperties: boolean };

  test("is draft-07, closed, and has every key with a description", () => {
    expect(schema.$schema).toBe("http://json-schema.org/draft-07/schema#");
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(Object.keys(entries));
    for (const [k, p] of Object.entries(schema.properties)) expect([k, typeof p.description]).toEqual([k, "string"]);
  });

  test("describes values as users write them: durations as text, defaults as in the table", () => {
    expect(schema.properties.revalidateAfter).toMatchObject({ default: "5m" });
    expect(schema.properties.upstreams).toMatchObject({ enum: ["public", "listed", "any"], default: "public" });
    expect(Object.keys(schema.properties.registries as object)).toContain("items");
  });
});

describe("s3.uploadTrail", () => {
  const dir = mkdtempSync(join(tmpdir(), "ocireg-upload-trail-"));
  const s3 = (extra: string) => {
    const f = join(dir, `${Math.random()}.yml`);
    writeFileSync(f, `store: s3://bucket/p\ns3:\n  endpoint: http://s3.test\n  accessKeyId: k\n  secretAccessKey: s\n${extra}`);
    return { configFile: f };
  };
  test("256 MiB unless set; 0 uploads beside the download; a share of a disk is refused, naming the key", () => {
    expect(resolveConfig(s3(""), {}).s3?.uploadTrailBytes).toBe(256 * 1024 * 1024);
    expect(resolveConfig(s3("  uploadTrail: 0\n"), {}).s3?.uploadTrailBytes).toBe(0);
    expect(resolveConfig(s3("  uploadTrail: 64MiB\n"), {}).s3?.uploadTrailBytes).toBe(64 * 1024 * 1024);
    expect(() => resolveConfig(s3("  uploadTrail: 10%\n"), {})).toThrow("s3.uploadTrail: give a size in bytes");
    expect(() => resolveConfig(s3("  uploadTrail: lots\n"), {})).toThrow("s3.uploadTrail");
  });
});
