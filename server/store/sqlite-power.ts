import type Database from "better-sqlite3";
import { SecretBox } from "./secret-box.ts";
import { type Row, powerFrom, powerSecretContext } from "./rows.ts";
import type { PowerRepo } from "./types.ts";


export function sqlitePower(db: Database.Database, box: SecretBox): PowerRepo {
  const from = powerFrom;
  const row = (host: string) => db.prepare("SELECT * FROM host_power WHERE host = ?").get(host) as Row | undefined;
  return {
    get: async (host) => {
      const r = row(host);
      return r ? from(r) : undefined;
    },
    put: async (host, config, secret) => {
      db.prepare(
        "INSERT INTO host_power (host, config, secret, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(host) DO UPDATE SET config = excluded.config, secret = excluded.secret, updated_at = excluded.updated_at",
      ).run(host, JSON.stringify(config), secret === null ? null : box.seal(secret, powerSecretContext(host)), new Date().toISOString());
      return from(row(host)!);
    },
    secret: async (host) => {
      const sealed = row(host)?.secret as string | null | undefined;
      return sealed ? box.open(sealed, powerSecretContext(host)) : undefined;
    },
  };
}
