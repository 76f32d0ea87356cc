import type Database from "better-sqlite3";
import type { LeaseRecord, LeaseRepo } from "./types.ts";

type Row = Record<string, unknown>;

/** Full-mode DHCP leases, kept so a restart does not hand a bound address to another machine. */
export function sqliteLeases(db: Database.Database): LeaseRepo {
  const from = (r: Row): LeaseRecord => ({
    ip: r.ip as string,
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
    if (l.state !== "declined") db.prepare("DELETE FROM dhcp_leases WHERE mac = ? AND ip <> ?").run(l.mac, l.ip);
    db.prepare(
      `INSERT INTO dhcp_leases (ip, mac, state, hostname, expires_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(ip) DO UPDATE SET mac = excluded.mac, state = excluded.state, hostname = excluded.hostname,
         expires_at = excluded.expires_at`,
    ).run(l.ip, l.mac, l.state, l.hostname, l.expiresAt);
  });
  return {
    list: async () => (db.prepare("SELECT * FROM dhcp_leases ORDER BY ip").all() as Row[]).map(from),
    byIp: async (ip) => one("SELECT * FROM dhcp_leases WHERE ip = ?", ip),
    byMac: async (mac) => one("SELECT * FROM dhcp_leases WHERE mac = ? AND state <> 'declined'", mac),
    put: async (l) => put(l),
    remove: async (ip) => db.prepare("DELETE FROM dhcp_leases WHERE ip = ?").run(ip).changes > 0,
  };
}
