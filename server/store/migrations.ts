import { UserError } from "../errors.ts";

/**
 * Schema migrations, versioned in code. Each has a unique, sortable id; the store applies
 * the ones not yet recorded in `schema_migrations`, in id order, each in a transaction.
 * Never edit a migration that has shipped: add a new one.
 */
export interface Migration {
  id: string;
  sql: string;
}

/**
 * The rules every store's migrations follow (SQLite here, PostgreSQL in pg-migrations.ts): the
 * migrations not yet applied, in id order; a store that records a migration this Lifeboat does
 * not know was made by a newer Lifeboat and is refused, in one line, before anything changes.
 */
export function pendingMigrations(applied: readonly string[], known: readonly Migration[], where: string): Migration[] {
  const ids = new Set(known.map((m) => m.id));
  const unknown = applied.filter((id) => !ids.has(id)).sort();
  if (unknown.length)
    throw new UserError(
      `${where}: the store comes from a newer Lifeboat (migration${unknown.length > 1 ? "s" : ""} ${unknown.join(", ")} unknown here); run that version or newer`,
    );
  const done = new Set(applied);
  return known.filter((m) => !done.has(m.id)).sort((a, b) => a.id.localeCompare(b.id));
}

export const migrations: Migration[] = [
  {
    id: "0001-init",
    sql: `
      CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        token_hash TEXT NOT NULL,
        smbios_uuid TEXT,
        amanda_config TEXT,
        dle_map TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
      );
      CREATE TABLE host_macs (
        mac TEXT PRIMARY KEY,
        host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE
      );
      CREATE TABLE layouts (
        host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
        version INTEGER NOT NULL,
        captured_at TEXT NOT NULL,
        document TEXT NOT NULL,
        PRIMARY KEY (host, version)
      );
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT 'null'
      );
      CREATE INDEX audit_target ON audit(target);
      CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    `,
  },
  {
    id: "0400-jobs",
    sql: `
      CREATE TABLE profiles (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        layout_version INTEGER,
        at TEXT,
        options TEXT NOT NULL DEFAULT '{}',
        created_at TEXT NOT NULL
      );
      CREATE TABLE assignments (
        mac TEXT PRIMARY KEY,
        profile TEXT NOT NULL REFERENCES profiles(name) ON DELETE CASCADE,
        created_at TEXT NOT NULL
      );
      CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        kind TEXT NOT NULL,
        profile TEXT NOT NULL,
        state TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        steps INTEGER NOT NULL DEFAULT 0,
        bytes_done INTEGER NOT NULL DEFAULT 0,
        bytes_total INTEGER NOT NULL DEFAULT 0,
        token_hash TEXT,
        hostname TEXT,
        at TEXT,
        hello TEXT NOT NULL DEFAULT 'null',
        mapping TEXT NOT NULL DEFAULT 'null',
        plan TEXT NOT NULL DEFAULT 'null',
        error TEXT,
        armed_by TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        last_heartbeat_at TEXT
      );
      CREATE INDEX jobs_mac ON jobs(mac);
      -- One active job per machine, enforced by the database itself.
      CREATE UNIQUE INDEX jobs_one_active_per_mac ON jobs(mac)
        WHERE state IN ('armed', 'booted', 'planning', 'running', 'stalled');
      CREATE TABLE job_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT 'null'
      );
      CREATE INDEX job_events_job ON job_events(job, id);
    `,
  },
  {
    id: "0200-dhcp-leases",
    sql: `
      CREATE TABLE dhcp_leases (
        ip TEXT PRIMARY KEY,
        mac TEXT NOT NULL,
        state TEXT NOT NULL,
        hostname TEXT,
        expires_at TEXT NOT NULL
      );
      CREATE INDEX dhcp_leases_mac ON dhcp_leases(mac);
    `,
  },
  {
    // Leases belong to the client identifier (option 61) when one is sent; rows before this were all by MAC.
    id: "0201-dhcp-lease-client",
    sql: `
      ALTER TABLE dhcp_leases ADD COLUMN client TEXT NOT NULL DEFAULT '';
      UPDATE dhcp_leases SET client = mac;
      CREATE INDEX dhcp_leases_client ON dhcp_leases(client);
      CREATE INDEX dhcp_leases_expires ON dhcp_leases(expires_at);
    `,
  },
  {
    id: "0100-amanda-catalog",
    sql: `
      CREATE TABLE catalog_dumps (
        amanda TEXT NOT NULL,
        id TEXT NOT NULL,
        host TEXT NOT NULL,
        disk TEXT NOT NULL,
        level INTEGER NOT NULL,
        datestamp TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (amanda, id)
      );
      CREATE INDEX catalog_dumps_id ON catalog_dumps(id);
      CREATE INDEX catalog_dumps_dle ON catalog_dumps(host, disk);
      CREATE TABLE catalog_refreshes (
        amanda TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        dumps INTEGER NOT NULL,
        warnings TEXT NOT NULL
      );
    `,
  },
  {
    id: "0401-job-keys",
    sql: `
      CREATE TABLE job_keys (
        job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        uuid TEXT NOT NULL,
        secret TEXT NOT NULL,
        PRIMARY KEY (job, uuid)
      );
    `,
  },
  {
    // Boot tokens only to the machine Lifeboat's DHCP answered unless the admin trusts HTTP boot
    // for the job; LUKS keys only to the boot the plan was served to (issue 15 item 1).
    id: "0402-job-boot-trust",
    sql: `
      ALTER TABLE jobs ADD COLUMN trust_http_boot INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN plan_token_hash TEXT;
    `,
  },
  {
    // The plan choices (new UUIDs, which partition grows) a job was armed with.
    id: "0403-job-options",
    sql: `ALTER TABLE jobs ADD COLUMN options TEXT NOT NULL DEFAULT '{}';`,
  },
  {
    // A served plan names the dumps its token may stream (ServedPlan.dumps) and carries its step
    // count and bytes. Plans served before: their dumps read once from the stream paths their
    // script holds (PREFIX<hex id>/stream, as they were rendered then; frozen here, not DUMPS_BASE).
    id: "0404-served-plan-dumps",
    sql: `
      WITH RECURSIVE marker(prefix) AS (SELECT '/api/v1/dumps/'),
      scan(job, rest, dump) AS (
        SELECT id, json_extract(plan, '$.script'), NULL FROM jobs WHERE json_type(plan) = 'object' AND json_type(plan, '$.dumps') IS NULL
        UNION ALL
        SELECT job, substr(rest, instr(rest, prefix) + length(prefix)),
          substr(rest, instr(rest, prefix) + length(prefix), instr(substr(rest, instr(rest, prefix) + length(prefix)), '/stream') - 1)
        FROM scan, marker WHERE instr(rest, prefix) > 0
      )
      UPDATE jobs SET plan = json_set(plan, '$.steps', steps, '$.bytesTotal', bytes_total,
        '$.dumps', json((SELECT json_group_array(dump) FROM scan WHERE scan.job = jobs.id AND dump IS NOT NULL)))
      WHERE json_type(plan) = 'object' AND json_type(plan, '$.dumps') IS NULL;
    `,
  },
  {
    // Power control per host (issue 22): the driver's config as JSON, its BMC password sealed
    // like a LUKS passphrase (store/secret-box.ts), bound to the host's row.
    id: "0500-host-power",
    sql: `
      CREATE TABLE host_power (
        host TEXT PRIMARY KEY REFERENCES hosts(name) ON DELETE CASCADE,
        config TEXT NOT NULL,
        secret TEXT,
        updated_at TEXT NOT NULL
      );
    `,
  },
  {
    // A served plan says what the machine does once its job is done (ServedPlan.endState, plan_done's
    // argument from step contract 3); the plans served before ended with a reboot.
    id: "0501-served-plan-end-state",
    sql: `UPDATE jobs SET plan = json_set(plan, '$.endState', 'reboot') WHERE json_type(plan) = 'object' AND json_type(plan, '$.endState') IS NULL;`,
  },
  {
    // Clones powered in bounded waves (issue 22 item 4): a job's place in its batch, stored so a
    // restart goes on with the machines still waiting (power/waves.ts PowerWaveEntry).
    id: "0502-job-power-wave",
    sql: `ALTER TABLE jobs ADD COLUMN power_wave TEXT NOT NULL DEFAULT 'null';`,
  },
  {
    // Several servers on one store (issue 25): who is alive and where, which server serves a job's boot, whose a lease is.
    id: "0600-servers",
    sql: `
      CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        amanda TEXT NOT NULL DEFAULT '[]',
        started_at TEXT NOT NULL,
        last_seen_at TEXT NOT NULL
      );
      ALTER TABLE jobs ADD COLUMN server TEXT;
      -- Leases belong to the server that gave them (rows before: to the one server there was, named '').
      ALTER TABLE dhcp_leases ADD COLUMN server TEXT NOT NULL DEFAULT '';
    `,
  },
  {
    // Encrypted Amanda dumps (issue 23 item 4): each config's passphrase / OpenPGP secret key, sealed.
    id: "0700-amanda-keys",
    sql: `
      CREATE TABLE amanda_keys (
        amanda TEXT PRIMARY KEY,
        has_passphrase INTEGER NOT NULL,
        has_secret_key INTEGER NOT NULL,
        secret TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
    `,
  },
];
