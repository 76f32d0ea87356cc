/**
 * Pure parser of Amanda trace logs (`log.<datestamp>.<seq>`): what the dumpers produced
 * (SUCCESS/STRANGE dumper, with the CRCs of 3.4+) and where the taper put it (3.x PART/DONE
 * with label and file numbers; 2.6 PART/DONE without storage/pool; 2.x `SUCCESS taper` and
 * `CHUNK`/`CHUNKSUCCESS`, whose file numbers are counted from `START taper` as 2.x find.c does).
 * PART/DONE are keyed by the datestamp written in the line: amflush tapes a dump under its
 * own datestamp from a later log.
 */
import { type Crc, parseCrc } from "./header.ts";
import { dumpKey } from "./model.ts";
import { splitQuoted } from "./quote.ts";

export interface DumperFact {
  host: string;
  disk: string;
  datestamp: string;
  level: number;
  nativeCrc: Crc | null;
  clientCrc: Crc | null;
  origKb: number | null;
  /** Bytes as written to the holding disk (chunker), when logged. */
  chunkerCrc: Crc | null;
}

export interface TapedPart {
  partNo: number;
  label: string;
  fileNo: number;
  sizeBytes: number | null;
  /** Datestamp of the taper run that wrote the volume (START taper), as the tapelist records it. */
  volumeDatestamp: string | null;
}

export interface TapedFact {
  host: string;
  disk: string;
  datestamp: string;
  level: number;
  parts: TapedPart[];
  /** From DONE (or 1 for a 2.x SUCCESS taper line); null if the run never finished the dump. */
  nparts: number | null;
  status: "ok" | "partial" | "incomplete";
  nativeCrc: Crc | null;
  clientCrc: Crc | null;
  serverCrc: Crc | null;
  sizeBytes: number | null;
  origKb: number | null;
}

export interface LogFacts {
  dumper: Map<string, DumperFact>;
  taped: Map<string, TapedFact>;
  /** Lines the parser could not read: "file:line: text" (reported, never fatal). */
  skipped: string[];
}

export function emptyFacts(): LogFacts {
  return { dumper: new Map(), taped: new Map(), skipped: [] };
}

const DS = /^(\d{8}|\d{14})$/;

/** `[sec 0.1 bytes 8664 kps 80 orig-kb 170]` → {sec: 0.1, bytes: 8664, ...}. */
function stats(tokens: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  const s = tokens.join(" ");
  const m = /\[([^\]]*)\]/.exec(s);
  if (!m) return out;
  const w = m[1]!.trim().split(/\s+/);
  for (let i = 0; i + 1 < w.length; i += 2) out[w[i]!] = Number(w[i + 1]);
  return out;
}

/**
 * Adds the facts of one trace log to `facts`. `file` names the log in messages; its
 * datestamp is the fallback for very old lines without one.
 */
