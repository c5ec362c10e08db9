import { describe, expect, test } from "bun:test";
import { upstreamAccept } from "../../src/cache/manifests.ts";
import { digestOf, isDigest, parseDigest } from "../../src/oci/digest.ts";
import { detectMediaType, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, parseManifest } from "../../src/oci/mediatypes.ts";
import { isHost, isRepositoryName, isTag } from "../../src/oci/names.ts";
import { parseImageReference } from "../../src/oci/reference.ts";
import { parseRange } from "../../src/registry/handlers/blobs.ts";
import { resolveTarget } from "../../src/registry/target.ts";
import { recordName } from "../../src/store/record.ts";

const HEX = "a".repeat(64);

describe("names, tags and digests", () => {
  test.each([
    ["library/nginx", true], ["a", true], ["a/b/c", true], ["my-app_x.y/z", true], ["a__b", true],
    ["", false], ["A/b", false], ["a//b", false], ["../etc", false], ["a/../b", false], ["/abs", false],
    ["a\\b", false], ["a\0b", false], ["%2e%2e/x", false], ["a/", false], ["_x", false], ["x".repeat(256), false],
  ])("repository name %p valid: %p", (name, ok) => expect(isRepositoryName(name)).toBe(ok));

  test.each([["latest", true], ["v1.2.3-rc_1", true], ["Latest", true], ["_x", true], [".x", false], ["-x", false], ["a:b", false], ["x".repeat(129), false]])(
    "tag %p valid: %p", (tag, ok) => expect(isTag(tag)).toBe(ok));

  test("digests: sha256 and sha512 only, lower-case hex of the right length", () => {
    expect(isDigest(`sha256:${HEX}`)).toBe(true);
    expect(isDigest(`sha512:${"b".repeat(128)}`)).toBe(true);
    expect(isDigest(`sha256:${HEX.slice(1)}`)).toBe(false);
    expect(isDigest(`sha256:${HEX.toUpperCase()}`)).toBe(false);
    expect(isDigest(`md5:${HEX}`)).toBe(false);
    expect(parseDigest(`sha256:${HEX}`)).toEqual({ algorithm: "sha256", hex: HEX, value: `sha256:${HEX}` });
    expect(digestOf(new TextEncoder().encode(""))).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });

  test("hosts", () => {
    for (const h of ["docker.io", "localhost:5000", "127.0.0.2", "[::1]:5000", "registry.k8s.io"]) expect(isHost(h)).toBe(true);
    for (const h of ["", "a/b", "host:99999", "..", "-bad.io", "a b"]) expect(isHost(h)).toBe(false);
  });
});

describe("resolveTarget: which upstream a request means", () => {
  test.each([
    // name, ns, expected upstream, expected repository
    ["pause", "registry.k8s.io", "registry.k8s.io", "pause"],
    ["library/nginx", "docker.io", "docker.io", "library/nginx"],
    ["nginx", "docker.io", "docker.io", "library/nginx"],
    ["nginx", "index.docker.io", "docker.io", "library/nginx"],
    ["registry.k8s.io/pause", null, "registry.k8s.io", "pause"],
    ["quay.io/prometheus/node-exporter", null, "quay.io", "prometheus/node-exporter"],
    ["localhost:5000/x", null, "localhost:5000", "x"],
    ["localhost/x", null, "localhost", "x"],
    ["127.0.0.2/library/x", null, "127.0.0.2", "library/x"],
    ["nginx", null, "docker.io", "library/nginx"],
    ["library/nginx", null, "docker.io", "library/nginx"],
    ["quay.io/x", "registry.k8s.io", "registry.k8s.io", "quay.io/x"],
  ])("%p with ns=%p -> %p %p", (name, ns, upstream, repository) => {
    expect(resolveTarget(name, ns, "docker.io")).toEqual({ ok: true, target: { upstream, repository } });
  });

  test("a one-part name gets library/ on Docker Hub only, so records on two upstreams never collide", () => {
    const hub = resolveTarget("nginx", "index.docker.io", "docker.io");
    const quay = resolveTarget("nginx", "quay.io", "docker.io");
    expect(hub).toEqual({ ok: true, target: { upstream: "docker.io", repository: "library/nginx" } });
    expect(quay).toEqual({ ok: true, target: { upstream: "quay.io", repository: "nginx" } });
    const name = (r: typeof hub) => (r.ok ? recordName({ ...r.target, tag: "1" }) : "");
    expect(name(hub)).toBe("docker.io/library/nginx:1");
    expect(name(quay)).toBe("quay.io/nginx:1");
  });

  test.each([["..", null], ["x", "evil/host"], ["x", "a b"], ["UPPER", null], ["quay.io/", null]])(
    "rejects %p ns=%p", (name, ns) => expect(resolveTarget(name, ns, "docker.io").ok).toBe(false));
});

