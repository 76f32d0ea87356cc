import type { AmandaLab } from "../../helpers/amanda-lab.ts";

export interface LabDump {
  id: string;
  level: number;
  compression: "none" | "gzip";
  bytes: Buffer;
}

/**
 * The restore chain of one Amanda lab DLE (runs 1..3: levels 0, 1, 2) as the raw streams
 * Lifeboat serves: `amfetchdump -p -l` (headers stripped, compressed as stored).
 */
export async function labChain(lab: AmandaLab, tag: "plain" | "gz"): Promise<LabDump[]> {
  const dle = lab.dles.find((d) => d.tag === tag)!;
  const out: LabDump[] = [];
  for (const run of lab.runs) {
    const r = await lab.amanda(
      ["amfetchdump", "-a", "-p", "-l", "--exact-match", lab.config, dle.host, dle.disk, run.datestamp, String(run.level)],
      { encoding: "buffer" },
    );
    if (r.exitCode !== 0) throw new Error(`amfetchdump ${tag} run ${run.run}: exit ${r.exitCode}: ${String(r.stderr)}`);
    out.push({ id: `lab-${tag}-${run.run}`, level: run.level, compression: dle.compressed ? "gzip" : "none", bytes: r.stdout as unknown as Buffer });
  }
  return out;
}
