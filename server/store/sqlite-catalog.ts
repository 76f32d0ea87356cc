import type Database from "better-sqlite3";
import type { CatalogDump } from "../amanda/model.ts";
import { type Row, dumpFrom, refreshFrom } from "./rows.ts";
import type { CatalogRefresh, CatalogRepo } from "./types.ts";


/** Lifeboat's own copy of the Amanda catalog: one JSON record per dump, replaced per config on refresh. */
export function sqliteCatalog(db: Database.Database): CatalogRepo {
  const parse = dumpFrom;
  return {
    replace: async (amanda: string, dumps: CatalogDump[], warnings: string[]) => {
      const ins = db.prepare("INSERT OR REPLACE INTO catalog_dumps (amanda, id, host, disk, level, datestamp, record) VALUES (?, ?, ?, ?, ?, ?, ?)");
      db.transaction(() => {
        db.prepare("DELETE FROM catalog_dumps WHERE amanda = ?").run(amanda);
        for (const d of dumps) ins.run(amanda, d.id, d.host, d.disk, d.level, d.datestamp, JSON.stringify(d));
        db.prepare(
          "INSERT INTO catalog_refreshes (amanda, at, dumps, warnings) VALUES (?, ?, ?, ?) ON CONFLICT(amanda) DO UPDATE SET at = excluded.at, dumps = excluded.dumps, warnings = excluded.warnings",
        ).run(amanda, new Date().toISOString(), dumps.length, JSON.stringify(warnings));
      })();
    },
    list: async (f = {}) => {
      const where: string[] = [];
      const args: unknown[] = [];
      for (const col of ["amanda", "host", "disk"] as const) {
        if (f[col] === undefined) continue;
        where.push(`${col} = ?`);
        args.push(f[col]);
      }
      const sql = `SELECT record FROM catalog_dumps ${where.length ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY host, disk, datestamp, level`;
      return (db.prepare(sql).all(...args) as Row[]).map(parse);
    },
    get: async (id: string) => {
      const r = db.prepare("SELECT record FROM catalog_dumps WHERE id = ? ORDER BY amanda LIMIT 1").get(id) as Row | undefined;
      return r ? parse(r) : undefined;
    },
    refreshes: async (): Promise<CatalogRefresh[]> =>
      (db.prepare("SELECT * FROM catalog_refreshes ORDER BY amanda").all() as Row[]).map(refreshFrom),
  };
}
