import { describe, expect, it } from "vitest";
import { parseTapelist, parseAmandaConf } from "../../../server/amanda/conf.ts";
import { parseAmadminFind } from "../../../server/amanda/amadmin.ts";
import { parseTraceLog } from "../../../server/amanda/logs.ts";
import { dumpKey } from "../../../server/amanda/model.ts";

// Lines as Amanda 3.5.1 wrote them in the reference lab (FORMATS.md §5).
const RUN1 = `START planner date 20261124020601
START driver date 20261124020601
SUCCESS dumper localhost "Lab Docs $HOME" 20261124020601 0 c0b4f0d2:174080 b8094f34:8664 [sec 0.184 kb 8 kps 43.4 orig-kb 170]
SUCCESS chunker localhost "Lab Docs $HOME" 20261124020601 0 b8094f34:8664 [sec 1.285712 kb 8 kps 6.222233]
START taper datestamp 20261124020601 "ST:lab" "POOL:lab" label LAB-01 tape 1
PART taper "ST:lab" "POOL:lab" LAB-01 1 localhost "Lab Docs $HOME" 20261124020601 1/-1 0 [sec 0.000960 bytes 8664 kps 8333.333333 orig-kb 170]
DONE taper "ST:lab" "POOL:lab" localhost "Lab Docs $HOME" 20261124020601 1 0 c0b4f0d2:174080 b8094f34:8664 b8094f34:8664 [sec 0.100000 bytes 8664 kps 80.000000 orig-kb 170]
SUCCESS dumper localhost /tmp/t/plain 20261124020601 0 0753aa58:317440 0753aa58:317440 [sec 0.172 kb 310 kps 1795.5 orig-kb 310]
PART taper "ST:lab" "POOL:lab" LAB-01 2 localhost /tmp/t/plain 20261124020601 1/-1 0 [sec 0.001096 bytes 65536 kps 58394.160584 orig-kb 310]
PART taper "ST:lab" "POOL:lab" LAB-01 3 localhost /tmp/t/plain 20261124020601 2/-1 0 [sec 0.000333 bytes 65536 kps 192192.192192 orig-kb 310]
DONE taper "ST:lab" "POOL:lab" localhost /tmp/t/plain 20261124020601 2 0 0753aa58:131072 0753aa58:131072 0753aa58:131072 [sec 0.100000 bytes 131072 kps 3100.000000 orig-kb 310]
INFO taper tape LAB-01 kb 318 fm 6 [OK]
FINISH driver date 20261124020601 time 5.796
`;

