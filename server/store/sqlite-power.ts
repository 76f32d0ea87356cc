import type Database from "better-sqlite3";
import { SecretBox } from "./secret-box.ts";
import type { HostPowerRecord, PowerRepo } from "./types.ts";
import type { PowerConfig } from "../power/power.ts";

type Row = Record<string, unknown>;

/** What a host's sealed BMC password is bound to: its row. */
const secretContext = (host: string) => `host ${host} power`;

export function sqlitePower(db: Database.Database, box: SecretBox): PowerRepo {
  const from = (r: Row): HostPowerRecord => ({
    host: r.host as string,
    config: JSON.parse(r.config as string) as PowerConfig,
    hasSecret: r.secret !== null,
    updatedAt: r.updated_at as string,
  });
  const row = (host: string) => db.prepare("SELECT * FROM host_power WHERE host = ?").get(host) as Row | undefined;
  return {
    get: async (host) => {
      const r = row(host);
      return r ? from(r) : undefined;
    },
    put: async (host, config, secret) => {
      db.prepare(
        "INSERT INTO host_power (host, config, secret, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT(host) DO UPDATE SET config = excluded.config, secret = excluded.secret, updated_at = excluded.updated_at",
      ).run(host, JSON.stringify(config), secret === null ? null : box.seal(secret, secretContext(host)), new Date().toISOString());
      return from(row(host)!);
    },
    secret: async (host) => {
      const sealed = row(host)?.secret as string | null | undefined;
      return sealed ? box.open(sealed, secretContext(host)) : undefined;
    },
  };
}