describe("parseRange", () => {
  test.each([
    ["bytes=0-9", 100, { start: 0, end: 9 }],
    ["bytes=90-", 100, { start: 90, end: 99 }],
    ["bytes=-10", 100, { start: 90, end: 99 }],
    ["bytes=50-1000", 100, { start: 50, end: 99 }],
    ["bytes=100-", 100, "unsatisfiable"],
    ["bytes=-0", 100, "unsatisfiable"],
    ["bytes=0-1,5-6", 100, null],
    ["items=0-1", 100, null],
    [null, 100, null],
  ])("%p of %p bytes", (h, size, want) => expect(parseRange(h, size)).toEqual(want as never));
});

describe("media types", () => {
  test("detects OCI types that omit mediaType", () => {
    expect(detectMediaType(parseManifest(new TextEncoder().encode('{"schemaVersion":2,"manifests":[]}'))!)).toBe(OCI_INDEX);
    expect(detectMediaType(parseManifest(new TextEncoder().encode('{"schemaVersion":2,"config":{},"layers":[]}'))!)).toBe(OCI_MANIFEST);
    expect(detectMediaType({ mediaType: DOCKER_MANIFEST })).toBe(DOCKER_MANIFEST);
    expect(parseManifest(new TextEncoder().encode("[1]"))).toBeNull();
  });

  test("the Accept sent upstream keeps the client's types and adds every cached type", () => {
    const a = upstreamAccept("application/vnd.docker.distribution.manifest.v2+json;q=0.9, */*");
    expect(a.split(", ")).toContain(OCI_INDEX);
    expect(a.split(", ")[0]).toBe(DOCKER_MANIFEST);
    expect(a).not.toContain("*/*");
  });
});

describe("image references", () => {
  test.each([
    ["nginx", "docker.io", "library/nginx", "latest"],
    ["nginx:1.27", "docker.io", "library/nginx", "1.27"],
    ["docker.io/bitnami/redis:7", "docker.io", "bitnami/redis", "7"],
    ["registry.k8s.io/pause:3.9", "registry.k8s.io", "pause", "3.9"],
    ["localhost:5000/a/b:v1", "localhost:5000", "a/b", "v1"],
    [`host:5000/a/b@sha256:${HEX}`, "host:5000", "a/b", `sha256:${HEX}`],
    [`quay.io/x:v1@sha256:${HEX}`, "quay.io", "x", `sha256:${HEX}`],
  ])("%p", (text, upstream, repository, reference) => {
    expect(parseImageReference(text)).toEqual({ ok: true, ref: { upstream, repository, reference } });
  });
  test.each(["", "nginx::1", "UPPER/x", "x@sha256:abc", "host:5000/", "a b", "nginx:-bad"])("rejects %p", (t) => {
    expect(parseImageReference(t).ok).toBe(false);
  });
});

describe("BoundedMap eviction", () => {
  test("stays within its caps and evicts least recently used first across many evictions", async () => {
    const { BoundedMap } = await import("../../src/lib/bounded-map.ts");
    const m = new BoundedMap<string, number>(100);
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) m.set(`r${round}-${i}`, i);
      // Keep one key of the round before alive by reading it: it must survive this round's inserts.
      if (round > 0) expect(m.has(`r${round - 1}-0`)).toBe(false);
      m.get(`r${round}-0`);
      for (let i = 0; i < 60; i++) m.set(`x${round}-${i}`, i);
      expect(m.size).toBe(100);
      expect(m.get(`r${round}-0`)).toBe(0);
      expect(m.has(`r${round}-1`)).toBe(false);
    }
    const w = new BoundedMap<string, string>(Infinity, 10, (v) => v.length);
    for (let i = 0; i < 1000; i++) w.set(`k${i}`, "abc");
    expect(w.weight).toBeLessThanOrEqual(10);
    expect(w.entries().map(([k]) => k)).toEqual(["k997", "k998", "k999"]);
    w.clear();
    w.set("a", "abcd");
    expect(w.entries()).toEqual([["a", "abcd"]]);
  });
});