describe("trace logs", () => {
  it("reads 3.x dumper SUCCESS CRCs and taper PART/DONE with labels, file numbers and part counts", () => {
    const f = parseTraceLog(RUN1, "/l/log.20261124020601.0");
    const docs = f.taped.get(dumpKey({ host: "localhost", disk: "Lab Docs $HOME", datestamp: "20261124020601", level: 0 }))!;
    expect(docs).toMatchObject({ status: "ok", nparts: 1, sizeBytes: 8664, serverCrc: { crc: "b8094f34", size: 8664 } });
    expect(docs.parts).toEqual([{ partNo: 1, label: "LAB-01", fileNo: 1, sizeBytes: 8664, volumeDatestamp: "20261124020601" }]);
    const plain = f.taped.get(dumpKey({ host: "localhost", disk: "/tmp/t/plain", datestamp: "20261124020601", level: 0 }))!;
    expect(plain.parts.map((p) => p.fileNo)).toEqual([2, 3]);
    const d = f.dumper.get(dumpKey({ host: "localhost", disk: "Lab Docs $HOME", datestamp: "20261124020601", level: 0 }))!;
    expect(d).toMatchObject({ nativeCrc: { crc: "c0b4f0d2", size: 174080 }, clientCrc: { crc: "b8094f34", size: 8664 }, origKb: 170, chunkerCrc: { crc: "b8094f34", size: 8664 } });
    expect(f.skipped).toEqual([]);
  });

  it("keys amflush PART/DONE by the dump's datestamp, not the log's", () => {
    const f = parseTraceLog(
      `START driver date 20261124021341
START taper datestamp 20261124021341 "ST:lab" "POOL:lab" label LAB-03 tape 1
PART taper "ST:lab" "POOL:lab" LAB-03 1 localhost "Lab Docs $HOME" 20261124021314 1/-1 2 [sec 0.000677 bytes 324 kps 0.0 orig-kb 10]
DONE taper "ST:lab" "POOL:lab" localhost "Lab Docs $HOME" 20261124021314 1 2 a5e233cb:10240 2456df81:324 2456df81:324 [sec 0.1 bytes 324 kps 0.0 orig-kb 10]
`,
      "/l/log.20261124021341.0",
    );
    expect([...f.taped.values()][0]).toMatchObject({ datestamp: "20261124021314", level: 2, parts: [{ label: "LAB-03", fileNo: 1, volumeDatestamp: "20261124021341" }] });
  });

  it("reads Amanda 2.x logs: SUCCESS taper without file numbers (counted from START taper), CHUNK lines, no CRCs", () => {
    const f = parseTraceLog(
      `START planner date 20060123
START driver date 20060123
SUCCESS dumper oldhost /boot 20060123 0 [sec 1.0 kb 100 kps 100.0 orig-kb 200]
START taper datestamp 20060123 label DAILY-07 tape 1
SUCCESS taper oldhost /boot 20060123 0 [sec 1.0 kb 100 kps 100.0 {wr: writers 4 rdwait 0.000 wrwait 0.0 filemark 0.0}]
SUCCESS dumper oldhost "/home dir" 20060123 1 [sec 1.0 kb 64 kps 64.0 orig-kb 64]
CHUNK taper oldhost "/home dir" 20060123 1 1 [sec 1.0 kb 32 kps 32.0]
CHUNK taper oldhost "/home dir" 20060123 2 1 [sec 1.0 kb 32 kps 32.0]
CHUNKSUCCESS taper oldhost "/home dir" 20060123 1 [sec 1.0 kb 64 kps 64.0]
SUCCESS taper oldhost /var 1 [sec 1.0 kb 10 kps 10.0]
`,
      "/l/log.20060123.1",
    );
    const boot = f.taped.get(dumpKey({ host: "oldhost", disk: "/boot", datestamp: "20060123", level: 0 }))!;
    expect(boot).toMatchObject({ status: "ok", nparts: 1, parts: [{ label: "DAILY-07", fileNo: 1, partNo: 1 }], serverCrc: null });
    const home = f.taped.get(dumpKey({ host: "oldhost", disk: "/home dir", datestamp: "20060123", level: 1 }))!;
    expect(home).toMatchObject({ status: "ok", nparts: 2 });
    expect(home.parts.map((p) => p.fileNo)).toEqual([2, 3]);
    // very old line without a datestamp: the log's run datestamp, file 4
    const v = f.taped.get(dumpKey({ host: "oldhost", disk: "/var", datestamp: "20060123", level: 1 }))!;
    expect(v.parts[0]!.fileNo).toBe(4);
    expect(f.dumper.get(dumpKey({ host: "oldhost", disk: "/boot", datestamp: "20060123", level: 0 }))).toMatchObject({ nativeCrc: null, origKb: 200 });
  });

  it("a dump that never got DONE is incomplete; a failed attempt then a retry keeps the retry", () => {
    const f = parseTraceLog(
      `PART taper "ST:s" "POOL:p" T1 1 h /d 20261124020601 1/-1 0 [sec 0 bytes 10 kps 0 orig-kb 1]
PARTIAL taper "ST:s" "POOL:p" h /d 20261124020601 1 0 "[out of tape]"
PART taper "ST:s" "POOL:p" T2 1 h /d 20261124020601 1/-1 0 [sec 0 bytes 10 kps 0 orig-kb 1]
DONE taper "ST:s" "POOL:p" h /d 20261124020601 1 0 [sec 0 bytes 10 kps 0 orig-kb 1]
PART taper "ST:s" "POOL:p" T2 2 h /e 20261124020601 1/-1 0 [sec 0 bytes 10 kps 0 orig-kb 1]
garbage line with "unbalanced quote
PART taper "ST:s" "POOL:p" T2 x h /f 20261124020601 1/-1 0 [sec 0 bytes 10 kps 0 orig-kb 1]
`,
      "/l/log.20261124020601.0",
    );
    expect(f.taped.get(dumpKey({ host: "h", disk: "/d", datestamp: "20261124020601", level: 0 }))).toMatchObject({ status: "ok", parts: [{ label: "T2" }] });
    expect(f.taped.get(dumpKey({ host: "h", disk: "/e", datestamp: "20261124020601", level: 0 }))).toMatchObject({ status: "incomplete" });
    expect(f.skipped).toHaveLength(1);
    expect(f.skipped[0]).toMatch(/^\/l\/log.20261124020601.0:7: cannot read PART line/);
  });
});

