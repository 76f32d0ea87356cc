import { describe, expect, it } from "vitest";
import { buildHeader, compressionOf, HEADER_SIZE, HeaderError, parseHeader } from "../../../server/amanda/header.ts";
import { quote, splitQuoted, unquote } from "../../../server/amanda/quote.ts";
import { Crc32c, crc32c } from "../../../server/amanda/crc32c.ts";

// Header texts as Amanda 3.5.1 wrote them in the reference lab (FORMATS.md §1).
const SPLIT = `AMANDA: SPLIT_FILE 20261124020601 localhost "Lab Docs $HOME"  part 1/-1  lev 0 comp .gz program APPLICATION
APPLICATION=amgtar
ORIGSIZE=170
NATIVE-CRC=c0b4f0d2:174080
CLIENT-CRC=b8094f34:8664
SERVER-CRC=b8094f34:8664
DLE=<<ENDDLE
<dle>
  <program>APPLICATION</program>
  <disk encoding="raw" raw="TGFiIERvY3MgJEhPTUU=">Lab_Docs_$HOME</disk>
</dle>
ENDDLE
To restore, position tape at start of file and run:
\tdd if=<tape> bs=32k skip=1 | /bin/gzip -dc | /usr/lib/amanda/application/amgtar restore [./file-to-restore]+ 
\f
`;

