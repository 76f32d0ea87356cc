/**
 * Schema migrations, versioned in code. Each has a unique, sortable id; the store applies
 * the ones not yet recorded in `schema_migrations`, in id order, each in a transaction.
 * Never edit a migration that has shipped: add a new one.
 */
export interface Migration {
  id: string;
  sql: string;
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
];
