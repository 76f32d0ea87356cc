/**
 * Whole-store copies between the two stores, table by table (both have the same tables and
 * columns, pg-migrations.ts): SQLite → PostgreSQL for `lifeboat store migrate --to`, and
 * PostgreSQL → a new SQLite file for a PostgreSQL store's snapshot (the recovery bundle holds an
 * SQLite file whatever the store). Sealed secrets are copied sealed: they open with the same store
 * key file. Each side is read in one transaction, so the copy is of one moment.
 */
import Database from "better-sqlite3";
import type pg from "pg";
import { UserError } from "../errors.ts";
import { makePrivate } from "../private-file.ts";
import type { Row } from "./rows.ts";
import { inTransaction } from "./pg-tx.ts";
import { migrate } from "./sqlite.ts";

/** Every table of the store, parents before children, with its columns. */
export const STORE_TABLES: ReadonlyArray<{ name: string; columns: readonly string[] }> = [
  { name: "hosts", columns: ["name", "token_hash", "smbios_uuid", "amanda_config", "dle_map", "created_at"] },
  { name: "host_macs", columns: ["mac", "host"] },
  { name: "layouts", columns: ["host", "version", "captured_at", "document"] },
  { name: "audit", columns: ["id", "at", "actor", "action", "target", "detail"] },
  { name: "settings", columns: ["key", "value"] },
  { name: "profiles", columns: ["name", "host", "layout_version", "at", "options", "created_at"] },
  { name: "assignments", columns: ["mac", "profile", "created_at"] },
  {
    name: "jobs",
    columns: [
      "id", "mac", "kind", "profile", "state", "step", "steps", "bytes_done", "bytes_total", "token_hash", "plan_token_hash", "trust_http_boot",
      "hostname", "at", "hello", "mapping", "options", "plan", "power_wave", "error", "armed_by", "created_at", "updated_at", "expires_at", "last_heartbeat_at", "server",
    ],
  },
  { name: "job_events", columns: ["id", "job", "at", "type", "data"] },
  { name: "job_keys", columns: ["job", "uuid", "secret"] },
  { name: "dhcp_leases", columns: ["ip", "client", "mac", "state", "hostname", "expires_at", "server"] },
  { name: "catalog_dumps", columns: ["amanda", "id", "host", "disk", "level", "datestamp", "record"] },
  { name: "catalog_refreshes", columns: ["amanda", "at", "dumps", "warnings"] },
  { name: "host_power", columns: ["host", "config", "secret", "updated_at"] },
  { name: "amanda_keys", columns: ["amanda", "has_passphrase", "has_secret_key", "secret", "updated_at"] },
  { name: "servers", columns: ["name", "url", "amanda", "started_at", "last_seen_at"] },
];

/** Columns that are 0/1 in SQLite and booleans in PostgreSQL. */
const BOOLEANS = new Set(["jobs.trust_http_boot", "amanda_keys.has_passphrase", "amanda_keys.has_secret_key"]);
/** Tables whose ids PostgreSQL numbers itself (identity columns): after a copy their sequence goes on from the highest id. */
const IDENTITIES = ["audit", "job_events"];

/** Rows of a store that belong to it alone and are never copied (the PostgreSQL store's key check, postgres.ts). */
const LOCAL_SETTINGS = ["store.keyCheck"];

const keep = (table: string, r: Row) => table !== "settings" || !LOCAL_SETTINGS.includes(r.key as string);

function convert(table: string, r: Row, toPg: boolean): unknown[] {
  const t = STORE_TABLES.find((x) => x.name === table)!;
  return t.columns.map((c) => (BOOLEANS.has(`${table}.${c}`) ? (toPg ? r[c] === 1 || r[c] === true : r[c] === true || r[c] === 1 ? 1 : 0) : r[c]));
}

