/**
 * Fan-out: several streams of the same bytes read them once. A group holds one cursor and a
 * window of the chunks it read; each subscriber is a Readable of its own (its own backpressure)
 * that takes chunks from the window, and a chunk is dropped once every subscriber took it.
 * The cursor reads when a subscriber waits for the next chunk; when the window is full the
 * subscribers holding its oldest chunk are detached: each continues on a cursor of its own
 * from its offset (resumed with the cursor's state there, e.g. the CRC so far), so a slow
 * client never stalls the others and memory stays at most `windowChunks` chunks per group.
 * A subscriber may join while the window still holds byte 0 (it keeps the first chunks until it
 * is full, for clients that connect a moment later); later ones start a new group.
 */
import { Readable } from "node:stream";

/** Reads chunks in order; an error (read error, CRC mismatch) instead of the last chunk ends it badly. */
export interface Cursor<M> {
  /** The next chunk, or null at the end. */
  next(cb: (err: Error | null, chunk: Buffer | null) => void): void;
  /** Its state after the chunks read so far (what a cursor resumed there needs). */
  mark(): M;
  close(): void;
}

/** Where a cursor resumes: the byte offset and the state there. */
export interface ResumeAt<M> {
  offset: number;
  mark: M;
}

/** A cursor from the start (null) or from a point another cursor reached. */
export type OpenCursor<M> = (from: ResumeAt<M> | null) => Cursor<M>;

/** A Readable over a cursor of its own: one read in flight, read ahead up to its highWaterMark. */
export class CursorReader<M> extends Readable {
  constructor(
    private readonly cursor: Cursor<M>,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }

  override _read(): void {
    pull(this, this.cursor);
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.cursor.close();
    cb(err);
  }
}

function pull<M>(r: Readable, cursor: Cursor<M>): void {
  cursor.next((err, chunk) => {
    if (r.destroyed) return;
    if (err) return void r.destroy(err);
    r.push(chunk);
  });
}

interface Held<M> {
  chunk: Buffer;
  /** The cursor's state after this chunk. */
  after: ResumeAt<M>;
}

class Subscriber<M> extends Readable {
  /** Index (in the group's chunks) of the next chunk to take. */
  at = 0;
  waiting = false;
  /** Set once detached: its own cursor. */
  own: Cursor<M> | null = null;

  constructor(
    private readonly group: Group<M>,
    highWaterMark: number,
  ) {
    super({ highWaterMark });
  }

  override _read(): void {
    if (this.own) return pull(this, this.own);
    this.waiting = true;
    this.group.pump();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    this.own?.close();
    this.group.leave(this);
    cb(err);
  }
}

class Group<M> {
  readonly subs = new Set<Subscriber<M>>();
  /** Index of window[0]. */
  lo = 0;
  readonly window: Held<M>[] = [];
  /** Offset and state before window[0]. */
  base: ResumeAt<M>;
  reading = false;
  ended = false;
  closed = false;
  detached = 0;
  /** pump() re-entered (a push can call _read synchronously): run it again when the outer one ends. */
  private pumping = false;
  private again = false;

  constructor(
    private readonly cursor: Cursor<M>,
    private readonly open: OpenCursor<M>,
    private readonly windowChunks: number,
    private readonly onEmpty: () => void,
  ) {
    this.base = { offset: 0, mark: cursor.mark() };
  }

  get hi(): number {
    return this.lo + this.window.length;
  }

  /** Joinable while nothing was dropped: a new subscriber starts at byte 0. */
  get joinable(): boolean {
    return !this.closed && this.lo === 0;
  }

  pump(): void {
    if (this.pumping) return void (this.again = true);
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.step();
      } while (this.again && !this.closed);
    } finally {
      this.pumping = false;
    }
  }

  private step(): void {
    if (this.closed) return;
    for (const s of this.subs) {
      while (s.waiting && s.at < this.hi) {
        const { chunk } = this.window[s.at++ - this.lo]!;
        s.waiting = s.push(chunk);
      }
      if (s.waiting && this.ended) {
        s.waiting = false;
        s.push(null);
      }
    }
    this.drop();
    if (this.reading || this.ended || ![...this.subs].some((s) => s.waiting)) return;
    if (this.window.length >= this.windowChunks) {
      // The oldest chunk's holders are a window behind a subscriber that waits: they go on alone.
      for (const s of this.subs) if (s.at === this.lo) this.detach(s);
      this.drop();
    }
    this.reading = true;
    this.cursor.next((err, chunk) => {
      this.reading = false;
      if (this.closed) return;
      if (err) {
        // A mismatch or read error ends every subscriber's stream: none gets the last chunk.
        const subs = [...this.subs];
        this.close();
        for (const s of subs) s.destroy(err);
        return;
      }
      const at = this.window.at(-1)?.after.offset ?? this.base.offset;
      if (chunk) this.window.push({ chunk, after: { offset: at + chunk.length, mark: this.cursor.mark() } });
      else this.ended = true;
      this.pump();
    });
  }

  /** `s` holds the oldest chunk: it resumes where the window starts. */
  private detach(s: Subscriber<M>): void {
    this.subs.delete(s);
    this.detached++;
    s.own = this.open(this.base);
    if (s.waiting) {
      s.waiting = false;
      s._read();
    }
  }

  /** Drops the chunks every subscriber took; the first ones only once the window is full, so streams that start a little later still join. */
  private drop(): void {
    if (this.lo === 0 && this.window.length < this.windowChunks) return;
    let min = this.hi;
    for (const s of this.subs) min = Math.min(min, s.at);
    while (this.lo < min) {
      this.base = this.window.shift()!.after;
      this.lo++;
    }
  }

  leave(s: Subscriber<M>): void {
    if (!this.subs.delete(s)) return;
    if (this.subs.size === 0) this.close();
    else this.pump();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.window.length = 0;
    this.cursor.close();
    this.onEmpty();
  }
}

export interface SharedReadsOptions {
  /** Chunks a group holds at most (its memory bound and the lag it allows between subscribers). */
  windowChunks: number;
}

/** The groups in flight, by key (what identifies the bytes: the same key, the same bytes). */
export class SharedReads {
  private readonly groups = new Map<string, Group<unknown>>();

  constructor(private readonly opts: SharedReadsOptions) {}

  /** A stream of the bytes under `key`: joins the group reading them, or starts one with `open(null)`; `highWaterMark`: its read-ahead in bytes. */
  open<M>(key: string, open: OpenCursor<M>, highWaterMark: number): Readable {
    let g = this.groups.get(key) as Group<M> | undefined;
    if (!g?.joinable) {
      const group: Group<M> = new Group(open(null), open, this.opts.windowChunks, () => {
        if (this.groups.get(key) === group) this.groups.delete(key);
      });
      this.groups.set(key, group as Group<unknown>);
      g = group;
    }
    const s = new Subscriber<M>(g, highWaterMark);
    g.subs.add(s);
    return s;
  }

  /** The group under `key`, if one is in flight: its subscribers, the chunks it holds, how many left it for a reader of their own. */
  stats(key: string): { subscribers: number; windowChunks: number; detached: number } | null {
    const g = this.groups.get(key);
    return g ? { subscribers: g.subs.size, windowChunks: g.window.length, detached: g.detached } : null;
  }
}