describe("header codec", () => {
  it("parses a 3.5 SPLIT_FILE header with quoted disk, part, compression and CRCs", () => {
    const h = parseHeader(buildHeader(SPLIT), "slot1/00001");
    expect(h).toMatchObject({
      type: "SPLIT_FILE",
      datestamp: "20261124020601",
      host: "localhost",
      disk: "Lab Docs $HOME",
      level: 0,
      partNo: 1,
      totalParts: -1,
      compSuffix: ".gz",
      program: "APPLICATION",
      application: "amgtar",
      encrypted: false,
      origSizeKb: 170,
      nativeCrc: { crc: "c0b4f0d2", size: 174080 },
      clientCrc: { crc: "b8094f34", size: 8664 },
      serverCrc: { crc: "b8094f34", size: 8664 },
      contFilename: null,
    });
    expect(h.type === "SPLIT_FILE" && h.dle).toContain("<program>APPLICATION</program>");
    expect(h.type === "SPLIT_FILE" && compressionOf(h)).toEqual({ compression: "gzip", customProgram: null });
  });

  it("parses holding FILE / CONT_FILE headers with CONT_FILENAME, and TAPESTART / TAPEEND", () => {
    const file = parseHeader(
      buildHeader(
        "AMANDA: FILE 20261124020617 localhost /tmp/t/plain  lev 2 comp N program APPLICATION\nCONT_FILENAME=/h/20261124020617/localhost._tmp_t_plain.2.1\nAPPLICATION=amgtar\n",
      ),
      "f",
    );
    expect(file).toMatchObject({ type: "FILE", level: 2, disk: "/tmp/t/plain", compSuffix: null, contFilename: "/h/20261124020617/localhost._tmp_t_plain.2.1", partNo: null });
    const cont = parseHeader(buildHeader("AMANDA: CONT_FILE 20261124020617 localhost /tmp/t/plain  lev 2 comp N program APPLICATION\n"), "c");
    expect(cont).toMatchObject({ type: "CONT_FILE", contFilename: null });
    expect(parseHeader(buildHeader("AMANDA: TAPESTART DATE 20261124020601 TAPE LAB-01\n"), "t")).toEqual({ type: "TAPESTART", datestamp: "20261124020601", label: "LAB-01" });
    expect(parseHeader(buildHeader("AMANDA: TAPESTART DATE X TAPE LAB-03\n"), "t")).toEqual({ type: "TAPESTART", datestamp: "X", label: "LAB-03" });
    expect(parseHeader(buildHeader("AMANDA: TAPEEND DATE 20261124020617\n"), "t")).toEqual({ type: "TAPEEND", datestamp: "20261124020617" });
  });

  it("reads Amanda 2.x headers: AMANDA: FILE on tape, 8-digit datestamp, program path, literal \\n014\\n TAPESTART", () => {
    const h = parseHeader(
      buildHeader("AMANDA: FILE 20070925 localhost /boot  lev 0 comp .gz program /bin/tar\nTo restore, position tape at start of file and run:\n\tdd if=<tape> bs=32k skip=1 |      /bin/tar -xpGf - ...\n"),
      "old",
    );
    expect(h).toMatchObject({ type: "FILE", datestamp: "20070925", disk: "/boot", program: "/bin/tar", compSuffix: ".gz", nativeCrc: null, application: null });
    const b = Buffer.alloc(HEADER_SIZE);
    b.write("AMANDA: TAPESTART DATE 20060123 TAPE DAILY-07\n014\n");
    expect(parseHeader(b, "old0")).toEqual({ type: "TAPESTART", datestamp: "20060123", label: "DAILY-07" });
  });

  it("custom compression and encryption are recognised", () => {
    const h = parseHeader(
      buildHeader("AMANDA: FILE 20261124020601 h /d  lev 0 comp cust program GNUTAR crypt enc client_custom_compress /usr/bin/zstd server_encrypt /usr/sbin/amcrypt server_decrypt_option -d\n"),
      "x",
    );
    expect(h).toMatchObject({ encrypted: true, clientCustomCompress: "/usr/bin/zstd", serverEncrypt: "/usr/sbin/amcrypt" });
    expect(h.type === "FILE" && compressionOf(h)).toEqual({ compression: "custom", customProgram: "/usr/bin/zstd" });
  });

  it("damaged or unknown headers are errors naming the file and the byte offset", () => {
    const err = (b: Buffer, f = "slot1/00003.x") => {
      try {
        parseHeader(b, f);
      } catch (e) {
        expect(e).toBeInstanceOf(HeaderError);
        return (e as Error).message;
      }
      throw new Error("no error");
    };
    expect(err(buildHeader(SPLIT).subarray(0, 1200))).toBe("slot1/00003.x: bad Amanda header at byte 1200: truncated: 1200 bytes, expected 32768");
    expect(err(Buffer.alloc(HEADER_SIZE, 0x41))).toMatch(/^slot1\/00003.x: bad Amanda header at byte 0: expected "AMANDA: ", found "AAAA/);
    expect(err(Buffer.alloc(HEADER_SIZE))).toContain("empty (all NUL)");
    expect(err(buildHeader("AMANDA: WHATEVER 1 2\n"))).toBe('slot1/00003.x: bad Amanda header at byte 8: unknown header type "WHATEVER"');
    expect(err(buildHeader("AMANDA: SPLIT_FILE 20261124020601 localhost /d  part x/y  lev 0 comp N program APPLICATION\n"))).toMatch(/at byte \d+: bad part "x\/y"/);
    expect(err(buildHeader("AMANDA: FILE 2026 localhost /d  lev 0 comp N program X\n"))).toBe('slot1/00003.x: bad Amanda header at byte 13: bad datestamp "2026"');
    expect(err(buildHeader("AMANDA: FILE 20261124020601 localhost /d  comp N program X\n"))).toContain('without "lev <level>"');
  });
});

describe("Amanda quoting", () => {
  it("splits quoted names with blanks, $, quotes, backslashes and //share/ paths", () => {
    expect(splitQuoted('SUCCESS dumper h "Lab Docs $HOME" 2026 0')).toEqual(["SUCCESS", "dumper", "h", "Lab Docs $HOME", "2026", "0"]);
    for (const name of ["Lab Docs $HOME", '//server/share with "quotes"', "C:\\dir\\x", "tab\there", "", "plain/$path", "ünï"]) {
      expect(splitQuoted(`a ${quote(name)} b`)).toEqual(["a", name, "b"]);
      expect(unquote(quote(name))).toBe(name);
    }
    expect(quote("/tmp/x$y")).toBe("/tmp/x$y");
    expect(quote("a b")).toBe('"a b"');
  });
});

describe("CRC-32C", () => {
  it("matches the Castagnoli check value and Amanda's recorded CRCs", () => {
    expect(crc32c(Buffer.from("123456789"))).toBe("e3069283");
    expect(crc32c(Buffer.alloc(0))).toBe("00000000");
    // 32 zero bytes: RFC 3720 B.4 test vector 8a9136aa
    expect(crc32c(Buffer.alloc(32))).toBe("8a9136aa");
    // any split, at any alignment, gives the same value as one pass
    const big = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 131 + 7) & 0xff));
    const whole = crc32c(big);
    for (const cut of [1, 3, 5, 8, 13, 500, 997]) {
      const c = new Crc32c().update(big.subarray(0, cut)).update(big.subarray(cut));
      expect([c.hex(), c.bytes]).toEqual([whole, 1000]);
    }
    for (let off = 1; off < 8; off++) expect(crc32c(Buffer.concat([Buffer.alloc(off), big]).subarray(off))).toBe(whole);
    // the portable path agrees with the native binding, split or not
    expect(new Crc32c().updateJs(big).hex()).toBe(whole);
    expect(new Crc32c().updateJs(big.subarray(0, 333)).update(big.subarray(333)).hex()).toBe(whole);
    expect(new Crc32c().updateJs(Buffer.from("123456789")).hex()).toBe("e3069283");
  });
});