export function parseTraceLog(text: string, file: string, facts: LogFacts = emptyFacts()): LogFacts {
  const nameDs = /log\.(\d{8}(?:\d{6})?)\.\d+$/.exec(file)?.[1] ?? "";
  let runDs = nameDs;
  // 2.x: the taper's current volume and file counter (file 0 is the label).
  let taperLabel = "";
  let taperDs: string | null = null;
  let fileNo = 0;
  const lines = text.split("\n");
  for (let li = 0; li < lines.length; li++) {
    const line = lines[li]!;
    if (!line || line.startsWith("  ")) continue; // continuation lines of FAIL/STRANGE messages
    const t = splitQuoted(line);
    const [type, prog] = t;
    if (!type || !prog) continue;
    const where = `${file}:${li + 1}`;
    try {
      if (type === "START" && (t[2] === "date" || t[2] === "datestamp")) {
        if (prog !== "taper" && t[3]) runDs = t[3];
        if (prog === "taper") {
          const li2 = t.indexOf("label");
          if (li2 > 0 && t[li2 + 1]) {
            taperLabel = t[li2 + 1]!;
            taperDs = t[3] ?? null;
            fileNo = 0;
          }
        }
        continue;
      }
      if ((type === "SUCCESS" || type === "STRANGE") && prog === "dumper") {
        addDumper(t.slice(2), runDs, facts, where);
        continue;
      }
      if (type === "SUCCESS" && prog === "chunker") {
        const r = t.slice(2);
        const k = dumpKey({ host: r[0]!, disk: r[1]!, datestamp: r[2]!, level: Number(r[3]) });
        const d = facts.dumper.get(k);
        if (d) d.chunkerCrc = parseCrc(r[4] ?? "");
        continue;
      }
      if (prog !== "taper") continue;
      if (type === "PART" || type === "PARTPARTIAL") {
        let r = t.slice(2);
        if (r[0]?.startsWith("ST:")) r = r.slice(2);
        // label fileno host disk datestamp n/N level [...]
        const [label, fno, host, disk, ds, part, lvl] = r;
        const pm = /^(\d+)\/(-?\d+)$/.exec(part ?? "");
        if (!label || !host || disk === undefined || !ds || !DS.test(ds) || !pm || !/^\d+$/.test(fno ?? "") || !/^\d+$/.test(lvl ?? ""))
          throw new Error("PART line");
        const f = tapedFor(facts, host, disk, ds, Number(lvl));
        // The first complete copy wins; part 1 again after a failed attempt starts over.
        if (f.status === "ok") continue;
        if (Number(pm[1]) === 1) f.parts = [];
        if (type === "PART")
          f.parts.push({ partNo: Number(pm[1]), label, fileNo: Number(fno), sizeBytes: stats(r).bytes ?? null, volumeDatestamp: label === taperLabel ? taperDs : null });
        continue;
      }
      if (type === "DONE" || type === "PARTIAL") {
        let r = t.slice(2);
        if (r[0]?.startsWith("ST:")) r = r.slice(2);
        // host disk datestamp nparts level [native client server] [...]
        const [host, disk, ds, np, lvl] = r;
        if (!host || disk === undefined || !ds || !DS.test(ds) || !/^\d+$/.test(np ?? "") || !/^\d+$/.test(lvl ?? ""))
          throw new Error(`${type} line`);
        const f = tapedFor(facts, host, disk, ds, Number(lvl));
        if (f.status === "ok") continue;
        f.nparts = Number(np);
        f.status = type === "DONE" ? "ok" : "partial";
        f.nativeCrc = parseCrc(r[5] ?? "");
        f.clientCrc = parseCrc(r[6] ?? "");
        f.serverCrc = parseCrc(r[7] ?? "");
        const st = stats(r);
        f.sizeBytes = st.bytes ?? (st.kb !== undefined ? st.kb * 1024 : null);
        f.origKb = st["orig-kb"] ?? null;
        continue;
      }
      // Amanda 2.x taper: one tape file per SUCCESS/CHUNK line, numbered from START taper.
      if (type === "SUCCESS" || type === "CHUNK" || (type === "PARTIAL" && !t[2]?.startsWith("ST:"))) {
        const r = t.slice(2);
        const host = r[0]!;
        const disk = r[1]!;
        let ds = r[2]!;
        let rest = r.slice(3);
        if (!DS.test(ds)) {
          // very old logs: no datestamp (find.c: a field shorter than 3 chars is the level)
          ds = runDs;
          rest = r.slice(2);
        }
        fileNo++;
        if (type === "CHUNK") {
          const chunk = Number(rest[0]);
          const f = tapedFor(facts, host, disk, ds, Number(rest[1]));
          f.parts.push({ partNo: chunk, label: taperLabel, fileNo, sizeBytes: null, volumeDatestamp: taperDs });
        } else {
          const f = tapedFor(facts, host, disk, ds, Number(rest[0]));
          f.parts.push({ partNo: 1, label: taperLabel, fileNo, sizeBytes: null, volumeDatestamp: taperDs });
          f.nparts = 1;
          f.status = "ok";
          const st = stats(rest);
          f.sizeBytes = st.kb !== undefined ? st.kb * 1024 : null;
        }
        continue;
      }
      if (type === "CHUNKSUCCESS") {
        const r = t.slice(2);
        const f = tapedFor(facts, r[0]!, r[1]!, r[2]!, Number(r[3]));
        f.nparts = f.parts.length;
        f.status = "ok";
      }
    } catch (err) {
      facts.skipped.push(`${where}: cannot read ${(err as Error).message}: ${line.slice(0, 200)}`);
    }
  }
  return facts;
}

function addDumper(r: string[], runDs: string, facts: LogFacts, where: string): void {
  // host disk datestamp level [native client] [sec ...]; very old: host disk level [...]
  const [host, disk] = r;
  let ds = r[2] ?? "";
  let i = 3;
  if (!DS.test(ds)) {
    ds = runDs;
    i = 2;
  }
  const level = Number(r[i]);
  if (!host || disk === undefined || !Number.isInteger(level)) throw new Error(`SUCCESS dumper line (${where})`);
  const nativeCrc = parseCrc(r[i + 1] ?? "");
  const clientCrc = parseCrc(r[i + 2] ?? "");
  facts.dumper.set(dumpKey({ host, disk, datestamp: ds, level }), {
    host,
    disk,
    datestamp: ds,
    level,
    nativeCrc,
    clientCrc,
    origKb: stats(r)["orig-kb"] ?? null,
    chunkerCrc: null,
  });
}

function tapedFor(facts: LogFacts, host: string, disk: string, datestamp: string, level: number): TapedFact {
  const k = dumpKey({ host, disk, datestamp, level });
  let f = facts.taped.get(k);
  if (!f) {
    f = {
      host,
      disk,
      datestamp,
      level,
      parts: [],
      nparts: null,
      status: "incomplete",
      nativeCrc: null,
      clientCrc: null,
      serverCrc: null,
      sizeBytes: null,
      origKb: null,
    };
    facts.taped.set(k, f);
  }
  return f;
}
