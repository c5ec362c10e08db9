// Manifest media types the cache understands, and detection of a manifest's type from its bytes.

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";
export const DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws";
export const DOCKER_SCHEMA1_UNSIGNED = "application/vnd.docker.distribution.manifest.v1+json";

export const MANIFEST_TYPES = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST] as const;
export const INDEX_TYPES = new Set<string>([OCI_INDEX, DOCKER_MANIFEST_LIST]);

/** Largest manifest the spec lets a registry accept. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** `application/<name>+json`, the form every OCI artifact manifest type takes. */
const JSON_MEDIA_TYPE_RE = /^application\/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}\+json$/;

/**
 * Whether a media type may be served as a manifest's Content-Type: a known manifest or index
 * type, or a well-formed `application/*+json` type. Anything else (text/html, control
 * characters) would let an upstream choose how a browser treats the cache's own origin.
 */
export function isServableManifestType(mediaType: string): boolean {
  return (MANIFEST_TYPES as readonly string[]).includes(mediaType) || JSON_MEDIA_TYPE_RE.test(mediaType);
}

export function isSchema1(mediaType: string): boolean {
  return mediaType === DOCKER_SCHEMA1 || mediaType === DOCKER_SCHEMA1_UNSIGNED;
}

/** Drops parameters (`; charset=utf-8`) and case from a Content-Type. */
export function bareMediaType(contentType: string | null | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

export interface ManifestShape {
  mediaType?: string;
  schemaVersion?: number;
  manifests?: Array<{ digest: string; size: number; mediaType?: string; platform?: Platform }>;
  config?: { digest: string; size: number; mediaType?: string };
  layers?: Array<{ digest: string; size: number; mediaType?: string }>;
  subject?: { digest: string };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Parses manifest bytes as JSON; returns null when they are not a JSON object. */
export function parseManifest(bytes: Uint8Array): ManifestShape | null {
  try {
    const value: unknown = JSON.parse(new TextDecoder().decode(bytes));
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as ManifestShape) : null;
  } catch {
    return null;
  }
}

/**
 * The media type of a manifest from its own bytes: its `mediaType` field, or for OCI documents
 * that omit it, index when it lists manifests and image manifest when it has a config.
 */
export function detectMediaType(manifest: ManifestShape): string | null {
  if (typeof manifest.mediaType === "string" && manifest.mediaType) return manifest.mediaType;
  if (manifest.schemaVersion === 1) return DOCKER_SCHEMA1;
  if (Array.isArray(manifest.manifests)) return OCI_INDEX;
  if (manifest.config && typeof manifest.config === "object") return OCI_MANIFEST;
  return null;
}
