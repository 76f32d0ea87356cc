/**
 * `amadmin CONFIG find`, the third catalog source, run through execa when Amanda is
 * installed; its parser is pure. Server commands refuse root, so as root they run as
 * the config's dump user (runuser).
 */
import { execa } from "execa";
import { UserError } from "../errors.ts";
import { splitQuoted } from "./quote.ts";

export interface FindRow {
  datestamp: string;
  host: string;
  disk: string;
  level: number;
  storage: string;
  pool: string;
  /** Volume label, or the first chunk's path for holding rows. */
  label: string;
  fileNo: number;
  partNo: number;
  nparts: number;
  status: string;
}

/**
 * Parses `amadmin find` output. Dates print as `YYYY-MM-DD HH:MM:SS` (or `YYYY-MM-DD` for
 * 8-digit datestamps); quoted disk names hold spaces, so fields are read with Amanda's
 * quoting rules rather than by column.
 */
export function parseAmadminFind(text: string): FindRow[] {
  const rows: FindRow[] = [];
  for (const line of text.split("\n")) {
    if (!/^\d{4}-\d\d-\d\d /.test(line)) continue;
    const t = splitQuoted(line);
    let i = 0;
    let ds = t[i++]!.replace(/-/g, "");
    if (/^\d\d:\d\d:\d\d$/.test(t[i] ?? "")) ds += t[i++]!.replace(/:/g, "");
    const [host, disk, lv, storage, pool, label, file, part, ...status] = t.slice(i);
    const pm = /^(-?\d+)\/(-?\d+)$/.exec(part ?? "");
    if (!host || disk === undefined || !pm || !label) continue;
    rows.push({
      datestamp: ds,
      host,
      disk,
      level: Number(lv),
      storage: storage!,
      pool: pool!,
      label,
      fileNo: Number(file),
      partNo: Number(pm[1]),
      nparts: Number(pm[2]),
      status: status.join(" "),
    });
  }
  return rows;
}

/** Runs `amadmin NAME find` (as the dump user when root). Throws a UserError with Amanda's stderr on failure. */
export async function amadminFind(name: string, dumpuser: string): Promise<FindRow[]> {
  const argv = ["amadmin", name, "find"];
  const cmd = process.getuid?.() === 0 ? ["runuser", "-u", dumpuser, "--", ...argv] : argv;
  const r = await execa(cmd[0]!, cmd.slice(1), { reject: false, stdin: "ignore" });
  if (r.failed) {
    const why = (r as { code?: string }).code === "ENOENT" ? `${cmd[0]} not found on PATH (is amanda-server installed?)` : r.stderr.trim().split("\n").slice(-3).join(" / ");
    throw new UserError(`amadmin ${name} find failed: ${why}`);
  }
  return parseAmadminFind(r.stdout);
}
