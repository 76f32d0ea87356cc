import { appendFileSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { buildCatalog, catalogFromLogs, catalogFromScan } from "../../../server/amanda/catalog.ts";
import { readAmandaConfig } from "../../../server/amanda/conf.ts";
import { scanMedia } from "../../../server/amanda/media.ts";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { bytes, type SynthDump, writeSynthLab } from "./synthetic.ts";

const tar0 = bytes(20000, 1);
const tar1 = bytes(5000, 2);
const docsNative = Buffer.concat([Buffer.from("docs ".repeat(3000)), bytes(3000, 3)]);
const D: Record<string, SynthDump> = {
  plain0: { host: "localhost", disk: "/srv/plain", datestamp: "20261124020601", level: 0, data: tar0 },
  docs0: { host: "localhost", disk: "Lab Docs $HOME", datestamp: "20261124020601", level: 0, data: gzipSync(docsNative), comp: ".gz", native: docsNative },
  plain1: { host: "localhost", disk: "/srv/plain", datestamp: "20261124020609", level: 1, data: tar1 },
  share1: { host: "win", disk: "//fs/share/", datestamp: "20261124020609", level: 0, data: bytes(100, 4) },
  plain2: { host: "localhost", disk: "/srv/plain", datestamp: "20261124020617", level: 2, data: bytes(9000, 5) },
};

function lab() {
  const root = tempDir("lifeboat-amanda-media-");
  const l = writeSynthLab(
    root,
    [
      { label: "LAB-01", slot: 1, datestamp: "20261124020601", dumps: [D.docs0!, D.plain0!] },
      { label: "LAB-02", slot: 2, datestamp: "20261124020609", dumps: [D.plain1!, D.share1!] },
    ],
    [D.plain2!],
  );
  return { ...l, setup: readAmandaConfig(l.configDir) };
}

const comparable = (ds: CatalogDump[]) => ds.map((d) => ({ ...d, sources: [] }));

describe("catalog sources", () => {
  it("reads the config dir: logdir, tapelist, chg-disk root from a changer block, holding dirs", async () => {
    const l = lab();
    expect(l.setup).toMatchObject({ name: "synth", logdir: l.logdir, vtapeRoot: l.vtapes, holdingDirs: [l.holding], tapelist: join(l.configDir, "tapelist") });
    expect(() => readAmandaConfig(join(l.root, "nope"))).toThrow(/nope: not an Amanda config directory \(ENOENT\); expected a directory with amanda.conf/);
  });

  it("the catalog from a media scan alone equals the one from logs and tapelist", async () => {
    const l = lab();
    const fromLogs = (await catalogFromLogs(l.setup));
    const fromScan = catalogFromScan("synth", (await scanMedia([l.vtapes, l.holding])));
    expect(fromLogs.warnings).toEqual([]);
    expect(fromScan.warnings).toEqual([]);
    expect(fromLogs.dumps).toHaveLength(5);
    expect(comparable(fromScan.dumps)).toEqual(comparable(fromLogs.dumps));
    const plain0 = fromLogs.dumps.find((d) => d.disk === "/srv/plain" && d.level === 0)!;
    expect(plain0.location).toMatchObject({ kind: "vtape", label: "LAB-01", fileNo: 2, slot: 1 });
    expect(plain0.location.parts!.map((p) => [p.partNo, p.fileNo, p.sizeBytes])).toEqual([[1, 2, 4096], [2, 3, 4096], [3, 4, 4096], [4, 5, 4096], [5, 6, 3616]]);
    const docs = fromLogs.dumps.find((d) => d.disk === "Lab Docs $HOME")!;
    expect(docs).toMatchObject({ compression: "gzip", program: "amgtar", sizeBytes: D.docs0!.data.length, crc: { native: { size: docsNative.length } } });
    const hold = fromLogs.dumps.find((d) => d.level === 2)!;
    expect(hold.location).toMatchObject({ kind: "holding", label: "HOLDING", fileNo: 0 });
    expect(hold.location.parts).toHaveLength(3);
  });

  it("scanning the parent directory finds the same; garbage files and truncated headers are warnings naming the file", async () => {
    const l = lab();
    writeFileSync(join(l.vtapes, "slot2", "00009.garbage"), "this is not an Amanda file\n");
    const bad = join(l.vtapes, "slot1", "00007.localhost.truncated.0");
    writeFileSync(bad, readFileSync(join(l.vtapes, "slot1", "00001.localhost.Lab Docs $HOME.0")).subarray(0, 1000));
    const s = catalogFromScan("synth", (await scanMedia([l.root])));
    expect(s.dumps).toHaveLength(5);
    expect(s.warnings).toEqual([
      `${bad}: bad Amanda header at byte 1000: truncated: 1000 bytes, expected 32768`,
      `${join(l.vtapes, "slot2", "00009.garbage")}: bad Amanda header at byte 27: truncated: 27 bytes, expected 32768`,
    ]);
  });

  it("a missing last part, a missing middle part, a missing tape and a broken holding chain are problems naming them", async () => {
    const l = lab();
    rmSync(join(l.vtapes, "slot1", "00006.localhost._srv_plain.0")); // last part of plain L0
    rmSync(join(l.vtapes, "slot2"), { recursive: true }); // tape LAB-02 gone
    rmSync(join(l.holding, "20261124020617", "localhost._srv_plain.2.1"));
    const logs = (await catalogFromLogs(l.setup)).dumps;
    const p = (disk: string, level: number) => logs.find((d) => d.disk === disk && d.level === level)!.problem;
    expect(p("/srv/plain", 0)).toBe('part 5 of localhost:"/srv/plain" L0 20261124020601 (file 6 of LAB-01) is missing');
    expect(p("/srv/plain", 1)).toBe(`tape LAB-02 (part 1 of localhost:"/srv/plain" L1 20261124020609) is not in any slot of ${l.vtapes}`);
    expect(p("/srv/plain", 2)).toMatch(/^holding chunk localhost._srv_plain.2.1 is missing \(named in .*localhost._srv_plain.2\)$/);
    const scan = catalogFromScan("synth", (await scanMedia([l.vtapes]))).dumps;
    expect(scan.find((d) => d.disk === "/srv/plain")!.problem).toBe(
      'localhost:"/srv/plain" L0 20261124020601: the scanned parts hold 16384 of 20000 bytes: part 5 is missing or a part is truncated',
    );
    rmSync(join(l.vtapes, "slot1", "00003.localhost._srv_plain.0"));
    expect(catalogFromScan("synth", (await scanMedia([l.vtapes]))).dumps.find((d) => d.disk === "/srv/plain")!.problem).toBe(
      'part 2 of localhost:"/srv/plain" L0 20261124020601 is missing from the scanned volumes',
    );
  });

  it("buildCatalog adds dumps only the media know (logs lost) and warns when logs and media disagree", async () => {
    const l = lab();
    rmSync(join(l.logdir, "log.20261124020609.0"));
    const c = (await buildCatalog(l.setup));
    expect(c.dumps).toHaveLength(5);
    expect(c.dumps.find((d) => d.disk === "//fs/share/")!.sources).toEqual(["scan"]);
    expect(c.dumps.find((d) => d.disk === "Lab Docs $HOME")!.sources).toEqual(["log", "scan"]);
    appendFileSync(join(l.logdir, "log.20261124020601.0"), "garbage\n");
    expect((await buildCatalog(l.setup)).warnings).toEqual([]);
  });

  it("a label no longer in the tapelist (reused) drops its dumps; a truncated part file shows in its size", async () => {
    const l = lab();
    writeFileSync(join(l.configDir, "tapelist"), "20261124020601 LAB-01 reuse\n");
    expect((await catalogFromLogs(l.setup)).dumps.map((d) => d.location.label)).toEqual(["LAB-01", "HOLDING", "LAB-01"]);
    // LAB-01 rewritten by a later run: the old log's dumps on it are gone too
    writeFileSync(join(l.configDir, "tapelist"), "20261125020601 LAB-01 reuse\n20261124020609 LAB-02 reuse\n");
    expect((await catalogFromLogs(l.setup)).dumps.map((d) => d.location.label)).toEqual(["LAB-02", "HOLDING", "LAB-02"]);
    truncateSync(join(l.vtapes, "slot1", "00002.localhost._srv_plain.0"), 32768 + 100);
    expect(catalogFromScan("synth", (await scanMedia([l.vtapes]))).dumps.find((d) => d.disk === "/srv/plain")!.problem).toMatch(/hold 16004 of 20000 bytes: part 6 is missing or a part is truncated/);
  });
});

export { lab as synthLab, D as synthDumps, docsNative };

describe("Amanda 2.x media", () => {
  it("scans and streams a 2.x tape: AMANDA: FILE headers without parts or CRCs, 8-digit datestamps, SUCCESS taper lines", async () => {
    const { mkdirSync } = await import("node:fs");
    const { buildHeader } = await import("../../../server/amanda/header.ts");
    const { openDumpStream } = await import("../../../server/amanda/stream.ts");
    const root = tempDir("lifeboat-amanda-2x-");
    const slot = join(root, "vtapes", "slot1");
    mkdirSync(slot, { recursive: true });
    mkdirSync(join(root, "log"));
    const boot = bytes(70000, 11);
    const home = bytes(3000, 12);
    writeFileSync(join(slot, "00000.DAILY-07"), buildHeader("AMANDA: TAPESTART DATE 20060123 TAPE DAILY-07\n014\n"));
    const hdr = (disk: string, lev: number) =>
      buildHeader(`AMANDA: FILE 20060123 oldhost ${disk}  lev ${lev} comp N program /bin/tar\nTo restore, position tape at start of file and run:\n\tdd if=<tape> bs=32k skip=1 |      /bin/tar -xpGf - ...\n`);
    writeFileSync(join(slot, "00001.oldhost._boot.0"), Buffer.concat([hdr("/boot", 0), boot]));
    writeFileSync(join(slot, "00002.oldhost._home.1"), Buffer.concat([hdr("/home", 1), home]));
    writeFileSync(join(slot, "00003.TAPEEND"), buildHeader("AMANDA: TAPEEND DATE 20060123\n"));
    writeFileSync(join(root, "tapelist"), "20060123 DAILY-07 reuse\n");
    writeFileSync(
      join(root, "log", "log.20060123.0"),
      [
        "START planner date 20060123",
        "START driver date 20060123",
        "SUCCESS dumper oldhost /boot 20060123 0 [sec 1.0 kb 69 kps 69.0 orig-kb 69]",
        "START taper datestamp 20060123 label DAILY-07 tape 1",
        "SUCCESS taper oldhost /boot 20060123 0 [sec 1.0 kb 69 kps 69.0 {wr: writers 3 rdwait 0.000 wrwait 0.0 filemark 0.0}]",
        "SUCCESS dumper oldhost /home 20060123 1 [sec 1.0 kb 3 kps 3.0 orig-kb 3]",
        "SUCCESS taper oldhost /home 20060123 1 [sec 1.0 kb 3 kps 3.0]",
        "",
      ].join("\n"),
    );
    writeFileSync(join(root, "amanda.conf"), `logdir "${root}/log"\ntapelist "tapelist"\ntpchanger "chg-disk:${root}/vtapes"\n`);
    const setup = readAmandaConfig(root, { name: "old" });
    const logs = (await catalogFromLogs(setup));
    const scan = catalogFromScan("old", (await scanMedia([join(root, "vtapes")])));
    expect(scan.warnings).toEqual([]);
    expect(logs.dumps.map((d) => [d.disk, d.level, d.datestamp, d.program, d.location.label, d.location.fileNo, d.problem])).toEqual([
      ["/boot", 0, "20060123", "/bin/tar", "DAILY-07", 1, null],
      ["/home", 1, "20060123", "/bin/tar", "DAILY-07", 2, null],
    ]);
    expect(scan.dumps.map((d) => [d.disk, d.location.fileNo, d.sizeBytes])).toEqual([
      ["/boot", 1, 70000],
      ["/home", 2, 3000],
    ]);
    const chunks: Buffer[] = [];
    for await (const c of openDumpStream(logs.dumps[0]!).stream) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).equals(boot)).toBe(true);
  });
});
