import type Database from "better-sqlite3";
import { type Row, leaseFrom } from "./rows.ts";
import type { LeaseRecord, LeaseRepo } from "./types.ts";


/**
 * Full-mode DHCP leases, kept so a restart does not hand a bound address to another machine.
 *
 * Writes commit in groups (one commit per event-loop turn, not per packet: at thousands of
 * handshakes a second the per-commit WAL sync was the cost). The first lease write of a turn
 * opens a transaction, the writes after it in the same turn join it, and it commits on
 * setImmediate; each write's promise settles only after that commit, so a reply waiting on it
 * (the ACK) is sent only once its lease is on disk: a crash loses no ACKed lease. Reads on
 * this connection see the open transaction's rows. Other writes of the store that run inside
 * that turn (better-sqlite3 nests their transactions as savepoints) commit with it.
 */
export function sqliteLeases(db: Database.Database): LeaseRepo & { /** Commits the open group now (before the store closes). */ flush(): void } {
  const from = leaseFrom;
  // Prepared once: compiling the SQL on every call cost as much as running it.
  const q = {
    list: db.prepare("SELECT * FROM dhcp_leases ORDER BY ip"),
    byIp: db.prepare("SELECT * FROM dhcp_leases WHERE ip = ?"),
    byClient: db.prepare("SELECT * FROM dhcp_leases WHERE client = ? AND server = ? AND state <> 'declined'"),
    dropOthers: db.prepare("DELETE FROM dhcp_leases WHERE client = ? AND server = ? AND ip <> ? AND state <> 'declined'"),
    upsert: db.prepare(
      `INSERT INTO dhcp_leases (ip, client, mac, state, hostname, expires_at, server) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(ip) DO UPDATE SET client = excluded.client, mac = excluded.mac, state = excluded.state,
         hostname = excluded.hostname, expires_at = excluded.expires_at, server = excluded.server`,
    ),
    remove: db.prepare("DELETE FROM dhcp_leases WHERE ip = ?"),
    prune: db.prepare("DELETE FROM dhcp_leases WHERE (state <> 'bound' AND expires_at < ?) OR expires_at < ?"),
  };
  const one = (r: unknown) => (r ? from(r as Row) : undefined);
  const put = db.transaction((l: LeaseRecord) => {
    // A client has one offered or bound address at a time; the addresses it declined stay out for their hold time.
    if (l.state !== "declined") q.dropOthers.run(l.client, l.server, l.ip);
    q.upsert.run(l.ip, l.client, l.mac, l.state, l.hostname, l.expiresAt, l.server);
  });

  let waiting: Array<{ ok: () => void; fail: (err: unknown) => void }> | null = null;
  const commit = () => {
    const group = waiting;
    if (!group) return;
    waiting = null;
    try {
      db.exec("COMMIT");
    } catch (err) {
      if (db.open && db.inTransaction) db.exec("ROLLBACK");
      for (const w of group) w.fail(err);
      return;
    }
    for (const w of group) w.ok();
  };
  /** Runs `fn` in this turn's group transaction (a savepoint of its own: a failing write rolls back alone); settles after the group's commit. */
  const write = <T>(fn: () => T): Promise<T> => {
    if (!waiting) {
      if (!db.open) return Promise.reject(new Error("the store is closed"));
      db.exec("BEGIN IMMEDIATE");
      waiting = [];
      setImmediate(commit);
    }
    let result: T;
    try {
      result = db.transaction(fn)();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => waiting!.push({ ok: () => resolve(result), fail: reject }));
  };

  return {
    flush: commit,
    list: async () => (q.list.all() as Row[]).map(from),
    byIp: async (ip) => one(q.byIp.get(ip)),
    byClient: async (client, server) => one(q.byClient.get(client, server)),
    put: (l) => write(() => put(l)),
    remove: (ip) => write(() => q.remove.run(ip).changes > 0),
    prune: (before, boundBefore) => write(() => q.prune.run(before, boundBefore).changes),
  };
}
