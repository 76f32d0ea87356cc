import type Database from "better-sqlite3";
import type { LeaseRecord, LeaseRepo } from "./types.ts";

type Row = Record<string, unknown>;

/** Full-mode DHCP leases, kept so a restart does not hand a bound address to another machine. */
export function sqliteLeases(db: Database.Database): LeaseRepo {
  const from = (r: Row): LeaseRecord => ({
    ip: r.ip as string,
    client: r.client as string,
    mac: r.mac as string,
    state: r.state as LeaseRecord["state"],
    hostname: (r.hostname as string | null) ?? null,
    expiresAt: r.expires_at as string,
  });
  const one = (sql: string, v: string) => {
    const r = db.prepare(sql).get(v) as Row | undefined;
    return r ? from(r) : undefined;
  };
  const put = db.transaction((l: LeaseRecord) => {
    // A client has one offered or bound address at a time; the addresses it declined stay out for their hold time.
    if (l.state !== "declined") db.prepare("DELETE FROM dhcp_leases WHERE client = ? AND ip <> ? AND state <> 'declined'").run(l.client, l.ip);
    db.prepare(
      `INSERT INTO dhcp_leases (ip, client, mac, state, hostname, expires_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(ip) DO UPDATE SET client = excluded.client, mac = excluded.mac, state = excluded.state,
         hostname = excluded.hostname, expires_at = excluded.expires_at`,
    ).run(l.ip, l.client, l.mac, l.state, l.hostname, l.expiresAt);
  });
  return {
    list: async () => (db.prepare("SELECT * FROM dhcp_leases ORDER BY ip").all() as Row[]).map(from),
    byIp: async (ip) => one("SELECT * FROM dhcp_leases WHERE ip = ?", ip),
    byClient: async (client) => one("SELECT * FROM dhcp_leases WHERE client = ? AND state <> 'declined'", client),
    put: async (l) => put(l),
    remove: async (ip) => db.prepare("DELETE FROM dhcp_leases WHERE ip = ?").run(ip).changes > 0,
    prune: async (before, boundBefore) =>
      db
        .prepare("DELETE FROM dhcp_leases WHERE (state <> 'bound' AND expires_at < ?) OR expires_at < ?")
        .run(before, boundBefore).changes,
  };
}
