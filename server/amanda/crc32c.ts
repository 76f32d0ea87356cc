/**
 * CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, init and xorout 0xFFFFFFFF): the
 * algorithm of Amanda 3.4+'s native/client/server CRCs (common-src/amcrc32chw.c), not
 * zlib's CRC-32. Slicing-by-8 tables: about 1 GB/s in plain JS, so checking costs little
 * next to the disk.
 */
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

/** A running CRC-32C over a byte stream, with the byte count Amanda records beside it. */
export class Crc32c {
  private c = 0xffffffff | 0;
  bytes = 0;

  update(b: Uint8Array): this {
    let c = this.c;
    let i = 0;
    const n = b.length;
    const end8 = n - (n % 8);
    for (; i < end8; i += 8) {
      c ^= b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
      c =
        T[7 * 256 + (c & 0xff)]! ^
        T[6 * 256 + ((c >>> 8) & 0xff)]! ^
        T[5 * 256 + ((c >>> 16) & 0xff)]! ^
        T[4 * 256 + (c >>> 24)]! ^
        T[3 * 256 + b[i + 4]!]! ^
        T[2 * 256 + b[i + 5]!]! ^
        T[256 + b[i + 6]!]! ^
        T[b[i + 7]!]!;
    }
    for (; i < n; i++) c = (c >>> 8) ^ T[(c ^ b[i]!) & 0xff]!;
    this.c = c;
    this.bytes += n;
    return this;
  }

  /** The value as Amanda prints it: `%08x`. */
  hex(): string {
    return ((this.c ^ 0xffffffff) >>> 0).toString(16).padStart(8, "0");
  }
}

export function crc32c(b: Uint8Array): string {
  return new Crc32c().update(b).hex();
}
