// What the pull-through policy modules share: the store, the upstream client, settings, clock,
// the tag records, and the in-memory views that keep the hot path off the disk.
import type { BoundedMap } from "../lib/bounded-map.ts";
import type { Target } from "../oci/reference.ts";
import type { Store } from "../store/types.ts";
import type { Upstreams } from "../upstream/client.ts";
import type { ByteBudget } from "./bounded.ts";
import type { Quota } from "./quota.ts";
import type { TransferRate } from "./download.ts";
import type { ManifestMemory } from "./memory.ts";
import type { TagBook } from "./records.ts";
import type { FlightLeases } from "./flight-leases.ts";

export interface CacheLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

/** How one request's content was served: from the store or memory, fetched, from the store because
 * revalidation failed, sent on without being stored (the store is full), or from the archives. */
export type CacheStatus = "hit" | "miss" | "stale" | "passthrough" | "archive";

/** Filled in by the cache while it serves one request (the access log's `cache` field). */
export interface Served {
  cache?: CacheStatus;
}

/** What the cache reports for metrics; every hook is optional and must be cheap. */
export interface CacheObserver {
  /** Served from memory or the store. */
  hit?(kind: "manifest" | "blob"): void;
  /** Had to ask an upstream (or join a download that did). */
  miss?(kind: "manifest" | "blob"): void;
  downloadStarted?(): void;
  downloadEnded?(bytes: number, ok: boolean): void;
  /** A client joined a download another client started. */
  joined?(): void;
}

/**
 * Content the cache serves before its store and upstreams (a directory of `.oci` archives). Both
 * calls answer null when the source does not hold the content, and never throw for a damaged file.
 */
export interface ArchiveSource {
  manifest(target: Target, reference: string): Promise<{ bytes: Uint8Array; mediaType: string; digest: string } | null>;
  blob(target: Target, digest: string): Promise<{ size: number; file: Blob } | null>;
}

export interface CacheOptions {
  store: Store;
  upstreams: Upstreams;
  /** Never contact an upstream. */
  airGapped: boolean;
  /** A cached tag is checked against its upstream when it was last checked longer ago than this. */
  revalidateAfterMs: number;
  /** Longest wait for upstream data (headers, or the next chunk of a body). */
  pullTimeoutMs: number;
  /** Bytes of manifests kept in memory. */
  manifestMemoryBytes?: number;
  /** Per-tag freshness: first rule whose pattern matches `<upstream>/<repository>:<tag>` wins. */
  tagPolicies?: Array<{ match: RegExp; revalidateAfterMs: number }>;
  log: CacheLogger;
  now?: () => number;
  observe?: CacheObserver;
  /** Consulted first for every manifest and blob a client asks for. */
  archives?: ArchiveSource;
  /** A blob download slower than this is cut, so a drip cannot hold an upstream slot for ever. */
  minTransferRate?: TransferRate;
  /** Replicas on a shared store reach each other here: one upstream fetch per blob among them (flight-leases.ts). */
  peers?: PeerLink;
  /** Local directory for the spool of blobs relayed from another replica (default: the system's temp directory). */
  relayDir?: string;
}

/** How a replica reaches the others' internal endpoint (the server implements it; tests fake it). */
export interface PeerLink {
  /** This replica's internal address, as the others reach it (written in its download leases). */
  self(): string;
  /** The owner's bytes [start, end] of a blob it downloads or stored; rejects when it cannot be reached. */
  open(url: string, upstream: string, digest: string, start: number, end: number | null): Promise<Response>;
}

export interface CacheContext extends Required<Omit<CacheOptions, "manifestMemoryBytes" | "archives" | "minTransferRate" | "peers" | "relayDir">> {
  minTransferRate?: TransferRate;
  peers?: PeerLink;
  relayDir?: string;
  /** Download leases among replicas (a shared store with peers): who fetches a cold blob. */
  leases?: FlightLeases;
  /** Sizes that an upstream's manifests declare for the blobs they reference, by `upstream digest`. */
  declaredSizes: BoundedMap<string, number>;
  memory: ManifestMemory;
  records: TagBook;
  /**
   * Bytes of large manifests (and referrers indexes) being read and parsed at once: one budget for
   * the upstreams the operator listed, one for those clients name, so a hostile upstream's large
   * manifests never queue ahead of a listed upstream's.
   */
  manifestBudget(upstream: string): ByteBudget;
  /** The store's bounds: what may be stored, eviction, pass-through. */
  quota: Quota;
  /** Blobs of images passed through whole (the store could not hold them), by `upstream digest`: passed through too. */
  passingThrough: BoundedMap<string, true>;
}