describe("tapelist, amanda.conf, amadmin find", () => {
  it("parses 3.5 and 2.x tapelists", () => {
    expect(parseTapelist("20261124020609 LAB-02 reuse BLOCKSIZE:32 POOL:lab STORAGE:lab CONFIG:lab\n0 LAB-06 reuse\n20060123 DAILY-07 no-reuse\n")).toEqual([
      { datestamp: "20261124020609", label: "LAB-02", reuse: true, fields: { BLOCKSIZE: "32", POOL: "lab", STORAGE: "lab", CONFIG: "lab" } },
      { datestamp: "0", label: "LAB-06", reuse: true, fields: {} },
      { datestamp: "20060123", label: "DAILY-07", reuse: false, fields: {} },
    ]);
  });

  it("finds the chg-disk root and holding dirs in amanda.conf blocks", () => {
    const c = parseAmandaConf('define changer v {\n  tpchanger "chg-disk:/v t"  # c\n}\ntpchanger "v"\nholdingdisk hd1 {\n directory "/h"\n}\nlogdir "/l#x"\n');
    expect(c.top.get("tpchanger")).toEqual(["v"]);
    expect(c.top.get("logdir")).toEqual(["/l#x"]);
    expect(c.blocks.map((b) => [b.kind, b.name, [...b.body]])).toEqual([
      ["changer", "v", [["tpchanger", ["chg-disk:/v t"]]]],
      ["holdingdisk", "hd1", [["directory", ["/h"]]]],
    ]);
  });

  it("parses amadmin find rows, quoted disks with blanks, holding rows and 2.x dates", () => {
    const rows = parseAmadminFind(`
date                host      disk                             lv storage pool    tape or file      file part  status
2026-11-24 02:06:01 localhost /tmp/t/plain  0 lab     lab     LAB-01     2   1/5 OK 
2026-11-24 02:06:17 localhost "Lab Docs $HOME"                  2 HOLDING HOLDING "/h/20261124020617/localhost.Lab Docs $HOME.2"                    0 -1/-1 OK 
2006-01-23 oldhost /boot 0 DailySet1 DailySet1 DAILY-07 1 1/1 OK
`);
    expect(rows).toEqual([
      { datestamp: "20261124020601", host: "localhost", disk: "/tmp/t/plain", level: 0, storage: "lab", pool: "lab", label: "LAB-01", fileNo: 2, partNo: 1, nparts: 5, status: "OK" },
      { datestamp: "20261124020617", host: "localhost", disk: "Lab Docs $HOME", level: 2, storage: "HOLDING", pool: "HOLDING", label: "/h/20261124020617/localhost.Lab Docs $HOME.2", fileNo: 0, partNo: -1, nparts: -1, status: "OK" },
      { datestamp: "20060123", host: "oldhost", disk: "/boot", level: 0, storage: "DailySet1", pool: "DailySet1", label: "DAILY-07", fileNo: 1, partNo: 1, nparts: 1, status: "OK" },
    ]);
  });
});
