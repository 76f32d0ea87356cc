/**
 * Synthetic Amanda media for unit tests: headers with the exact text Amanda 3.5 writes
 * (as seen in the reference lab), vtape slots, holding chunks, trace logs and a tapelist,
 * built from payload bytes the test chooses. Not a mock of Amanda's behaviour: these are
 * the on-disk formats, so the reader is exercised on real layouts.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Crc32c } from "../../../server/amanda/crc32c.ts";
import { buildHeader } from "../../../server/amanda/header.ts";
import { quote, sanitiseFilename } from "../../../server/amanda/quote.ts";

export const crcOf = (b: Buffer) => `${new Crc32c().update(b).hex()}:${b.length}`;

export interface SynthDump {
  host: string;
  disk: string;
  datestamp: string;
  level: number;
  data: Buffer;
  /** .gz etc; the data is then taken as already compressed and `native` must be given. */
  comp?: string;
  native?: Buffer;
}

export function dumpLine(type: string, d: SynthDump, part?: string): string {
  return `AMANDA: ${type} ${d.datestamp} ${d.host} ${quote(d.disk)} ${part ? ` part ${part} ` : ""} lev ${d.level} comp ${d.comp ?? "N"} program APPLICATION`;
}

export function dumpHeaderText(type: string, d: SynthDump, opts: { part?: string; cont?: string; crcs?: boolean } = {}): string {
  const native = d.native ?? d.data;
  const lines = [dumpLine(type, d, opts.part)];
  if (opts.cont) lines.push(`CONT_FILENAME=${opts.cont}`);
  lines.push("APPLICATION=amgtar");
  if (opts.crcs !== false && type !== "CONT_FILE") {
    lines.push(`ORIGSIZE=${Math.ceil(native.length / 1024)}`, `NATIVE-CRC=${crcOf(native)}`, `CLIENT-CRC=${crcOf(d.data)}`, `SERVER-CRC=${crcOf(d.data)}`);
  }
  lines.push("DLE=<<ENDDLE", "<dle>", "  <program>APPLICATION</program>", "</dle>", "ENDDLE");
  lines.push("To restore, position tape at start of file and run:", "\tdd if=<tape> bs=32k skip=1 | /usr/lib/amanda/application/amgtar restore [./file-to-restore]+ ");
  return `${lines.join("\n")}\n\f\n`;
}

export interface SynthVolume {
  label: string;
  slot: number;
  datestamp: string;
  /** Dumps in file order; each split into parts of `partSize`. */
  dumps: SynthDump[];
}

export interface SynthLab {
  root: string;
  configDir: string;
  vtapes: string;
  holding: string;
  logdir: string;
}

/**
 * Writes volumes, holding dumps, trace logs and tapelist under `root`; returns the paths.
 * `partSize` bytes of payload per vtape part, `chunkSize` per holding chunk.
 */
