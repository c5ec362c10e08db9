// The bytes of one download that its readers share in memory, so that N readers cost one read of
// the file, not N: the newest chunks from the upstream (a reader at the front gets them as they
// arrive, never read back) and blocks read back from the file for readers further behind. Bounded
// per download and process-wide: what no reader still needs is dropped, and past a cap a reader
// reads the file for itself (the bytes only it needs are held only by its own response).

/** Bytes one read of the file brings back, and the largest piece a reader gets at once. */
export const BLOCK = 1024 * 1024;
/** The newest upstream chunks kept for readers behind the front, per download. */
const MAX_CHUNK_BYTES = 4 * BLOCK;
/** Blocks read back and kept for the next reader, per download. */
const MAX_BLOCKS = 4;

/** Memory every download's shared bytes draw from together (a process-wide cap). */
export class MemoryBudget {
  used = 0;
  constructor(readonly limit: number) {}
  take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    return true;
  }
  give(bytes: number) {
    this.used -= bytes;
  }
}

/** Shared by every download of the process unless a caller passes its own. */
export const processBudget = new MemoryBudget(32 * BLOCK);

interface Piece {
  start: number;
  bytes: Uint8Array;
}

/** Bytes at the front: an upstream chunk as it came, or a block chunks are gathered into. */
interface Front {
  start: number;
  /** The chunk, or the block's whole buffer. */
  buffer: Uint8Array;
  /** How much of the buffer holds bytes (a block fills as chunks arrive). */
  length: number;
  /** Memory it takes from the budget. */
  held: number;
  /** A block that takes the next chunks while it has room. */
  gathering: boolean;
}

export class SharedBytes {
  /** Contiguous, oldest first; the last one ends where the bytes written so far end. */
  private chunks: Front[] = [];
  /** Memory the front holds (a block counts whole from its first byte). */
  private chunkBytes = 0;
  /** Block index → its bytes read back (a block at the end may be partial), oldest first. */
  private blocks = new Map<number, Promise<Piece>>();
  private blockBytes = new Map<number, number>();

  constructor(
    private readonly readAt: (position: number, into: Uint8Array) => Promise<number>,
    private readonly budget: MemoryBudget = processBudget,
  ) {}

  /**
   * A chunk just written at `start` (chunks come in order, without gaps); `oldest` is the position
   * of the reader furthest behind, `readers` how many read. One reader gets each chunk as it came;
   * several get the chunks gathered into blocks (one copy for all), so that each pull hands a
   * reader everything that arrived since its last, not one small chunk: every piece costs each
   * reader a write to its socket.
   */
  add(start: number, bytes: Uint8Array, oldest: number, readers: number) {
    const last = this.chunks.at(-1);
    let rest = bytes;
    if (last?.gathering) {
      const n = Math.min(rest.byteLength, last.buffer.byteLength - last.length);
      last.buffer.set(rest.subarray(0, n), last.length);
      last.length += n;
      last.gathering = last.length < last.buffer.byteLength;
      rest = rest.subarray(n);
    }
    if (rest.byteLength > 0) {
      const at = start + bytes.byteLength - rest.byteLength;
      // A chunk of a block or more is big enough as it is.
      const gather = readers > 1 && rest.byteLength < BLOCK;
      const held = gather ? BLOCK : rest.byteLength;
      if (oldest >= at + rest.byteLength || !this.budget.take(held)) {
        // Nobody is behind it (a reader at the front took it already), or no memory is left: keep
        // nothing of the front, so what is kept stays one contiguous run ending at the front.
        this.dropChunks(Infinity);
        return;
      }
      let buffer = rest;
      if (gather) {
        buffer = Buffer.allocUnsafeSlow(BLOCK);
        buffer.set(rest);
      }
      this.chunks.push({ start: at, buffer, length: rest.byteLength, held, gathering: gather });
      this.chunkBytes += held;
    }
    this.trim(oldest);
  }

  /** Whether the front is a block still being filled (readers at the front may wait for more). */
  get gathering(): boolean {
    return this.chunks.at(-1)?.gathering ?? false;
  }

  /** Drops what every reader has passed, and the oldest past the caps. */
  trim(oldest: number) {
    this.dropChunks(oldest);
    for (const index of this.blocks.keys()) {
      if ((index + 1) * BLOCK > oldest && this.blocks.size <= MAX_BLOCKS) break;
      this.dropBlock(index);
    }
  }

  /** Frees everything (the download and its readers are done). */
  clear() {
    this.dropChunks(Infinity);
    for (const index of [...this.blocks.keys()]) this.dropBlock(index);
  }

  /**
   * Bytes from `pos`, at least one and at most up to `end` (exclusive), of the `available` bytes
   * written so far (`end` ≤ `available`): a view of shared memory where it can, else a read.
   */
  async get(pos: number, end: number, available: number): Promise<Uint8Array> {
    const first = this.chunks[0];
    if (first && pos >= first.start) {
      for (let i = this.chunks.length - 1; i >= 0; i--) {
        const c = this.chunks[i]!;
        if (pos < c.start) continue;
        // A chunk the writer counted but the download has not handed over yet is read from the file.
        if (pos < c.start + c.length) return c.buffer.subarray(pos - c.start, Math.min(c.length, end - c.start));
        break;
      }
    }
    const index = Math.floor(pos / BLOCK);
    const blockStart = index * BLOCK;
    const cached = this.blocks.get(index);
    let piece = cached ? await cached.catch(() => null) : null;
    if (!piece || pos >= piece.start + piece.bytes.byteLength) {
      const length = Math.min(BLOCK, available - blockStart);
      const read = this.readBlock(blockStart, length);
      // Kept for the readers right behind this one, when there is room.
      if (this.blocks.get(index) === cached) {
        if (cached) this.dropBlock(index);
        if (this.budget.take(length)) {
          this.blocks.set(index, read);
          this.blockBytes.set(index, length);
          read.catch(() => this.blocks.get(index) === read && this.dropBlock(index));
          if (this.blocks.size > MAX_BLOCKS) this.dropBlock(this.blocks.keys().next().value!);
        }
      }
      piece = await read;
    }
    return piece.bytes.subarray(pos - piece.start, Math.min(piece.bytes.byteLength, end - piece.start));
  }

  private async readBlock(start: number, length: number): Promise<Piece> {
    // Not zero-filled: every byte handed out is one the read filled.
    const into = Buffer.allocUnsafeSlow(length);
    let n = 0;
    while (n < length) {
      const got = await this.readAt(start + n, into.subarray(n));
      if (got <= 0) break;
      n += got;
    }
    if (n === 0) throw new Error(`read at ${start} returned nothing`);
    return { start, bytes: into.subarray(0, n) };
  }

  private dropChunks(before: number) {
    while (this.chunks.length) {
      const c = this.chunks[0]!;
      // A block still gathering stays while readers are on it (they are at its end, waiting).
      const needed = c.start + c.length > before || (c.gathering && before !== Infinity);
      if (needed && this.chunkBytes <= MAX_CHUNK_BYTES) break;
      this.chunks.shift();
      this.chunkBytes -= c.held;
      this.budget.give(c.held);
    }
  }

  private dropBlock(index: number) {
    this.blocks.delete(index);
    this.budget.give(this.blockBytes.get(index) ?? 0);
    this.blockBytes.delete(index);
  }
}
