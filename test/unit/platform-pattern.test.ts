// Platforms and patterns each have one parser: the CLI, the admin API and the puller agree on
// what `os/arch[/variant]` means and on what a pattern that does not compile says.
import { describe, expect, test } from "bun:test";
import { parsePlatform, platformMatches, platformText } from "../../src/oci/platform.ts";
import { createAdmin } from "../../src/server/admin.ts";
import { createTestRegistry } from "../helpers/registry.ts";

describe("platforms", () => {
  test("os/arch[/variant] parses, and spells back the same", () => {
    for (const text of ["linux/amd64", "linux/arm64/v8", "windows/amd64"]) expect(platformText(parsePlatform(text)!)).toBe(text);
    for (const bad of ["linux", "linux/", "/amd64", "linux/arm/", "linux/arm/v7/x", ""]) expect(parsePlatform(bad)).toBeNull();
  });

  test("a wanted platform without a variant takes any variant; with one, only that one", () => {
    const arm64v8 = { os: "linux", architecture: "arm64", variant: "v8" };
    expect(platformMatches(arm64v8, parsePlatform("linux/arm64")!)).toBe(true);
    expect(platformMatches(arm64v8, parsePlatform("linux/arm64/v8")!)).toBe(true);
    expect(platformMatches({ os: "linux", architecture: "arm64" }, parsePlatform("linux/arm64/v8")!)).toBe(false);
    expect(platformMatches(undefined, parsePlatform("linux/arm64")!)).toBe(false);
  });
});

describe("patterns", () => {
  const TOKEN = "unit-admin-token-0123456789";

  test("the admin API refuses a pattern that does not compile as the CLI does, naming the field", async () => {
    const r = await createTestRegistry();
    const admin = createAdmin({ token: TOKEN, cache: r.cache, store: r.store, archives: null, status: () => ({}) });
    const res = await admin.handle(new Request("http://cache.test/api/v1/prune", {
      method: "POST", headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" }, body: JSON.stringify({ pattern: "(" }),
    }), "prune");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toStartWith("pattern: not a regular expression: ");
  });
});
