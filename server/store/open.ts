import { dirname, join } from "node:path";
import { PgStore } from "./postgres.ts";
import { SqliteStore } from "./sqlite.ts";
import type { Store } from "./types.ts";

/** The store key lives beside the admin token: wherever the admin puts that, the key goes along. */
export function storeKeyFile(cfg: { adminTokenFile: string }): string {
  return join(dirname(cfg.adminTokenFile), "store-key");
}

/** The SQLite file of a data dir's embedded store. */
export function sqliteFile(cfg: { dataDir: string }): string {
  return join(cfg.dataDir, "lifeboat.db");
}

/** The config's store: PostgreSQL when `store.url` is set (several servers on one store), else the embedded SQLite file. */
export function openStore(cfg: { dataDir: string; adminTokenFile: string; store: { url: string } }): Store {
  if (cfg.store.url) return new PgStore(cfg.store.url, { keyFile: storeKeyFile(cfg) });
  return new SqliteStore(sqliteFile(cfg), { keyFile: storeKeyFile(cfg) });
}
