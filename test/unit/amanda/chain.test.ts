import { describe, expect, it } from "vitest";
import { ChainError, normaliseDatestamp, selectChain } from "../../../server/amanda/chain.ts";
import { type CatalogDump, dumpId } from "../../../server/amanda/model.ts";

let fileNo = 0;
function dump(host: string, disk: string, datestamp: string, level: number, extra: Partial<CatalogDump> = {}): CatalogDump {
  const label = `T-${datestamp.slice(6, 8)}`;
  fileNo++;
  return {
    id: dumpId({ host, disk, datestamp, level }),
    amanda: "synth",
    host,
    disk,
    level,
    datestamp,
    program: "amgtar",
    compression: "none",
    compressProgram: null,
    encrypted: false,
    sizeBytes: 10,
    origKb: 1,
    crc: { native: null, client: null, server: null },
    location: { kind: "vtape", label, fileNo, parts: [{ partNo: 1, label, fileNo }] },
    status: "ok",
    problem: null,
    sources: ["log"],
    ...extra,
  };
}

const levels = (c: { dumps: CatalogDump[] }) => c.dumps.map((d) => `L${d.level}@${d.datestamp}`);
const WEIRD = ["Lab Docs $HOME", "//fileserver/share/", 'say "cheese"', "/home/it's mine", "C:\\Users"];

// Three hosts × several disks, one run a day over two cycles, levels interleaved across many tapes.
function history(): CatalogDump[] {
  const out: CatalogDump[] = [];
  const hosts = ["alpha", "beta", "gamma"];
  const disks = ["/", "/home", ...WEIRD];
  const plan: Record<string, number[]> = {
    alpha: [0, 1, 1, 2, 1, 0, 1, 2, 3, 1],
    beta: [1, 0, 1, 2, 2, 3, 0, 1, 1, 2],
    gamma: [0, 1, 2, 3, 4, 1, 2, 0, 1, 2],
  };
  for (let day = 0; day < 10; day++) {
    const ds = `202611${String(day + 10).padStart(2, "0")}020000`;
    for (const h of hosts) for (const [i, d] of disks.entries()) out.push(dump(h, d, ds.replace(/0000$/, String(i).padStart(2, "0") + "00"), plan[h]![day]!));
  }
  return out;
}

describe("restore chains", () => {
  const all = history();

  it("newest L0 at or before the point, then each next level; a newer L1 supersedes older L1 and L2", () => {
    // alpha: days 10..19 levels 0 1 1 2 1 0 1 2 3 1
    expect(levels(selectChain(all, "alpha", "/home", "20261114235959"))).toEqual(["L0@20261110020100", "L1@20261114020100"]);
    expect(levels(selectChain(all, "alpha", "/home", "20261113"))).toEqual(["L0@20261110020100", "L1@20261112020100", "L2@20261113020100"]);
    expect(levels(selectChain(all, "alpha", "/home"))).toEqual(["L0@20261115020100", "L1@20261119020100"]);
    expect(levels(selectChain(all, "alpha", "/home", "2026-11-18 23:00:00"))).toEqual([
      "L0@20261115020100",
      "L1@20261116020100",
      "L2@20261117020100",
      "L3@20261118020100",
    ]);
  });

  it("a level 0 in the middle of a cycle starts a new chain; --at between runs takes what existed then", () => {
    // beta: 1 0 1 2 2 3 0 1 1 2 — the L0 of day 16 resets the chain
    expect(levels(selectChain(all, "beta", "/", "20261116020000"))).toEqual(["L0@20261116020000"]);
    expect(levels(selectChain(all, "beta", "/", "20261115235959"))).toEqual([
      "L0@20261111020000",
      "L1@20261112020000",
      "L2@20261114020000",
      "L3@20261115020000",
    ]);
    // between two runs of the same day: the 02:00 dump of "/" is in, the 02:04 one of WEIRD[2] is not yet
    expect(levels(selectChain(all, "gamma", WEIRD[2]!, "20261114020300"))).toEqual(["L0@20261110020400", "L1@20261111020400", "L2@20261112020400", "L3@20261113020400"]);
  });

  it("works for disk names with blanks, $, //share/ paths, quotes and backslashes, and keeps hosts and disks apart", () => {
    for (const d of WEIRD) {
      const c = selectChain(all, "gamma", d);
      expect(c.dumps.every((x) => x.host === "gamma" && x.disk === d)).toBe(true);
      expect(c.dumps.map((x) => x.level)).toEqual([0, 1, 2]);
    }
  });

  it("errors name what is missing: no dumps, no L0 yet, a gap, an unreadable part, a missing tape, bad --at", () => {
    expect(() => selectChain(all, "alpha", "/nope")).toThrow('no dumps of alpha:"/nope" in the catalog');
    expect(() => selectChain(all, "beta", "/", "20261110235959")).toThrow(/^no level 0 of beta:"\/" at 20261110235959/);
    const gap = [dump("h", "/d", "20261101000000", 0), dump("h", "/d", "20261103000000", 2)];
    expect(() => selectChain(gap, "h", "/d")).toThrow('chain of h:"/d" has a gap: no level 1 between h:"/d" L0 20261101000000 and h:"/d" L2 20261103000000');
    const broken = [
      dump("h", "/d", "20261101000000", 0, { problem: "part 3 of 5 of h:\"/d\" L0 20261101000000 is missing" }),
      dump("h", "/d", "20261102000000", 1),
    ];
    expect(() => selectChain(broken, "h", "/d")).toThrow(/needs h:"\/d" L0 20261101000000, which cannot be read: part 3 of 5/);
    const lost = [dump("h", "/d", "20261101000000", 0), dump("h", "/d", "20261102000000", 1, { problem: "tape T-02 (part 1 of ...) is not in any slot of /v" })];
    expect(() => selectChain(lost, "h", "/d")).toThrow(/tape T-02/);
    expect(() => selectChain(all, "alpha", "/", "yesterday")).toThrow(ChainError);
  });

  it("failed or partial dumps are skipped; 8-digit (2.x) datestamps order with 14-digit ones", () => {
    const mixed = [
      dump("old", "/boot", "20060123", 0),
      dump("old", "/boot", "20060124", 1),
      dump("old", "/boot", "20060124120000", 2),
      dump("old", "/boot", "20060125000000", 2, { status: "partial" }),
    ];
    expect(levels(selectChain(mixed, "old", "/boot"))).toEqual(["L0@20060123", "L1@20060124", "L2@20060124120000"]);
    expect(normaliseDatestamp("2006-01-24")).toBe("20060124235959");
  });
});
