// Platforms as users write them (`os/arch[/variant]`, e.g. linux/arm64/v8) and as image indexes
// name them: the one parser, the one spelling back, the one match rule, and this host's.
import type { Platform } from "./mediatypes.ts";

/** Parses `os/arch[/variant]`; null when malformed. */
export function parsePlatform(text: string): Platform | null {
  const [os, architecture, variant, extra] = text.split("/");
  if (!os || !architecture || extra !== undefined || variant === "") return null;
  return { os, architecture, ...(variant ? { variant } : {}) };
}

/** `os/arch[/variant]` of a platform. */
export const platformText = (p: Platform): string => [p.os, p.architecture, p.variant].filter(Boolean).join("/");

/** Whether an index entry's platform is the one wanted; a wanted platform without a variant takes any. */
export function platformMatches(p: Platform | undefined, wanted: Platform): boolean {
  return !!p && p.os === wanted.os && p.architecture === wanted.architecture && (!wanted.variant || p.variant === wanted.variant);
}

/** The platform this process runs on, as image indexes name it. */
export function hostPlatform(): Platform {
  const arch: Record<string, string> = { x64: "amd64", arm64: "arm64", arm: "arm", ia32: "386", ppc64: "ppc64le", s390x: "s390x" };
  return { os: "linux", architecture: arch[process.arch] ?? process.arch, ...(process.arch === "arm" ? { variant: "v7" } : {}) };
}
