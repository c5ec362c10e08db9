// Review of issue 20, pass-through (the store has no room): a range is cut from the upstream
// stream before the digest was checked; two clients asking at once share one stream; a client
// that stops reading holds the upstream body (and its connection slot) for ever.
import { expect, test } from "bun:test";
import { createTestRegistry } from "../helpers/registry.ts";
import { makeImage } from "../helpers/images.ts";

const KB = 1024;

/** A registry whose store has room for nothing: every blob is passed through. */
async function setup(pullTimeoutMs = 5000) {
  const img = makeImage({ content: 300 * KB, uncompressed: true });
  const r = await createTestRegistry({ bounds: { maxSize: { bytes: 10 } }, pullTimeoutMs });
  r.upstream.add("app", "v1", img);
  return { r, img, layer: img.blobs[1]! };
}

/** The body, or null when the response errors before its end. */
async function bodyOf(res: Response): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await res.arrayBuffer());
  } catch {
    return null;
  }
}

test("a range of a passed-through blob is not answered before the blob matched its digest", async () => {
  const { r, layer } = await setup();
  // The upstream sends other bytes of the right length (a hostile or broken upstream).
  const bad = new Uint8Array(layer.bytes.byteLength).fill(0x41);
  r.upstream.intercept = (req) => (req.url.endsWith(`/blobs/${layer.digest}`) ? new Response(bad, { headers: { "Content-Length": String(bad.byteLength) } }) : undefined);
  const res = await r.request(`/v2/app/blobs/${layer.digest}`, { headers: { Range: "bytes=0-99" } });
  const got = await bodyOf(res);
  // Either an error, or the right bytes: never the upstream's wrong bytes as a complete 206.
  expect(res.status === 206 && got !== null && got.byteLength === 100 && got.every((b) => b === 0x41)).toBe(false);
});

test("two clients asking for the same passed-through blob at once each get the whole blob", async () => {
  const { r, layer } = await setup();
  // The upstream answers in many chunks, as a real one does.
  r.upstream.intercept = (req) => {
    if (!req.url.endsWith(`/blobs/${layer.digest}`)) return undefined;
    let at = 0;
    return new Response(new ReadableStream<Uint8Array>({
      pull(c) {
        if (at >= layer.bytes.byteLength) return c.close();
        c.enqueue(layer.bytes.slice(at, at + 16 * KB));
        at += 16 * KB;
      },
    }, { highWaterMark: 0 }), { headers: { "Content-Length": String(layer.bytes.byteLength) } });
  };
  const [a, b] = await Promise.all([r.request(`/v2/app/blobs/${layer.digest}`), r.request(`/v2/app/blobs/${layer.digest}`)]);
  const [ba, bb] = await Promise.all([bodyOf(a), bodyOf(b)]);
  expect(a.status).toBe(200);
  expect(b.status).toBe(200);
  expect(ba).toEqual(layer.bytes);
  expect(bb).toEqual(layer.bytes);
});

test("a client that stops reading a passed-through blob does not hold the upstream body past the idle timeout", async () => {
  const pullTimeoutMs = 200;
  const { r, layer } = await setup(pullTimeoutMs);
  let cancelled = false;
  let sent = 0;
  r.upstream.intercept = (req) => {
    if (!req.url.endsWith(`/blobs/${layer.digest}`)) return undefined;
    return new Response(new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= layer.bytes.byteLength) return c.close();
        c.enqueue(layer.bytes.slice(sent, sent + 16 * KB));
        sent += 16 * KB;
      },
      cancel() {
        cancelled = true;
      },
    }, { highWaterMark: 0 }), { headers: { "Content-Length": String(layer.bytes.byteLength) } });
  };
  const res = await r.request(`/v2/app/blobs/${layer.digest}`);
  expect(res.status).toBe(200);
  // The client reads one chunk, then nothing more (a full TCP window), and keeps the connection.
  const reader = res.body!.getReader();
  await reader.read();
  await Bun.sleep(pullTimeoutMs * 5);
  // A stored download would have read the whole body by now, or cut it; this one waits for the client.
  expect(cancelled || sent >= layer.bytes.byteLength).toBe(true);
  // The stream was ended with an error naming the stall: cancelling it now rejects with that error.
  expect(await reader.read().then(() => "open", (e: Error) => e.message)).toContain("read nothing");
});
