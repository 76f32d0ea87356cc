import type Database from "better-sqlite3";
import type { SecretBox } from "./secret-box.ts";
import { type Row, amandaKeyContext, amandaKeyFrom, amandaKeyOf, amandaKeyText } from "./rows.ts";
import type { AmandaKeyRepo } from "./types.ts";

export function sqliteAmandaKeys(db: Database.Database, box: SecretBox): AmandaKeyRepo {
  const row = (amanda: string) => db.prepare("SELECT * FROM amanda_keys WHERE amanda = ?").get(amanda) as Row | undefined;
  return {
    list: async () => (db.prepare("SELECT * FROM amanda_keys ORDER BY amanda").all() as Row[]).map(amandaKeyFrom),
    put: async (amanda, key) => {
      db.prepare(
        "INSERT INTO amanda_keys (amanda, has_passphrase, has_secret_key, secret, updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT(amanda) DO UPDATE SET has_passphrase = excluded.has_passphrase, has_secret_key = excluded.has_secret_key, secret = excluded.secret, updated_at = excluded.updated_at",
      ).run(amanda, key.passphrase !== null ? 1 : 0, key.secretKey !== null ? 1 : 0, box.seal(amandaKeyText(key), amandaKeyContext(amanda)), new Date().toISOString());
      return amandaKeyFrom(row(amanda)!);
    },
    get: async (amanda) => {
      const r = row(amanda);
      return r ? amandaKeyOf(box.open(r.secret as string, amandaKeyContext(amanda))) : undefined;
    },
    remove: async (amanda) => db.prepare("DELETE FROM amanda_keys WHERE amanda = ?").run(amanda).changes > 0,
  };
}
