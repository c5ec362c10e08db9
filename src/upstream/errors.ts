// Failures talking to an upstream, classified so the cache can answer clients correctly.

export type UpstreamFailure =
  /** Could not connect, TLS failed, or the connection broke. */
  | "unreachable"
  /** No response within the pull timeout. */
  | "timeout"
  /** The upstream refused our credentials or certificate. */
  | "denied"
  /** The upstream answered with something a registry should not. */
  | "protocol";

export class UpstreamError extends Error {
  constructor(
    readonly upstream: string,
    readonly failure: UpstreamFailure,
    message: string,
    /** HTTP status the upstream sent, when it sent one. */
    readonly status?: number,
  ) {
    super(`upstream ${upstream}: ${message}`);
    this.name = "UpstreamError";
  }
}
