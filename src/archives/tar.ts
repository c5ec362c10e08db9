// The table of contents of a tar file, from its 512-byte headers alone (ustar with its name
// prefix, pax extended headers, GNU long names): the offset and size of every regular file. The
// file is read through a small window at header positions only, so a 5 GiB archive is indexed by
// reading a few KiB, and a hostile one cannot make it read more than its own size or loop.
import { open, type FileHandle } from "node:fs/promises";

export interface TarEntry {
  /** As written, less a leading `./` or `/`. */
  name: string;
  /** Where the entry's bytes start in the file. */
  offset: number;
  size: number;
}

/** A file that is not a readable tar: the message says what is wrong and where. */
export class TarError extends Error {
  override name = "TarError";
}

export interface TarLimits {
  /** Headers read at most (directories and metadata included). */
  maxEntries: number;
  /** Largest pax extended header or GNU long name read into memory. */
  maxMetaBytes: number;
}

export const DEFAULT_TAR_LIMITS: TarLimits = { maxEntries: 100_000, maxMetaBytes: 1024 * 1024 };

const BLOCK = 512;
const WINDOW = 64 * 1024;
const decoder = new TextDecoder();

/** Reads through a fixed window: consecutive headers of small entries cost one read. */
class Window {
  private buf = new Uint8Array(WINDOW);
  private start = 0;
  private end = 0;
  constructor(private readonly fh: FileHandle, readonly size: number) {}

  /** `len` bytes at `pos`; a TarError when the file ends first. */
  async bytes(pos: number, len: number): Promise<Uint8Array> {
    if (pos + len > this.size) throw new TarError(`truncated: ${len} bytes needed at offset ${pos}, the file has ${this.size}`);
    if (len > WINDOW) {
      const out = new Uint8Array(len);
      await this.fill(out, pos);
      return out;
    }
    if (pos < this.start || pos + len > this.end) {
      this.start = pos;
      this.end = pos + (await this.fill(this.buf.subarray(0, Math.min(WINDOW, this.size - pos)), pos));
      if (pos + len > this.end) throw new TarError(`truncated: the file ended at offset ${this.end} while being read`);
    }
    return this.buf.subarray(pos - this.start, pos - this.start + len);
  }

  private async fill(into: Uint8Array, pos: number): Promise<number> {
    let got = 0;
    while (got < into.byteLength) {
      const { bytesRead } = await this.fh.read(into, got, into.byteLength - got, pos + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }
}

function cString(b: Uint8Array, off: number, len: number): string {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return decoder.decode(nul < 0 ? field : field.subarray(0, nul));
}

/** An octal field, or GNU's base-256 form (high bit set) for sizes of 8 GiB and more. */
function numeric(b: Uint8Array, off: number, len: number, what: string, at: number): number {
  if (b[off]! & 0x80) {
    let n = b[off]! & 0x7f;
    for (let i = 1; i < len; i++) n = n * 256 + b[off + i]!;
    if (!Number.isSafeInteger(n)) throw new TarError(`header at offset ${at}: ${what} is too large`);
    return n;
  }
  const text = cString(b, off, len).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`header at offset ${at}: ${what} ${JSON.stringify(text)} is not an octal number`);
  return parseInt(text, 8);
}

function checksumOk(h: Uint8Array, at: number): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 32 : h[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  const stored = numeric(h, 148, 8, "checksum", at);
  return stored === unsigned || stored === signed;
}

/** `path` and `size` from pax records (`<len> <key>=<value>\n`); malformed records are an error. */
function paxRecords(data: Uint8Array, at: number): { path?: string; size?: number } {
  const out: { path?: string; size?: number } = {};
  let i = 0;
  while (i < data.byteLength) {
    if (data[i] === 0) break;
    const space = data.indexOf(0x20, i);
    const len = space < 0 ? NaN : Number(decoder.decode(data.subarray(i, space)));
    if (!Number.isSafeInteger(len) || len <= space - i || i + len > data.byteLength) throw new TarError(`pax header at offset ${at} is malformed`);
    const record = decoder.decode(data.subarray(space + 1, i + len - 1));
    const eq = record.indexOf("=");
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === "path") out.path = value;
    if (key === "size") {
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value))) throw new TarError(`pax header at offset ${at}: size ${JSON.stringify(value.slice(0, 30))} is not a number`);
      out.size = Number(value);
    }
    i += len;
  }
  return out;
}

function cleanName(name: string): string {
  let n = name;
  while (n.startsWith("./")) n = n.slice(2);
  return n.replace(/^\/+/, "");
}

/**
 * Every regular file in the tar at `path`, in file order (a later entry of the same name wins
 * where it matters, as when tar extracts). Throws TarError for a damaged, truncated or
 * oversized archive; reads at most `maxEntries` headers and `maxMetaBytes` per metadata entry.
 */
export async function indexTar(path: string, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<TarEntry[]> {
  const fh = await open(path, "r");
  try {
    return await indexOpen(fh, (await fh.stat()).size, limits);
  } finally {
    await fh.close();
  }
}

/** As indexTar, over an open file of `size` bytes. */
export async function indexOpen(fh: FileHandle, size: number, limits: TarLimits = DEFAULT_TAR_LIMITS): Promise<TarEntry[]> {
  const win = new Window(fh, size);
  const entries: TarEntry[] = [];
  let pos = 0;
  let headers = 0;
  let longName: string | undefined;
  let pax: { path?: string; size?: number } = {};
  for (;;) {
    if (pos + BLOCK > size) throw new TarError(`truncated: the archive ends at offset ${size} without its end marker`);
    const h = await win.bytes(pos, BLOCK);
    if (h.every((b) => b === 0)) return entries;
    if (++headers > limits.maxEntries) throw new TarError(`more than ${limits.maxEntries} entries`);
    if (!checksumOk(h, pos)) throw new TarError(`not a tar header at offset ${pos} (bad checksum)`);
    const type = String.fromCharCode(h[156]!);
    const magic = cString(h, 257, 6);
    const gnu = magic === "ustar" && h[262] === 0x20;
    let name = cString(h, 0, 100);
    const prefix = magic === "ustar" && !gnu ? cString(h, 345, 155) : "";
    if (prefix) name = `${prefix}/${name}`;
    const meta = type === "x" || type === "L" || type === "K" || type === "g";
    const headerSize = numeric(h, 124, 12, "size", pos);
    const entrySize = meta ? headerSize : pax.size ?? headerSize;
    const offset = pos + BLOCK;
    if (offset + entrySize > size) throw new TarError(`truncated: entry ${JSON.stringify(name.slice(0, 200))} at offset ${pos} needs ${entrySize} bytes, the file ends first`);
    const next = offset + Math.ceil(entrySize / BLOCK) * BLOCK;
    if (meta) {
      if (entrySize > limits.maxMetaBytes) throw new TarError(`metadata entry at offset ${pos} is larger than ${limits.maxMetaBytes} bytes`);
      const data = await win.bytes(offset, entrySize);
      if (type === "x") pax = paxRecords(data, pos);
      else if (type === "L") longName = cString(data, 0, data.byteLength);
      // K (a long link target) and g (global pax records) name nothing we index.
    } else {
      if (type === "0" || type === "\0" || type === "7") {
        entries.push({ name: cleanName(pax.path ?? longName ?? name), offset, size: entrySize });
      }
      longName = undefined;
      pax = {};
    }
    pos = next;
  }
}
