// Reading an upstream body into memory, bounded in size and time: manifests, tag lists,
// referrers, token responses. A tarpit or an endless body ends in an UpstreamError, never in a
// socket held for ever or a process that grows without bound. Bodies are never decoded: every
// request asks for `identity`, and an encoded answer is refused here, so each limit counts the
// bytes actually held (an 841-byte brotli body cannot inflate to a gigabyte).
import { UpstreamError } from "./errors.ts";

export interface BodyLimits {
  /** Most bytes accepted. */
  maxBytes: number;
  /** Longest wait for the next chunk. */
  idleMs: number;
  /** Longest time for the whole body. */
  deadlineMs: number;
}

/** Content-Length of a response, or null when it is absent or not a number. */
export function contentLength(res: Response): number | null {
  const v = res.headers.get("content-length");
  return v !== null && /^\d+$/.test(v) ? Number(v) : null;
}

/** The response's Content-Encoding when it is anything but identity (lower case), else null. */
export function contentEncoding(res: Response): string | null {
  const v = res.headers.get("content-encoding")?.trim().toLowerCase();
  return v && v !== "identity" ? v : null;
}

/**
 * Reads a whole body within `limits`; throws UpstreamError (`protocol` for an encoded body,
 * `too-large` or `timeout`) and cancels the body otherwise.
 */
export async function readBody(res: Response, upstream: string, what: string, limits: BodyLimits): Promise<Uint8Array> {
  const encoding = contentEncoding(res);
  if (encoding) {
    discardBody(res);
    throw new UpstreamError(upstream, "protocol", `${what} came ${JSON.stringify(encoding.slice(0, 40))}-encoded although we asked for identity; encoded bodies are not decoded`);
  }
  const declared = contentLength(res);
  if (declared !== null && declared > limits.maxBytes) {
    discardBody(res);
    throw new UpstreamError(upstream, "too-large", `${what} is ${declared} bytes, more than the ${limits.maxBytes} allowed`);
  }
  if (!res.body) return new Uint8Array();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const deadline = Date.now() + limits.deadlineMs;
  try {
    for (;;) {
      const wait = Math.min(limits.idleMs, deadline - Date.now());
      if (wait <= 0) throw new UpstreamError(upstream, "timeout", `${what} not complete within ${limits.deadlineMs} ms`);
      let timer: Timer | undefined;
      const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), wait)));
      const chunk = await Promise.race([reader.read(), timeout]).finally(() => clearTimeout(timer));
      if (chunk === "timeout") {
        throw new UpstreamError(upstream, "timeout", Date.now() >= deadline
          ? `${what} not complete within ${limits.deadlineMs} ms`
          : `no data for ${what} within ${limits.idleMs} ms`);
      }
      if (chunk.done) break;
      size += chunk.value.byteLength;
      if (size > limits.maxBytes) throw new UpstreamError(upstream, "too-large", `${what} is more than the ${limits.maxBytes} bytes allowed`);
      chunks.push(chunk.value);
    }
  } catch (err) {
    reader.cancel().catch(() => {});
    if (err instanceof UpstreamError) throw err;
    throw new UpstreamError(upstream, "unreachable", `${what} broke off: ${(err as Error).message}`);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/** Drops a body we do not need, without waiting on an upstream that never finishes it. */
export function discardBody(res: Response): void {
  res.body?.cancel().catch(() => {});
}
