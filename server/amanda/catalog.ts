/**
 * Builds the catalog of dumps from the three sources: trace logs + tapelist (+ the
 * holding disk, which logs do not locate), a scan of media headers alone, and
 * `amadmin CONFIG find` as a cross-check. Records are `CatalogDump`s keyed by
 * (host, disk, datestamp, level).
 */
import { readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { AmandaSetup } from "./conf.ts";
import { parseTapelist } from "./conf.ts";
import { type DumpHeader, compressionOf, parseHeader } from "./header.ts";
import { emptyFacts, type LogFacts, parseTraceLog, type TapedFact } from "./logs.ts";
import { type MediaScan, SCAN_CONCURRENCY, type ScannedHolding, type ScannedPart, type VtapeSlot, listVtapeSlots, mapLimit, problemText, readHeader, scanMedia } from "./media.ts";
import { type CatalogDump, type DumpPart, dumpId, dumpKey, dumpName, programOf } from "./model.ts";
import { sanitiseFilename } from "./quote.ts";

export interface CatalogResult {
  dumps: CatalogDump[];
  /** Things a person should know: unreadable files, log lines skipped, sources disagreeing. */
  warnings: string[];
}

function sortDumps(d: CatalogDump[]): CatalogDump[] {
  return d.sort(
    (a, b) =>
      a.host.localeCompare(b.host) ||
      a.disk.localeCompare(b.disk) ||
      pad14(a.datestamp).localeCompare(pad14(b.datestamp)) ||
      a.level - b.level,
  );
}

/** 8-digit (2.x) datestamps compare as the start of that day. */
export function pad14(ds: string): string {
  return ds.length === 8 ? `${ds}000000` : ds;
}

function fromHeader(amanda: string, h: DumpHeader): Omit<CatalogDump, "location" | "sizeBytes" | "problem" | "sources" | "status"> {
  const c = compressionOf(h);
  return {
    id: dumpId(h),
    amanda,
    host: h.host,
    disk: h.disk,
    level: h.level,
    datestamp: h.datestamp,
    program: programOf(h.program, h.application),
    compression: c.compression,
    compressProgram: c.customProgram,
    encrypted: h.encrypted,
    encryption: !h.encrypted ? null : h.serverEncrypt !== null || h.clientEncrypt === null ? { side: "server", program: h.serverEncrypt } : { side: "client", program: h.clientEncrypt },
    origKb: h.origSizeKb,
    crc: { native: h.nativeCrc, client: h.clientCrc, server: h.serverCrc },
  };
}

function holdingRecord(amanda: string, s: ScannedHolding, source: "log" | "scan"): CatalogDump {
  return {
    ...fromHeader(amanda, s.header),
    sizeBytes: s.chunks.reduce((a, c) => a + c.sizeBytes, 0),
    location: {
      kind: "holding",
      label: "HOLDING",
      fileNo: 0,
      path: s.chunks[0]!.path,
      parts: s.chunks.map((c, i) => ({ partNo: i + 1, label: "HOLDING", fileNo: 0, path: c.path, sizeBytes: c.sizeBytes })),
    },
    status: s.header.partial ? "partial" : "ok",
    problem: s.problem,
    sources: [source],
  };
}

/** Catalog from media headers alone: for when the Amanda server (logs, tapelist) is lost. */
export function catalogFromScan(amanda: string, scan: MediaScan): CatalogResult {
  const warnings = scan.problems.map(problemText);
  const groups = new Map<string, ScannedPart[]>();
  for (const p of scan.parts) {
    const k = dumpKey(p.header);
    const g = groups.get(k) ?? [];
    g.push(p);
    groups.set(k, g);
  }
  const dumps: CatalogDump[] = [];
  for (const g of groups.values()) {
    // The same dump on two volumes (amvault, re-flush): one copy of each part number is kept.
    const parts = [...new Map(g.map((p) => [p.header.partNo ?? 1, p])).values()].sort(
      (a, b) => (a.header.partNo ?? 1) - (b.header.partNo ?? 1),
    );
    const first = parts[0]!;
    const h = first.header;
    const size = parts.reduce((a, p) => a + p.sizeBytes, 0);
    let problem: string | null = null;
    const missing = parts.map((p, i) => [p.header.partNo ?? 1, i + 1]).find(([n, want]) => n !== want);
    const expected = h.serverCrc?.size ?? h.clientCrc?.size ?? null;
    if (missing) problem = `part ${missing[1]} of ${dumpName(h)} is missing from the scanned volumes`;
    else if (h.totalParts && h.totalParts > 0 && parts.length < h.totalParts)
      problem = `part ${parts.length + 1} of ${h.totalParts} of ${dumpName(h)} is missing from the scanned volumes`;
    else if (expected !== null && size < expected)
      problem = `${dumpName(h)}: the scanned parts hold ${size} of ${expected} bytes: part ${parts.length + 1} is missing or a part is truncated`;
    dumps.push({
      ...fromHeader(amanda, h),
      sizeBytes: expected ?? size,
      location: {
        kind: "vtape",
        label: first.label,
        fileNo: first.fileNo,
        ...(first.slot !== null ? { slot: first.slot } : {}),
        path: first.slotDir,
        parts: parts.map((p) => ({ partNo: p.header.partNo ?? 1, label: p.label, fileNo: p.fileNo, path: p.path, sizeBytes: p.sizeBytes })),
      },
      status: h.partial ? "partial" : "ok",
      problem,
      sources: ["scan"],
    });
  }
  const ids = new Set(dumps.map((d) => d.id));
  for (const hd of scan.holding) {
    const rec = holdingRecord(amanda, hd, "scan");
    if (!ids.has(rec.id)) dumps.push(rec);
  }
  return { dumps: sortDumps(dumps), warnings };
}

/** Lets the event loop answer what waits (DHCP, TFTP, HTTP) between two pieces of synchronous work. */
export const yieldToLoop = () => new Promise<void>((r) => setImmediate(r));

/** True when `path` exists (a directory, file or anything else). */
const exists = (path: string) => stat(path).then(() => true, () => false);

/** Reads every trace log `log.<datestamp>.<seq>` in the log dir (not `oldlog/`: those volumes were reused). */
export async function readLogFacts(logdir: string): Promise<LogFacts> {
  const facts = emptyFacts();
  let names: string[];
  try {
    names = await readdir(logdir);
  } catch (err) {
    facts.skipped.push(`${logdir}: cannot list the log dir (${(err as NodeJS.ErrnoException).code})`);
    return facts;
  }
  const logs = names.filter((n) => /^log\.\d{8}(\d{6})?\.\d+$/.test(n)).sort((a, b) => {
    const [, da, sa] = /^log\.(\d+)\.(\d+)$/.exec(a)!;
    const [, db, sb] = /^log\.(\d+)\.(\d+)$/.exec(b)!;
    return pad14(da!).localeCompare(pad14(db!)) || Number(sa) - Number(sb);
  });
  for (const n of logs) parseTraceLog(await readFile(join(logdir, n), "utf8"), join(logdir, n), facts);
  return facts;
}

/** The dump's FILE header saved in the index (`<indexdir>/<host>/<disk>/<ds>_<lv>.header`), if any. */
async function indexHeader(setup: AmandaSetup, d: { host: string; disk: string; datestamp: string; level: number }): Promise<DumpHeader | null> {
  if (!setup.indexdir) return null;
  const f = join(setup.indexdir, sanitiseFilename(d.host), sanitiseFilename(d.disk), `${d.datestamp}_${d.level}.header`);
  try {
    const h = parseHeader(await readFile(f), f, { allowShort: true });
    return h.type === "FILE" || h.type === "SPLIT_FILE" ? h : null;
  } catch {
    return null;
  }
}

/**
 * Catalog from the config's trace logs and tapelist; holding-disk dumps from the holding
 * dirs (logs do not say where those are). Media headers fill in compression and program
 * when the index has no header.
 */
export async function catalogFromLogs(setup: AmandaSetup, onProgress?: (msg: string) => void): Promise<CatalogResult> {
  const warnings: string[] = [];
  const facts = await readLogFacts(setup.logdir);
  warnings.push(...facts.skipped);
  onProgress?.(`read trace logs in ${setup.logdir}: ${facts.taped.size} taped dumps, ${facts.dumper.size} dumper results`);
  let tapelist: Map<string, string> | null = null;
  try {
    tapelist = new Map(parseTapelist(await readFile(setup.tapelist, "utf8")).map((e) => [e.label, e.datestamp]));
  } catch (err) {
    warnings.push(`${setup.tapelist}: cannot read the tapelist (${(err as NodeJS.ErrnoException).code}); trusting the logs alone`);
  }
  const problems: MediaScan["problems"] = [];
  const slots = setup.vtapeRoot ? await listVtapeSlotsSafe(setup.vtapeRoot, problems) : [];
  warnings.push(...problems.map(problemText));
  const byLabel = new Map(slots.filter((s) => s.label).map((s) => [s.label!, s]));
  const taped: TapedFact[] = [];
  for (const t of facts.taped.values()) {
    if (t.status === "incomplete" && t.parts.length === 0) continue;
    // A label gone from the tapelist, relabelled (datestamp 0) or written by a later run (the
    // tapelist's datestamp is not the one this log wrote it with) was reused: its dumps are gone.
    const reused = (p: TapedFact["parts"][number]) => {
      const ds = tapelist!.get(p.label);
      return ds === undefined || ds === "0" || (p.volumeDatestamp !== null && ds !== p.volumeDatestamp);
    };
    if (tapelist && t.parts.some(reused)) continue;
    taped.push(t);
  }
  const dumps = await mapLimit(taped, SCAN_CONCURRENCY, (t) => tapedRecord(setup, t, byLabel, facts));
  const ids = new Set(dumps.map((d) => d.id));
  const holdingExists = await Promise.all(setup.holdingDirs.map(exists));
  const holding = await scanMedia(setup.holdingDirs.filter((_, i) => holdingExists[i]));
  warnings.push(...holding.problems.map(problemText));
  for (const hd of holding.holding) {
    const rec = holdingRecord(setup.name, hd, "log");
    const df = facts.dumper.get(dumpKey(rec));
    if (df) rec.crc = { native: df.nativeCrc ?? rec.crc.native, client: df.clientCrc ?? rec.crc.client, server: rec.crc.server ?? df.chunkerCrc };
    // Taped and still on holding (flush pending delete): the tape copy is the catalogued one.
    if (!ids.has(rec.id)) dumps.push(rec);
  }
  return { dumps: sortDumps(dumps), warnings };
}

async function listVtapeSlotsSafe(root: string, problems: MediaScan["problems"]) {
  if (!(await exists(root))) {
    problems.push({ path: root, message: "vtape root does not exist" });
    return [];
  }
  return listVtapeSlots(root, problems);
}

async function tapedRecord(
  setup: AmandaSetup,
  t: TapedFact,
  byLabel: Map<string, VtapeSlot>,
  facts: LogFacts,
): Promise<CatalogDump> {
  const df = facts.dumper.get(dumpKey(t));
  const parts: DumpPart[] = [...t.parts]
    .sort((a, b) => a.partNo - b.partNo)
    .map((p) => {
      const slot = byLabel.get(p.label);
      const name = slot?.files.get(p.fileNo);
      return {
        partNo: p.partNo,
        label: p.label,
        fileNo: p.fileNo,
        ...(slot && name ? { path: join(slot.dir, name) } : {}),
        ...(p.sizeBytes !== null ? { sizeBytes: p.sizeBytes } : {}),
      };
    });
  const first = parts[0]!;
  const firstSlot = byLabel.get(first.label);
  const kind = setup.vtapeRoot ? "vtape" : "tape";
  let problem: string | null = null;
  const nparts = t.nparts ?? parts.length;
  const gap = parts.map((p, i) => [p.partNo, i + 1]).find(([n, want]) => n !== want);
  if (t.status === "incomplete") problem = `${dumpName(t)} was never finished on tape (no DONE line)`;
  else if (gap || parts.length < nparts) problem = `part ${gap ? gap[1] : parts.length + 1} of ${nparts} of ${dumpName(t)} is not in the logs`;
  else if (kind === "vtape") {
    const lost = parts.find((p) => !byLabel.has(p.label));
    const noFile = parts.find((p) => byLabel.has(p.label) && !p.path);
    if (lost) problem = `tape ${lost.label} (part ${lost.partNo} of ${dumpName(t)}) is not in any slot of ${setup.vtapeRoot}`;
    else if (noFile) problem = `part ${noFile.partNo} of ${dumpName(t)} (file ${noFile.fileNo} of ${noFile.label}) is missing`;
  }
  // Program and compression are not in the logs: the index keeps the header, else the first part's header.
  let h = await indexHeader(setup, t);
  if (!h && first.path) {
    try {
      const mh = await readHeader(first.path);
      if (mh.type === "SPLIT_FILE" || mh.type === "FILE") h = mh;
    } catch {
      /* reported when streamed */
    }
  }
  const base = h
    ? fromHeader(setup.name, h)
    : {
        id: dumpId(t),
        amanda: setup.name,
        host: t.host,
        disk: t.disk,
        level: t.level,
        datestamp: t.datestamp,
        program: "unknown",
        compression: "unknown" as const,
        compressProgram: null,
        encrypted: false,
        encryption: null,
        origKb: null,
        crc: { native: null, client: null, server: null },
      };
  return {
    ...base,
    origKb: t.origKb ?? df?.origKb ?? base.origKb,
    crc: {
      native: t.nativeCrc ?? df?.nativeCrc ?? base.crc.native,
      client: t.clientCrc ?? df?.clientCrc ?? base.crc.client,
      server: t.serverCrc ?? base.crc.server,
    },
    sizeBytes: t.sizeBytes ?? (parts.every((p) => p.sizeBytes !== undefined) ? parts.reduce((a, p) => a + (p.sizeBytes ?? 0), 0) : null),
    location: {
      kind,
      label: first.label,
      fileNo: first.fileNo,
      ...(firstSlot?.slot != null ? { slot: firstSlot.slot } : {}),
      ...(firstSlot ? { path: firstSlot.dir } : {}),
      parts,
    },
    status: t.status === "partial" ? "partial" : "ok",
    problem,
    sources: ["log"],
  };
}

/**
 * The full catalog of a config: logs first; dumps only the media know (logs lost or
 * trimmed) are added from a scan of the vtapes; disagreements become warnings.
 */
export async function buildCatalog(setup: AmandaSetup, onProgress?: (msg: string) => void): Promise<CatalogResult> {
  const fromLogs = await catalogFromLogs(setup, onProgress);
  const warnings = [...fromLogs.warnings];
  const byId = new Map(fromLogs.dumps.map((d) => [d.id, d]));
  if (setup.vtapeRoot && (await exists(setup.vtapeRoot))) {
    const media = await scanMedia([setup.vtapeRoot], onProgress);
    await yieldToLoop(); // the sums over thousands of parts run in a turn of their own
    const scan = catalogFromScan(setup.name, media);
    await yieldToLoop();
    for (const w of scan.warnings) if (!warnings.includes(w)) warnings.push(w);
    for (const s of scan.dumps) {
      const l = byId.get(s.id);
      if (!l) {
        byId.set(s.id, s);
        continue;
      }
      l.sources = [...new Set([...l.sources, "scan" as const])];
      if (l.location.kind === "vtape" && (l.location.label !== s.location.label || l.location.fileNo !== s.location.fileNo))
        warnings.push(
          `${dumpName(l)}: the logs say ${l.location.label} file ${l.location.fileNo}, the media say ${s.location.label} file ${s.location.fileNo}`,
        );
    }
  }
  return { dumps: sortDumps([...byId.values()]), warnings };
}