/** Rows of each table of an SQLite store, read in one transaction. */
function readSqlite(db: Database.Database): Map<string, Row[]> {
  return db.transaction(() => new Map(STORE_TABLES.map((t) => [t.name, (db.prepare(`SELECT ${t.columns.join(", ")} FROM ${t.name}`).all() as Row[]).filter((r) => keep(t.name, r))])))();
}

/** How many rows each table holds that a copy would carry (a store's own settings aside). */
export async function pgCounts(db: Pick<pg.PoolClient, "query">): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of STORE_TABLES)
    out[t.name] = ((await db.query<{ n: number }>(`SELECT COUNT(*) AS n FROM ${t.name}${t.name === "settings" ? " WHERE NOT (key = ANY($1))" : ""}`, t.name === "settings" ? [LOCAL_SETTINGS] : [])).rows[0]!.n);
  return out;
}

/**
 * Copies an SQLite store into a PostgreSQL store that is migrated and empty, in one transaction
 * (all or nothing); returns the rows copied per table. A target holding any row is refused.
 */
export async function copySqliteToPg(db: Database.Database, pool: pg.Pool, where: string): Promise<Record<string, number>> {
  const rows = readSqlite(db);
  return inTransaction(pool, async (c) => {
    // Nobody writes the target while it is filled (a server started on it too early waits).
    await c.query(`LOCK TABLE ${STORE_TABLES.map((t) => t.name).join(", ")} IN EXCLUSIVE MODE`);
    const held = Object.entries(await pgCounts(c)).filter(([, n]) => n > 0);
    if (held.length) throw new UserError(`${where}: refused: the target store is not empty (${held.map(([t, n]) => `${t}: ${n}`).join(", ")}); migrate into an empty database`, 2);
    const counts: Record<string, number> = {};
    for (const t of STORE_TABLES) {
      const list = rows.get(t.name)!;
      const sql = `INSERT INTO ${t.name} (${t.columns.join(", ")}) VALUES (${t.columns.map((_, i) => `$${i + 1}`).join(", ")})`;
      for (const r of list) await c.query(sql, convert(t.name, r, true));
      counts[t.name] = list.length;
    }
    for (const t of IDENTITIES) await c.query(`SELECT setval(pg_get_serial_sequence('${t}', 'id'), COALESCE((SELECT MAX(id) FROM ${t}), 0) + 1, false)`);
    return counts;
  });
}

/** Copies an SQLite store file into PostgreSQL (`lifeboat store migrate`): opened read-only, so it is left exactly as it was. */
export async function migrateSqliteFile(file: string, pool: pg.Pool, where: string): Promise<Record<string, number>> {
  let db: Database.Database;
  try {
    db = new Database(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new UserError(`${file}: cannot open the store (${(err as Error).message})`);
  }
  try {
    return await copySqliteToPg(db, pool, where);
  } finally {
    db.close();
  }
}

/**
 * A PostgreSQL store's consistent copy as a new SQLite file (Store.snapshot), read in one
 * repeatable-read transaction, without the jobs' LUKS keys.
 */
export async function copyToSqlite(pool: pg.Pool, file: string): Promise<void> {
  const rows = new Map<string, Row[]>();
  await inTransaction(
    pool,
    async (c) => {
      for (const t of STORE_TABLES) {
        if (t.name === "job_keys") continue;
        rows.set(t.name, (await c.query<Row>(`SELECT ${t.columns.join(", ")} FROM ${t.name}`)).rows.filter((r) => keep(t.name, r)));
      }
    },
    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
  );
  const db = new Database(file);
  try {
    db.pragma("foreign_keys = ON");
    migrate(db);
    db.transaction(() => {
      for (const t of STORE_TABLES) {
        const ins = db.prepare(`INSERT INTO ${t.name} (${t.columns.join(", ")}) VALUES (${t.columns.map(() => "?").join(", ")})`);
        for (const r of rows.get(t.name) ?? []) ins.run(...convert(t.name, r, false));
      }
    })();
  } finally {
    db.close();
  }
  makePrivate(file);
}
