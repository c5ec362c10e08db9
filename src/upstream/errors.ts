// Failures talking to an upstream, classified so the cache can answer clients correctly.

export type UpstreamFailure =
  /** Could not connect, TLS failed, or the connection broke. */
  | "unreachable"
  /** No response within the pull timeout. */
  | "timeout"
  /** The upstream refused our credentials or certificate. */
  | "denied"
  /** The upstream answered with something a registry should not. */
  | "protocol"
  /** A body was larger than the cache accepts for its kind. */
  | "too-large"
  /** The upstream pointed us somewhere we do not go: another scheme, a downgrade, an internal address. */
  | "policy"
  /** This upstream already has as many requests open as it may; none freed up in time. */
  | "busy"
  /** The upstream answered 429: it is not asked again before `retryAfterMs`. */
  | "rate-limited";

export class UpstreamError extends Error {
  constructor(
    readonly upstream: string,
    readonly failure: UpstreamFailure,
    /** What happened, without the `upstream <name>:` the message starts with (to restate it under another name). */
    readonly detail: string,
    /** HTTP status the upstream sent, when it sent one. */
    readonly status?: number,
    /** For "rate-limited": how long until the upstream may be asked again. */
    readonly retryAfterMs?: number,
  ) {
    super(`upstream ${upstream}: ${detail}`);
    this.name = "UpstreamError";
  }
}
