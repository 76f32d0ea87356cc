/**
 * `amadmin CONFIG find`, the third catalog source, run as the config's dump user when Amanda
 * is installed (run-dumpuser.ts: runuser as root, else the dump-user helper); its parser is pure.
 */
import { text } from "node:stream/consumers";
import { UserError } from "../errors.ts";
import { type DumpUserAccess, amadminExportArgv, amadminFindArgv } from "./dumpuser.ts";
import { splitQuoted } from "./quote.ts";
import { runAsDumpUser } from "./run-dumpuser.ts";

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

/** Runs `amadmin NAME find` as the dump user. Throws a one-line UserError (Amanda's stderr, or why it could not run) on failure. */
export async function amadminFind(name: string, access: DumpUserAccess): Promise<FindRow[]> {
  try {
    return parseAmadminFind(await text(runAsDumpUser(amadminFindArgv(name), access)));
  } catch (err) {
    throw new UserError(`amadmin ${name} find: ${(err as Error).message}`);
  }
}

/** Runs `amadmin NAME export` as the dump user: the config's curinfo database as text. Throws a one-line UserError on failure. */
export async function amadminExport(name: string, access: DumpUserAccess): Promise<string> {
  try {
    return await text(runAsDumpUser(amadminExportArgv(name), access));
  } catch (err) {
    throw new UserError(`amadmin ${name} export: ${(err as Error).message}`);
  }
}
