// Which archive files a request may be answered from, in which order, and which image of an
// archive a reference picks: the naming rules of `serve --archives`, without any file.
import { describe, expect, test } from "bun:test";
import { annotationMatch, annotationTag, candidates, chooseImage, namesOf, type Candidate } from "../../src/archives/candidates.ts";
import type { ArchiveImage } from "../../src/archives/layout.ts";

const listing = new Map([
  ["", ["nginx.oci", "other.oci"]],
  ["library", ["x.oci", "x:a.oci", "x:v1.oci", "xy.oci"]],
  ["library/x", ["a.oci", "v1.oci"]],
  ["up.test/library", ["x.oci"]],
  ["up.test/library/x", ["z.oci"]],
  ["docker.io/library", ["nginx.oci"]],
]);
const x = { upstream: "up.test", repository: "library/x" };

describe("candidates", () => {
  test("upstream-qualified name first, then the repository; each in the five patterns' order", () => {
    expect(candidates(listing, x, "v1")).toEqual([
      { path: "up.test/library/x/z.oci", kind: "glob" },
      { path: "up.test/library/x.oci", kind: "exact" },
      { path: "library/x/v1.oci", kind: "named" },
      { path: "library/x/a.oci", kind: "glob" },
      { path: "library/x:v1.oci", kind: "named" },
      { path: "library/x:a.oci", kind: "glob" },
      { path: "library/x.oci", kind: "exact" },
    ]);
  });

  test("a digest skips the reference-named forms; the globs still reach those files", () => {
    expect(candidates(listing, x, null).map((c) => c.path)).toEqual([
      "up.test/library/x/z.oci", "up.test/library/x.oci", "library/x/a.oci", "library/x/v1.oci",
      "library/x:a.oci", "library/x:v1.oci", "library/x.oci",
    ]);
  });

  test("a name prefix is not a match (library/xy.oci is not library/x)", () => {
    expect(candidates(listing, { upstream: "up.test", repository: "library/xy" }, "v1").map((c) => c.path)).toEqual(["library/xy.oci"]);
  });

  test("Docker Hub's official images are also found without library/", () => {
    const nginx = { upstream: "docker.io", repository: "library/nginx" };
    expect(namesOf(nginx)).toEqual(["docker.io/library/nginx", "library/nginx", "nginx"]);
    expect(candidates(listing, nginx, "1.27").map((c) => c.path)).toEqual(["docker.io/library/nginx.oci", "nginx.oci"]);
    expect(namesOf({ upstream: "quay.io", repository: "library/nginx" })).toEqual(["quay.io/library/nginx", "library/nginx"]);
  });

  test("nothing listed, nothing tried", () => {
    expect(candidates(new Map(), x, "v1")).toEqual([]);
  });
});

describe("choosing an image of an archive", () => {
  const img = (refName: string | null, n = 1): ArchiveImage => ({ digest: `sha256:${String(n).repeat(64)}`, mediaType: "m", size: 1, refName });
  const c = (kind: Candidate["kind"]): Candidate => ({ path: "p", kind });

  test("the annotation that equals the reference wins, in any kind of file", () => {
    const two = [img("v1", 1), img("v2", 2)];
    for (const kind of ["named", "glob", "exact"] as const) {
      expect(chooseImage(two, c(kind), x, "v2")).toBe(two[1]!);
      expect(chooseImage(two, c(kind), x, "v3")).toBeNull();
    }
  });

  test("annotations may name the image: this upstream's first, then another host's (podman save's localhost/)", () => {
    expect(annotationMatch("v1", x, "v1")).toBe(2);
    expect(annotationMatch("up.test/library/x:v1", x, "v1")).toBe(2);
    expect(annotationMatch("localhost/library/x:v1", x, "v1")).toBe(1);
    expect(annotationMatch("library/x:v1", x, "v1")).toBe(1); // docker.io/library/x
    expect(annotationMatch("library/y:v1", x, "v1")).toBe(0);
    expect(annotationMatch("up.test/library/x:v2", x, "v1")).toBe(0);
    expect(annotationMatch("v2", x, "v1")).toBe(0);
    const hub = { upstream: "docker.io", repository: "library/nginx" };
    expect(annotationMatch("nginx:1.27", hub, "1.27")).toBe(2);
    const both = [img("localhost/library/x:v1", 1), img("up.test/library/x:v1", 2)];
    expect(chooseImage(both, c("glob"), x, "v1")).toBe(both[1]!);
    expect(chooseImage([both[0]!], c("exact"), x, "v1")).toBe(both[0]!);
    expect([annotationTag("localhost/team/app:1.4"), annotationTag("v1"), annotationTag("x@sha256:" + "a".repeat(64))]).toEqual(["1.4", "v1", "sha256:" + "a".repeat(64)]);
  });

  test("one image without annotation: any reference in <name>.oci, its own in a named file, none by glob", () => {
    const one = [img(null)];
    expect(chooseImage(one, c("exact"), x, "anything")).toBe(one[0]!);
    expect(chooseImage(one, c("named"), x, "v1")).toBe(one[0]!);
    expect(chooseImage(one, c("glob"), x, "v3")).toBeNull();
  });

  test("a file named for the reference serves its one image whatever its annotation; <name>.oci does not", () => {
    const latest = [img("latest")];
    expect(chooseImage(latest, c("named"), x, "v1")).toBe(latest[0]!);
    expect(chooseImage(latest, c("exact"), x, "v1")).toBeNull();
  });

  test("several unannotated images answer no tag (digests only)", () => {
    expect(chooseImage([img(null, 1), img(null, 2)], c("named"), x, "v1")).toBeNull();
  });
});
