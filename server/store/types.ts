/**
 * The store's repository interface. Callers depend on these types only, so a PostgreSQL
 * implementation can sit beside the SQLite one for multi-server sites. Every method is
 * async for that reason, although better-sqlite3 answers synchronously.
 */

export interface HostRecord {
  name: string;
  /** SHA-256 of the host's capture token (the token itself is shown once). */
  tokenHash: string;
  smbiosUuid: string | null;
  macs: string[];
  amandaConfig: string | null;
  /** DLE (Amanda disk name) → mount point it restores to. */
  dleMap: Record<string, string>;
  createdAt: string;
}

export interface LayoutRecord {
  host: string;
  version: number;
  capturedAt: string;
  document: unknown;
}

export interface HostRepo {
  add(h: Omit<HostRecord, "createdAt">): Promise<HostRecord>;
  get(name: string): Promise<HostRecord | undefined>;
  byMac(mac: string): Promise<HostRecord | undefined>;
  list(): Promise<HostRecord[]>;
  update(name: string, patch: Partial<Omit<HostRecord, "name" | "createdAt">>): Promise<HostRecord>;
  remove(name: string): Promise<boolean>;
}

export interface LayoutRepo {
  /** Stores a new version and returns it (versions count from 1 per host). */
  add(host: string, document: unknown, capturedAt?: string): Promise<LayoutRecord>;
  get(host: string, version?: number): Promise<LayoutRecord | undefined>;
  versions(host: string): Promise<Array<Omit<LayoutRecord, "document">>>;
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  detail: unknown;
}

export interface AuditRepo {
  append(e: Omit<AuditEntry, "id" | "at">): Promise<AuditEntry>;
  list(opts?: { target?: string; limit?: number }): Promise<AuditEntry[]>;
}

/** A generic key/value table for small pieces of server state (last refresh times and the like). */
export interface SettingsRepo {
  get(key: string): Promise<string | undefined>;
  set(key: string, value: string): Promise<void>;
}

export interface Store {
  readonly hosts: HostRepo;
  readonly layouts: LayoutRepo;
  readonly audit: AuditRepo;
  readonly settings: SettingsRepo;
  /** Versions of the migrations applied, in order. */
  migrations(): Promise<string[]>;
  close(): Promise<void>;
}
