/**
 * CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF): the
 * algorithm of Amanda 3.4+'s native/client/server CRCs (common-src/amcrc32chw.c), not
 * zlib's CRC-32. Node has no CRC-32C: @node-rs/crc32 (SSE4.2, several GB/s) does it when its
 * prebuilt binary loads; otherwise slicing-by-8 tables over 32-bit words in plain JS (~0.8 GB/s).
 */
import { createRequire } from "node:module";

type NativeCrc = (input: Buffer, initial?: number) => number;
const native: NativeCrc | null = (() => {
  try {
    return (createRequire(import.meta.url)("@node-rs/crc32") as { crc32c: NativeCrc }).crc32c;
  } catch {
    return null;
  }
})();

const T = (() => {
  const t = new Int32Array(8 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let i = 0; i < 256; i++) {
    for (let s = 1; s < 8; s++) {
      const p = t[(s - 1) * 256 + i]!;
      t[s * 256 + i] = (p >>> 8) ^ t[p & 0xff]!;
    }
  }
  return t;
})();

// One table per slice: indexing separate arrays is cheaper than offset arithmetic.
const [T0, T1, T2, T3, T4, T5, T6, T7] = Array.from({ length: 8 }, (_, s) => T.subarray(s * 256, (s + 1) * 256)) as [
  Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array, Int32Array,
];

/** A running CRC-32C over a byte stream, with the byte count Amanda records beside it. */
export class Crc32c {
  private c = 0xffffffff | 0;
  bytes = 0;

  update(b: Uint8Array): this {
    if (native) {
      // The binding continues from a finished value; ours keeps the register un-inverted.
      this.c = ~native(Buffer.from(b.buffer, b.byteOffset, b.length), ~this.c >>> 0);
      this.bytes += b.length;
      return this;
    }
    return this.updateJs(b);
  }

  /** The portable path (also what the tests compare the binding against). */
  updateJs(b: Uint8Array): this {
    let c = this.c;
    let i = 0;
    const n = b.length;
    // Head bytes up to 4-byte alignment, then two little-endian 32-bit words per step.
    while (i < n && (b.byteOffset + i) & 3) c = (c >>> 8) ^ T0[(c ^ b[i++]!) & 0xff]!;
    const words = (n - i) >>> 3;
    if (words > 0) {
      const w = new Int32Array(b.buffer, b.byteOffset + i, words * 2);
      for (let j = 0; j < w.length; j += 2) {
        c ^= w[j]!;
        const hi = w[j + 1]!;
        c =
          T7[c & 0xff]! ^
          T6[(c >>> 8) & 0xff]! ^
          T5[(c >>> 16) & 0xff]! ^
          T4[c >>> 24]! ^
          T3[hi & 0xff]! ^
          T2[(hi >>> 8) & 0xff]! ^
          T1[(hi >>> 16) & 0xff]! ^
          T0[hi >>> 24]!;
      }
      i += words * 8;
    }
    for (; i < n; i++) c = (c >>> 8) ^ T0[(c ^ b[i]!) & 0xff]!;
    this.c = c;
    this.bytes += n;
    return this;
  }

  /** A copy to continue from: a reader resumed mid-dump goes on from this state. */
  clone(): Crc32c {
    const c = new Crc32c();
    c.c = this.c;
    c.bytes = this.bytes;
    return c;
  }

  /** The value as Amanda prints it: `%08x`. */
  hex(): string {
    return ((this.c ^ 0xffffffff) >>> 0).toString(16).padStart(8, "0");
  }
}

export function crc32c(b: Uint8Array): string {
  return new Crc32c().update(b).hex();
}
