import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { AMANDA_LAB_VERSION, type AmandaLab, amandaLab } from "../../helpers/amanda-lab.ts";

export interface LabDump {
  id: string;
  level: number;
  compression: "none" | "gzip";
  bytes: Buffer;
}

const CACHE = process.env.LIFEBOAT_RESCUE_CACHE ?? "/var/cache/lifeboat/rescue-debs";

/**
 * The restore chain of one Amanda lab DLE (runs 1..3: levels 0, 1, 2) as the raw streams
 * Lifeboat serves: `amfetchdump -p -l` (headers stripped, compressed as stored). Kept in the
 * cache per lab build, so amfetchdump runs once per machine (the lab's /etc/amanda link is
 * shared with other test files running at the same time).
 */
export async function labChain(lab: AmandaLab, tag: "plain" | "gz"): Promise<LabDump[]> {
  const dle = lab.dles.find((d) => d.tag === tag)!;
  const dir = join(CACHE, `lab-dumps-v${AMANDA_LAB_VERSION}-${lab.runs.map((r) => r.datestamp).join("-")}`);
  mkdirSync(dir, { recursive: true });
  const out: LabDump[] = [];
  for (const run of lab.runs) {
    const id = `lab-${tag}-${run.run}`;
    const file = join(dir, id);
    if (!existsSync(file)) {
      const r = await lab.amanda(
        ["amfetchdump", "-a", "-p", "-l", "--exact-match", lab.config, dle.host, dle.disk, run.datestamp, String(run.level)],
        { encoding: "buffer" },
      );
      if (r.exitCode !== 0) throw new Error(`amfetchdump ${tag} run ${run.run}: exit ${r.exitCode}: ${String(r.stderr)}`);
      writeFileSync(`${file}.tmp`, r.stdout as unknown as Buffer);
      renameSync(`${file}.tmp`, file);
    }
    out.push({ id, level: run.level, compression: dle.compressed ? "gzip" : "none", bytes: readFileSync(file) });
  }
  return out;
}

/**
 * The Amanda lab, and a release that removes its /etc/amanda link only if this file made it
 * (another test file running at the same time may be using it).
 */
export async function sharedLab(): Promise<{ lab: AmandaLab; release: () => void }> {
  const linked = existsSync(`/etc/amanda/lifeboat-lab-v${AMANDA_LAB_VERSION}`);
  const lab = await amandaLab();
  return { lab, release: () => (linked ? undefined : lab.release()) };
}
