// Raw HTTP over a TCP socket: for request lines fetch() would normalize (backslashes, dot
// segments) and for floods of requests that must not queue in the test process's own fetch pool.

export interface RawConnection {
  /** Everything received so far. */
  received(): string;
  /** Resolves when the server closed the connection. */
  closed: Promise<void>;
  close(): void;
}

/** Opens a connection and writes `request` exactly as given. */
export async function rawOpen(hostname: string, port: number, request: string): Promise<RawConnection> {
  let text = "";
  let done!: () => void;
  const closed = new Promise<void>((r) => (done = r));
  const socket = await Bun.connect({
    hostname, port,
    socket: {
      data(_s, chunk) {
        text += new TextDecoder().decode(chunk);
      },
      close() {
        done();
      },
      error() {
        done();
      },
    },
  });
  socket.write(request);
  socket.flush();
  return { received: () => text, closed, close: () => socket.end() };
}

/** Sends one request with `Connection: close` and returns the whole response (or what came within timeoutMs). */
export async function rawRequest(hostname: string, port: number, requestLine: string, timeoutMs = 10_000): Promise<string> {
  const c = await rawOpen(hostname, port, `${requestLine}\r\nHost: ${hostname}:${port}\r\nConnection: close\r\n\r\n`);
  await Promise.race([c.closed, Bun.sleep(timeoutMs)]);
  c.close();
  return c.received();
}