export function writeSynthLab(
  root: string,
  volumes: SynthVolume[],
  holding: SynthDump[],
  opts: { partSize?: number; chunkSize?: number } = {},
): SynthLab {
  const partSize = opts.partSize ?? 4096;
  const chunkSize = opts.chunkSize ?? 4096;
  const lab: SynthLab = {
    root,
    configDir: join(root, "config", "synth"),
    vtapes: join(root, "vtapes"),
    holding: join(root, "holding"),
    logdir: join(root, "log"),
  };
  for (const d of [lab.configDir, lab.vtapes, lab.holding, lab.logdir]) mkdirSync(d, { recursive: true });
  writeFileSync(
    join(lab.configDir, "amanda.conf"),
    [
      'org "synth"',
      'dumpuser "backup"',
      `logdir "${lab.logdir}"`,
      'tapelist "tapelist"',
      `infofile "${root}/curinfo"`,
      "define changer vt {",
      `    tpchanger "chg-disk:${lab.vtapes}"   # a comment`,
      "}",
      'tpchanger "vt"',
      "holdingdisk hd1 {",
      `    directory "${lab.holding}"`,
      "    chunksize 64 kbytes",
      "}",
    ].join("\n"),
  );
  const tapelist: string[] = [];
  const logs = new Map<string, string[]>();
  const logOf = (ds: string) => {
    if (!logs.has(ds)) logs.set(ds, [`START planner date ${ds}`, `START driver date ${ds}`]);
    return logs.get(ds)!;
  };
  for (const v of volumes) {
    const dir = join(lab.vtapes, `slot${v.slot}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `00000.${v.label}`), buildHeader(`AMANDA: TAPESTART DATE ${v.datestamp} TAPE ${v.label}\n\f\n`));
    tapelist.unshift(`${v.datestamp} ${v.label} reuse BLOCKSIZE:32 POOL:synth STORAGE:synth CONFIG:synth`);
    const log = logOf(v.datestamp);
    log.push(`START taper datestamp ${v.datestamp} "ST:synth" "POOL:synth" label ${v.label} tape 1`);
    let fileNo = 1;
    for (const d of v.dumps) {
      const native = d.native ?? d.data;
      logOf(d.datestamp).push(
        `SUCCESS dumper ${d.host} ${quote(d.disk)} ${d.datestamp} ${d.level} ${crcOf(native)} ${crcOf(d.data)} [sec 0.1 kb ${Math.ceil(d.data.length / 1024)} kps 1 orig-kb ${Math.ceil(native.length / 1024)}]`,
      );
      const nparts = Math.max(1, Math.ceil(d.data.length / partSize));
      for (let p = 0; p < nparts; p++) {
        const payload = d.data.subarray(p * partSize, (p + 1) * partSize);
        const name = `${String(fileNo).padStart(5, "0")}.${sanitiseFilename(d.host)}.${sanitiseFilename(d.disk)}.${d.level}`;
        writeFileSync(join(dir, name), Buffer.concat([buildHeader(dumpHeaderText("SPLIT_FILE", d, { part: `${p + 1}/-1` })), payload]));
        log.push(
          `PART taper "ST:synth" "POOL:synth" ${v.label} ${fileNo} ${d.host} ${quote(d.disk)} ${d.datestamp} ${p + 1}/-1 ${d.level} [sec 0.001 bytes ${payload.length} kps 1 orig-kb ${Math.ceil(native.length / 1024)}]`,
        );
        fileNo++;
      }
      log.push(
        `DONE taper "ST:synth" "POOL:synth" ${d.host} ${quote(d.disk)} ${d.datestamp} ${nparts} ${d.level} ${crcOf(native)} ${crcOf(d.data)} ${crcOf(d.data)} [sec 0.1 bytes ${d.data.length} kps 1 orig-kb ${Math.ceil(native.length / 1024)}]`,
      );
    }
  }
  for (const d of holding) {
    const dir = join(lab.holding, d.datestamp);
    mkdirSync(dir, { recursive: true });
    const base = join(dir, `${d.host}.${sanitiseFilename(d.disk)}.${d.level}`);
    const n = Math.max(1, Math.ceil(d.data.length / chunkSize));
    for (let c = 0; c < n; c++) {
      const path = c === 0 ? base : `${base}.${c}`;
      const cont = c + 1 < n ? `${base}.${c + 1}` : undefined;
      const text = dumpHeaderText(c === 0 ? "FILE" : "CONT_FILE", d, { cont });
      writeFileSync(path, Buffer.concat([buildHeader(text), d.data.subarray(c * chunkSize, (c + 1) * chunkSize)]));
    }
    const native = d.native ?? d.data;
    logOf(d.datestamp).push(
      `SUCCESS dumper ${d.host} ${quote(d.disk)} ${d.datestamp} ${d.level} ${crcOf(native)} ${crcOf(d.data)} [sec 0.1 kb 1 kps 1 orig-kb 1]`,
    );
  }
  writeFileSync(join(lab.configDir, "tapelist"), `${tapelist.join("\n")}\n`);
  for (const [ds, lines] of logs) writeFileSync(join(lab.logdir, `log.${ds}.0`), `${lines.join("\n")}\n`);
  return lab;
}

/** Deterministic pseudo-random bytes (so part boundaries cut through varied data). */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
