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

export class SharedBytes {
  /** Contiguous, oldest first; the last one ends where the bytes written so far end. */
  private chunks: Piece[] = [];
  private chunkBytes = 0;
  /** Block index → its bytes read back (a block at the end may be partial), oldest first. */
  private blocks = new Map<number, Promise<Piece>>();
  private blockBytes = new Map<number, number>();

  constructor(
    private readonly readAt: (position: number, into: Uint8Array) => Promise<number>,
    private readonly budget: MemoryBudget = processBudget,
  ) {}

  /** A chunk just written at `start` (chunks come in order, without gaps); `oldest` is the position of the reader furthest behind. */
  add(start: number, bytes: Uint8Array, oldest: number) {
    if (oldest >= start + bytes.byteLength || !this.budget.take(bytes.byteLength)) {
      // Nobody is behind it (a reader at the front took it already), or no memory is left: keep
      // nothing of the front, so what is kept stays one contiguous run ending at the front.
      this.dropChunks(Infinity);
      return;
    }
    this.chunks.push({ start, bytes });
    this.chunkBytes += bytes.byteLength;
    this.trim(oldest);
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
        if (pos < c.start + c.bytes.byteLength) return c.bytes.subarray(pos - c.start, Math.min(c.bytes.byteLength, end - c.start));
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
      if (c.start + c.bytes.byteLength > before && this.chunkBytes <= MAX_CHUNK_BYTES) break;
      this.chunks.shift();
      this.chunkBytes -= c.bytes.byteLength;
      this.budget.give(c.bytes.byteLength);
    }
  }

  private dropBlock(index: number) {
    this.blocks.delete(index);
    this.budget.give(this.blockBytes.get(index) ?? 0);
    this.blockBytes.delete(index);
  }
}
