import { createHash } from "node:crypto";
import { existsSync, openSync, readFileSync, rmSync, writeSync, closeSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { catalogFromLogs } from "../../../server/amanda/catalog.ts";
import { readAmandaConfig } from "../../../server/amanda/conf.ts";
import { buildHeader } from "../../../server/amanda/header.ts";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { SharedReads } from "../../../server/amanda/shared-read.ts";
import { DumpStreamError, customDecompressor, openDumpStream } from "../../../server/amanda/stream.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { bytes, dumpHeaderText, type SynthDump, writeSynthLab } from "./synthetic.ts";
import { gzipSync } from "node:zlib";

async function collect(s: Readable): Promise<{ data: Buffer; error: Error | null }> {
  const chunks: Buffer[] = [];
  try {
    for await (const c of s) chunks.push(c as Buffer);
    return { data: Buffer.concat(chunks), error: null };
  } catch (err) {
    return { data: Buffer.concat(chunks), error: err as Error };
  }
}

const native = Buffer.concat([Buffer.from("tar ".repeat(40000)), bytes(50000, 9)]);
const dumps: Record<string, SynthDump> = {
  split: { host: "h", disk: "/split", datestamp: "20261124020601", level: 0, data: bytes(300000, 7) },
  gz: { host: "h", disk: "Docs $HOME", datestamp: "20261124020601", level: 0, data: gzipSync(native), comp: ".gz", native },
  hold: { host: "h", disk: "/split", datestamp: "20261124020609", level: 1, data: bytes(70000, 8) },
};

async function setup() {
  const l = writeSynthLab(tempDir("lifeboat-amanda-stream-"), [{ label: "T-01", slot: 1, datestamp: "20261124020601", dumps: [dumps.split!, dumps.gz!] }], [dumps.hold!], {
    partSize: 65536,
    chunkSize: 32768,
  });
  const cat = (await catalogFromLogs(readAmandaConfig(l.configDir))).dumps;
  const get = (disk: string, level: number) => cat.find((d) => d.disk === disk && d.level === level)!;
  return { l, get };
}

describe("dump streams", () => {
  it("joins split parts and holding chunks, strips headers, decompresses on request, with lengths known", async () => {
    const { get } = await setup();
    for (const [d, want] of [
      [get("/split", 0), dumps.split!.data],
      [get("Docs $HOME", 0), dumps.gz!.data],
      [get("/split", 1), dumps.hold!.data],
    ] as const) {
      const s = openDumpStream(d);
      expect(s.length).toBe(want.length);
      const r = await collect(s.stream);
      expect(r.error).toBeNull();
      expect(r.data.equals(want)).toBe(true);
    }
    const dec = openDumpStream(get("Docs $HOME", 0), { decompress: true });
    expect(dec.length).toBe(native.length);
    const r = await collect(dec.stream);
    expect(r.error).toBeNull();
    expect(createHash("sha256").update(r.data).digest("hex")).toBe(createHash("sha256").update(native).digest("hex"));
  });

  it("decompresses with the custom compressor the header names (run with -d, as Amanda does)", async () => {
    const { get } = await setup();
    const gz = get("Docs $HOME", 0);
    const custom: CatalogDump = { ...gz, compression: "custom", compressProgram: "/bin/gzip" };
    const r = await collect(openDumpStream(custom, { decompress: true }).stream);
    expect(r.error).toBeNull();
    expect(r.data.equals(native)).toBe(true);
    // An allowed compressor that fails (bzip2 on gzip data): the stream ends with its error.
    const broken = await collect(openDumpStream({ ...custom, compressProgram: "bzip2" }, { decompress: true }).stream);
    expect(broken.error?.message).toMatch(/\/usr\/bin\/bzip2/);
    expect(() => openDumpStream({ ...custom, compressProgram: null }, { decompress: true })).toThrow(/custom compression without a program in the header; use the raw stream/);
  });

  it("a header naming a program outside the allowlist (/tmp/evil, sh -c …) is refused in one line and nothing runs, on disk or through amfetchdump", async () => {
    const { get } = await setup();
    const dir = tempDir("lifeboat-evil-");
    const marker = join(dir, "ran");
    const evil = join(dir, "evil");
    writeFileSync(evil, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
    const gz = get("Docs $HOME", 0);
    const onTape: CatalogDump = { ...gz, location: { ...gz.location, kind: "tape", parts: [] } };
    for (const d of [gz, onTape])
      for (const program of [evil, `sh -c "touch ${marker}"`, "/usr/local/bin/gzip", "../../bin/gzip", "gzip -c", "/bin/sh", "/tmp/zstd"]) {
        const custom: CatalogDump = { ...d, compression: "custom", compressProgram: program };
        let message = "";
        try {
          openDumpStream(custom, { decompress: true });
        } catch (err) {
          expect(err).toBeInstanceOf(DumpStreamError);
          expect((err as DumpStreamError).status).toBe(422);
          message = (err as Error).message;
        }
        expect(message).toContain(`the header's custom compressor ${JSON.stringify(program)} is not one Lifeboat runs (gzip, pigz, bzip2,`);
        expect(message).not.toContain("\n");
      }
    expect(existsSync(marker)).toBe(false);
    // The raw stream is still served: nothing is decompressed, nothing runs.
    expect(openDumpStream({ ...gz, compression: "custom", compressProgram: evil }).length).toBe(dumps.gz!.data.length);
    expect(customDecompressor("/usr/bin/zstd")).toBe("/usr/bin/zstd");
    expect(customDecompressor("/bin/gzip")).toBe("/usr/bin/gzip");
    expect(customDecompressor("xz")).toBe("/usr/bin/xz");
  });

  it("serves byte ranges across part boundaries", async () => {
    const { get } = await setup();
    const d = get("/split", 0);
    for (const [start, end] of [[0, 9], [65530, 65545], [131072, 299999], [299999, 299999], [100, undefined]] as const) {
      const s = openDumpStream(d, { start, end });
      const r = await collect(s.stream);
      expect(r.error).toBeNull();
      expect(r.data.equals(dumps.split!.data.subarray(start, end === undefined ? undefined : end + 1))).toBe(true);
      expect(s.length).toBe(r.data.length);
      // A range to the end (a resumed restore) is checked against Amanda's CRC over the whole dump; one that stops short cannot be.
      expect(s.checked).toEqual(end === undefined || end === 299999 ? d.crc.server ?? d.crc.native : null);
    }
    expect(() => openDumpStream(d, { start: 300000 })).toThrow(/range starts at 300000, the dump has 300000 bytes/);
    expect(() => openDumpStream(get("Docs $HOME", 0), { start: 5, decompress: true })).toThrow(DumpStreamError);
  });

  it("a flipped byte fails the stream loudly on Amanda's CRC, and the last chunk is never delivered", async () => {
    const { l, get } = await setup();
    const part = join(l.vtapes, "slot1", "00003.h._split.0");
    const fd = openSync(part, "r+");
    writeSync(fd, Buffer.from([0x55]), 0, 1, 32768 + 1000);
    closeSync(fd);
    const s = openDumpStream(get("/split", 0), { readBufferBytes: 16384 });
    const r = await collect(s.stream);
    expect(r.error?.message).toMatch(/^CRC mismatch on h:"\/split" L0 20261124020601 as stored: read [0-9a-f]{8}:300000, Amanda recorded [0-9a-f]{8}:300000$/);
    expect(r.data.length).toBeLessThan(300000);
    // A restore resumed after the flipped byte fails too: the prefix is read again for the CRC, not sent.
    for (const start of [32768 + 1001, 299999]) {
      const resumed = await collect(openDumpStream(get("/split", 0), { start, readBufferBytes: 16384 }).stream);
      expect(resumed.error?.message).toMatch(new RegExp(`^CRC mismatch on h:"/split" L0 20261124020601 as stored \\(resumed at byte ${start}\\): read [0-9a-f]{8}:300000`));
      expect(resumed.data.length).toBeLessThan(300000 - start);
    }
    // decompressed: the native CRC is checked too
    const gzPart = join(l.vtapes, "slot1", "00006.h.Docs $HOME.0");
    const buf = readFileSync(gzPart);
    const hdr = buildHeader(dumpHeaderText("SPLIT_FILE", { ...dumps.gz!, native: Buffer.from("other") }, { part: "1/-1" }));
    writeFileSync(gzPart, Buffer.concat([hdr, buf.subarray(32768)]));
    const cat = (await catalogFromLogs(readAmandaConfig(l.configDir))).dumps;
    const fromMedia: CatalogDump = { ...cat.find((d) => d.disk === "Docs $HOME")!, crc: { native: { crc: "00000000", size: native.length }, client: null, server: null } };
    const r2 = await collect(openDumpStream(fromMedia, { decompress: true }).stream);
    expect(r2.error?.message).toMatch(/CRC mismatch on h:"Docs \$HOME" L0 20261124020601 decompressed/);
  });

  it("shared reads: streams of one dump at once read it once, a detached one resumes the CRC where it left, a flipped byte fails them all", async () => {
    const { l, get } = await setup();
    const d = get("/split", 0);
    const shared = new SharedReads({ windowChunks: 2 });
    const open = () => openDumpStream(d, { readBufferBytes: 16384, shared });
    const [a, b] = [open(), open()];
    expect(a.checked).toEqual(b.checked);
    expect(a.checked?.size).toBe(300000);
    // b takes one chunk and waits: a window (2 chunks) later it is detached and reads the rest itself, its CRC from that offset on.
    const first = await new Promise<Buffer>((r) => b.stream.once("data", (c: Buffer) => (b.stream.pause(), r(c))));
    const ra = await collect(a.stream);
    const rb = await collect(b.stream.resume());
    expect(ra.error).toBeNull();
    expect(rb.error).toBeNull();
    expect(ra.data.equals(dumps.split!.data)).toBe(true);
    expect(Buffer.concat([first, rb.data]).equals(dumps.split!.data)).toBe(true);
    // A byte flipped late in the last part: the shared reader and a detached one both fail on Amanda's CRC.
    const part = join(l.vtapes, "slot1", "00005.h._split.0");
    const fd = openSync(part, "r+");
    writeSync(fd, Buffer.from([0x55]), 0, 1, 32768 + 100);
    closeSync(fd);
    const [c, e, f] = [open(), open(), open()];
    const head = await new Promise<Buffer>((r) => f.stream.once("data", (x: Buffer) => (f.stream.pause(), r(x))));
    const [rc, re] = await Promise.all([collect(c.stream), collect(e.stream)]);
    const rf = await collect(f.stream.resume());
    for (const r of [rc, re, { ...rf, data: Buffer.concat([head, rf.data]) }]) {
      expect(r.error?.message).toMatch(/^CRC mismatch on h:"\/split" L0 20261124020601 as stored/);
      expect(r.data.length).toBeLessThan(300000);
    }
  });

  it("refuses before the first byte: missing part, truncated part, header of another dump, encrypted dump", async () => {
    const { l, get } = await setup();
    const d = get("/split", 0);
    expect(() => openDumpStream({ ...d, encrypted: true })).toThrow(
      `h:"/split" L0 20261124020601 is encrypted: only the server's dump stream decrypts it, with the key of Amanda config ${d.amanda} (lifeboat amanda key set)`,
    );
    const original = readFileSync(join(l.vtapes, "slot1", "00002.h._split.0"));
    rmSync(join(l.vtapes, "slot1", "00002.h._split.0"));
    expect(() => openDumpStream(d)).toThrow(/part 2 is missing: .*00002.h._split.0$/);
    writeFileSync(join(l.vtapes, "slot1", "00002.h._split.0"), readFileSync(join(l.vtapes, "slot1", "00003.h._split.0")));
    expect(() => openDumpStream(d)).toThrow(/part 2: .*bad Amanda header at byte 0: is part 3, expected part 2/);
    writeFileSync(join(l.vtapes, "slot1", "00002.h._split.0"), readFileSync(join(l.vtapes, "slot1", "00006.h.Docs $HOME.0")));
    expect(() => openDumpStream(d)).toThrow(/holds h:Docs \$HOME L0 20261124020601, expected h:\/split L0 20261124020601 \(volume overwritten\?\)/);
    writeFileSync(join(l.vtapes, "slot1", "00002.h._split.0"), original.subarray(0, 40000));
    expect(() => openDumpStream(d)).toThrow('h:"/split" L0 20261124020601: the parts on disk hold 241696 bytes, Amanda wrote 300000; a part is missing or truncated');
  });

  it("respects backpressure: a paused reader keeps at most a few buffers in memory", async () => {
    const big: SynthDump = { host: "h", disk: "/big", datestamp: "20261124020601", level: 0, data: Buffer.alloc(48 << 20, 7) };
    const l = writeSynthLab(tempDir("lifeboat-amanda-bp-"), [{ label: "T-01", slot: 1, datestamp: "20261124020601", dumps: [big] }], [], { partSize: 16 << 20 });
    const d = (await catalogFromLogs(readAmandaConfig(l.configDir))).dumps[0]!;
    const s = openDumpStream(d, { readBufferBytes: 1 << 20 });
    const it = s.stream[Symbol.asyncIterator]();
    await it.next();
    await new Promise((r) => setTimeout(r, 200));
    expect(s.stream.readableLength).toBeLessThanOrEqual(4 << 20);
    let n = 0;
    for (let x = await it.next(); !x.done; x = await it.next()) n += (x.value as Buffer).length;
    expect(n).toBe((48 << 20) - (1 << 20));
  });
});
