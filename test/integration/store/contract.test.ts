/**
 * The store contract (issue 25): one suite, run against the embedded SQLite store and a real
 * PostgreSQL (a throwaway server started here, test/helpers/postgres.ts), is the proof the two
 * behave the same: every repository method, compare-and-set job transitions and their races
 * (a second handle on the same data stands for a second server), and the secrets (sealed at
 * rest, bound to their row, handed out once).
 */
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { migrations } from "../../../server/store/migrations.ts";
import { pgMigrations } from "../../../server/store/pg-migrations.ts";
import { PgStore } from "../../../server/store/postgres.ts";
import { SecretBox } from "../../../server/store/secret-box.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import type { JobRecord, LeaseRecord, Store } from "../../../server/store/types.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type TestPostgres, postgresUnavailable, startPostgres } from "../../helpers/postgres.ts";
import { tempDir } from "../../helpers/tmp.ts";

const PASS = "correct horse battery staple 7f3a9c";
const UUID = "4f6b1c2e-8d3a-4e5f-9a0b-1c2d3e4f5a6b";

/** A fresh, empty store; `other()` opens a second handle on the same data (another connection, as a second server has). */
interface Opened {
  store: Store;
  other(): Store;
  /** The sealed value of a job key as the database holds it, and a way to overwrite it (an attacker with database access). */
  rawKey(job: string, uuid: string): Promise<string>;
  setRawKey(job: string, uuid: string, value: string): Promise<void>;
  migrationIds: string[];
}

interface Backend {
  name: string;
  missing: () => string | null | undefined;
  setup?: () => Promise<void>;
  open(): Promise<Opened>;
}

const opened: Store[] = [];
const track = <S extends Store>(s: S): S => {
  opened.push(s);
  return s;
};

let postgres: TestPostgres | undefined;

const backends: Backend[] = [
  {
    name: "SQLite",
    missing: () => null,
    async open() {
      const file = join(tempDir("lifeboat-contract-"), "lifeboat.db");
      const store = track(new SqliteStore(file));
      return {
        store,
        other: () => track(new SqliteStore(file)),
        rawKey: async (job, uuid) => (store.db.prepare("SELECT secret FROM job_keys WHERE job = ? AND uuid = ?").get(job, uuid) as { secret: string }).secret,
        setRawKey: async (job, uuid, value) => {
          store.db.prepare("INSERT INTO job_keys (job, uuid, secret) VALUES (?, ?, ?) ON CONFLICT(job, uuid) DO UPDATE SET secret = excluded.secret").run(job, uuid, value);
        },
        migrationIds: migrations.map((m) => m.id).sort(),
      };
    },
  },
  {
    name: "PostgreSQL",
    missing: postgresUnavailable,
    async setup() {
      postgres ??= await startPostgres();
    },
    async open() {
      const url = await postgres!.createDatabase();
      const keyFile = join(tempDir("lifeboat-contract-"), "store-key");
      const store = track(new PgStore(url, { keyFile }));
      return {
        store,
        other: () => track(new PgStore(url, { keyFile })),
        rawKey: async (job, uuid) => ((await store.pool.query("SELECT secret FROM job_keys WHERE job = $1 AND uuid = $2", [job, uuid])).rows[0] as { secret: string }).secret,
        setRawKey: async (job, uuid, value) => {
          await store.pool.query("INSERT INTO job_keys (job, uuid, secret) VALUES ($1, $2, $3) ON CONFLICT (job, uuid) DO UPDATE SET secret = excluded.secret", [job, uuid, value]);
        },
        migrationIds: pgMigrations.map((m) => m.id).sort(),
      };
    },
  },
];

afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
});

const DAY = 86_400_000;
const host = (name: string, macs: string[]) => ({ name, tokenHash: `hash-${name}`, smbiosUuid: null, macs, amandaConfig: null, dleMap: {} });

function job(id: string, mac: string, more: Partial<JobRecord> = {}): Omit<JobRecord, "createdAt" | "updatedAt"> {
  return {
    id, mac, kind: "recover", profile: "p", state: "armed", step: 0, steps: 0, bytesDone: 0, bytesTotal: 0, tokenHash: null, planTokenHash: null,
    trustHttpBoot: false, hostname: null, at: null, hello: null, mapping: null, options: {}, plan: null, powerWave: null, server: null, error: null, armedBy: "test",
    expiresAt: new Date(Date.now() + DAY).toISOString(), lastHeartbeatAt: null, ...more,
  };
}

function dump(amanda: string, host: string, disk: string, level: number, datestamp: string): CatalogDump {
  return {
    id: `${host}-${disk.replaceAll("/", "_")}-${level}-${datestamp}`, amanda, host, disk, level, datestamp, program: "GNUTAR", compression: "none", compressProgram: null,
    encrypted: false, sizeBytes: 2 ** 40, origKb: null, crc: { native: null, client: null, server: null }, location: { kind: "holding" } as unknown as CatalogDump["location"],
    status: "ok", problem: null, sources: [],
  };
}

const lease = (n: number, more: Partial<LeaseRecord> = {}): LeaseRecord => ({
  ip: `10.231.25.${n}`, client: `52:54:00:25:00:${n.toString(16).padStart(2, "0")}`, mac: `52:54:00:25:00:${n.toString(16).padStart(2, "0")}`,
  state: "bound", hostname: null, expiresAt: "2099-01-01T00:00:00.000Z", server: "a", ...more,
});

afterAll(async () => {
  await postgres?.stop();
});

for (const b of backends) {
  describeNeeding(b.missing(), `store contract: ${b.name}`, () => {
    if (b.setup) beforeAll(b.setup);

    it("migrations: every one of the backend's, in id order", async () => {
      const o = await b.open();
      expect(await o.store.migrations()).toEqual(o.migrationIds);
    });

    it("hosts: add, get, by MAC, list, update, remove; a MAC belongs to one host; a name is taken once", async () => {
      const { store } = await b.open();
      const a = await store.hosts.add({ ...host("web1", ["52:54:00:00:00:02", "52:54:00:00:00:01"]), smbiosUuid: "u-1", dleMap: { "/": "/" } });
      expect(a).toMatchObject({ name: "web1", tokenHash: "hash-web1", smbiosUuid: "u-1", macs: ["52:54:00:00:00:01", "52:54:00:00:00:02"], dleMap: { "/": "/" } });
      expect(a.createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
      await expect(store.hosts.add(host("web1", []))).rejects.toThrow("host web1 already exists");
      await expect(store.hosts.add(host("web2", ["52:54:00:00:00:01"]))).rejects.toThrow("MAC 52:54:00:00:00:01 already belongs to host web1");
      expect(await store.hosts.get("web2")).toBeUndefined();
      await store.hosts.add(host("Web0", ["52:54:00:00:00:09"]));
      expect((await store.hosts.byMac("52:54:00:00:00:02"))?.name).toBe("web1");
      expect(await store.hosts.byMac("52:54:00:00:00:99")).toBeUndefined();
      // Bytewise order whatever the database's locale: upper case first.
      expect((await store.hosts.list()).map((h) => [h.name, h.macs])).toEqual([["Web0", ["52:54:00:00:00:09"]], ["web1", ["52:54:00:00:00:01", "52:54:00:00:00:02"]]]);
      const u = await store.hosts.update("web1", { amandaConfig: "daily", macs: ["52:54:00:00:00:03"] });
      expect(u).toMatchObject({ amandaConfig: "daily", macs: ["52:54:00:00:00:03"], smbiosUuid: "u-1", createdAt: a.createdAt });
      await expect(store.hosts.update("web1", { macs: ["52:54:00:00:00:09"] })).rejects.toThrow("MAC 52:54:00:00:00:09 already belongs to host Web0");
      expect((await store.hosts.get("web1"))?.macs).toEqual(["52:54:00:00:00:03"]);
      await expect(store.hosts.update("nobody", {})).rejects.toThrow("no host named nobody");
      await store.layouts.add("web1", { v: 1 });
      expect(await store.hosts.remove("web1")).toBe(true);
      expect(await store.hosts.remove("web1")).toBe(false);
      expect(await store.hosts.byMac("52:54:00:00:00:03")).toBeUndefined();
      expect(await store.layouts.get("web1")).toBeUndefined();
    });

    it("layouts: versions count from 1 per host, also when two captures race; prune keeps the newest and the pinned", async () => {
      const o = await b.open();
      const { store } = o;
      await store.hosts.add(host("a", []));
      await store.hosts.add(host("b", []));
      const other = o.other();
      const raced = await Promise.all([1, 2, 3, 4].map((v) => (v % 2 ? store : other).layouts.add("a", { v })));
      expect(raced.map((l) => l.version).sort()).toEqual([1, 2, 3, 4]);
      await store.layouts.add("a", { v: 5 }, "2026-01-01T00:00:00.000Z");
      await store.layouts.add("b", { v: 1 });
      expect(await store.layouts.get("a", 5)).toEqual({ host: "a", version: 5, capturedAt: "2026-01-01T00:00:00.000Z", document: { v: 5 } });
      expect((await store.layouts.get("a"))?.version).toBe(5);
      expect(await store.layouts.get("a", 9)).toBeUndefined();
      expect((await store.layouts.versions("a")).map((l) => l.version)).toEqual([1, 2, 3, 4, 5]);
      await store.profiles.put({ name: "pinned", host: "a", layoutVersion: 1, at: null, options: {} });
      expect(await store.layouts.prune(2)).toBe(2);
      expect((await store.layouts.versions("a")).map((l) => l.version)).toEqual([1, 4, 5]);
      expect((await store.layouts.versions("b")).map((l) => l.version)).toEqual([1]);
      expect((await store.layouts.add("a", {})).version).toBe(6);
    });

    it("audit and settings: appended in order, listed newest first by target and limit; settings overwrite", async () => {
      const { store } = await b.open();
      const e1 = await store.audit.append({ actor: "admin", action: "host.add", target: "host:a", detail: { x: 1 } });
      await store.audit.append({ actor: "admin", action: "host.add", target: "host:b", detail: null });
      const e3 = await store.audit.append({ actor: "cli", action: "host.update", target: "host:a", detail: ["y"] });
      expect(e3.id).toBeGreaterThan(e1.id);
      expect((await store.audit.list({ target: "host:a" })).map((e) => [e.id, e.action, e.detail])).toEqual([[e3.id, "host.update", ["y"]], [e1.id, "host.add", { x: 1 }]]);
      expect((await store.audit.list({ limit: 2 })).map((e) => e.target)).toEqual(["host:a", "host:b"]);
      expect(await store.settings.get("k")).toBeUndefined();
      await store.settings.set("k", "1");
      await store.settings.set("k", "2");
      expect(await store.settings.get("k")).toBe("2");
    });

    it("profiles and assignments: put replaces (keeping its creation time), an assignment needs its profile, removing a profile drops its assignments", async () => {
      const { store } = await b.open();
      const p = await store.profiles.put({ name: "p", host: "web1", layoutVersion: null, at: null, options: { newUuids: true } });
      const p2 = await store.profiles.put({ name: "p", host: "web2", layoutVersion: 3, at: "20261124020601", options: { grow: "/dev/sda2" } });
      expect(p2).toEqual({ name: "p", host: "web2", layoutVersion: 3, at: "20261124020601", options: { grow: "/dev/sda2" }, createdAt: p.createdAt });
      await store.profiles.put({ name: "a", host: "x", layoutVersion: null, at: null, options: {} });
      expect((await store.profiles.list()).map((x) => x.name)).toEqual(["a", "p"]);
      await expect(store.assignments.set("52:54:00:00:00:01", "nope")).rejects.toThrow("no profile named nope");
      await store.assignments.set("52:54:00:00:00:02", "p");
      await store.assignments.set("52:54:00:00:00:01", "a");
      await store.assignments.set("52:54:00:00:00:01", "p");
      expect(await store.assignments.get("52:54:00:00:00:01")).toBe("p");
      expect((await store.assignments.list()).map((x) => [x.mac, x.profile])).toEqual([["52:54:00:00:00:01", "p"], ["52:54:00:00:00:02", "p"]]);
      expect(await store.assignments.remove("52:54:00:00:00:02")).toBe(true);
      expect(await store.assignments.remove("52:54:00:00:00:02")).toBe(false);
      expect(await store.profiles.remove("p")).toBe(true);
      expect(await store.profiles.get("p")).toBeUndefined();
      expect(await store.assignments.list()).toEqual([]);
      expect(await store.profiles.remove("p")).toBe(false);
    });

    it("jobs: create round-trips every field, one active job per MAC, get, activeForMac, list by state and MAC, update, power waves", async () => {
      const { store } = await b.open();
      const full = job("j1", "52:54:00:00:00:01", {
        trustHttpBoot: true, hostname: "clone-1", at: "20261124020601", bytesTotal: 5 * 2 ** 40, options: { newUuids: true, endState: "hold" },
        mapping: { sda: "serial:X" } as unknown as JobRecord["mapping"], hello: { v: 1 } as unknown as JobRecord["hello"],
        powerWave: { wave: "w1", position: 1, of: 2, queuedAt: "2026-01-01T00:00:00.000Z", status: "waiting", force: false } as JobRecord["powerWave"],
      });
      const j1 = await store.jobs.create(full);
      expect(j1).toEqual({ ...full, createdAt: j1.createdAt, updatedAt: j1.createdAt });
      await expect(store.jobs.create(job("j2", "52:54:00:00:00:01"))).rejects.toThrow("52:54:00:00:00:01 already has an active job (j1, armed): one per machine");
      expect(await store.jobs.get("j2")).toBeUndefined();
      expect((await store.jobs.activeForMac("52:54:00:00:00:01"))?.id).toBe("j1");
      expect(await store.jobs.activeForMac("52:54:00:00:00:02")).toBeUndefined();
      const u = await store.jobs.update("j1", { state: "cancelled", error: "by test", bytesDone: 2 ** 40 });
      expect(u).toMatchObject({ state: "cancelled", error: "by test", bytesDone: 2 ** 40, trustHttpBoot: true });
      await expect(store.jobs.update("nope", { error: "x" })).rejects.toThrow("no job nope");
      // A machine whose job ended may be armed again.
      await store.jobs.create(job("j2", "52:54:00:00:00:01"));
      await store.jobs.create(job("j3", "52:54:00:00:00:03", { powerWave: { ...full.powerWave!, status: "powered" } }));
      expect((await store.jobs.list({ state: ["armed"] })).map((j) => j.id).sort()).toEqual(["j2", "j3"]);
      expect((await store.jobs.list({ mac: "52:54:00:00:00:01" })).map((j) => j.id).sort()).toEqual(["j1", "j2"]);
      expect((await store.jobs.list({ state: ["cancelled", "done"], mac: "52:54:00:00:00:01" })).map((j) => j.id)).toEqual(["j1"]);
      expect(await store.jobs.list({ limit: 1 })).toHaveLength(1);
      // Power waves: active ones, and ended ones still marked waiting.
      expect((await store.jobs.inPowerWaves()).map((j) => j.id)).toEqual(["j1", "j3"]);
    });

    it("jobs: a transition is compare-and-set: applied with its events (and keys dropped) only from its state; otherwise nothing changes", async () => {
      const { store } = await b.open();
      await store.jobs.create(job("j1", "52:54:00:00:00:01"));
      await store.jobs.setKey("j1", UUID, PASS);
      const t = await store.jobs.transition("j1", "armed", { patch: { state: "booted", tokenHash: "t1" }, events: [{ type: "booted", data: { via: "dhcp" } }, { type: "note", data: null }], dropKeys: false });
      expect(t?.job).toMatchObject({ state: "booted", tokenHash: "t1" });
      expect(t?.events.map((e) => [e.type, e.data])).toEqual([["booted", { via: "dhcp" }], ["note", null]]);
      const stale = await store.jobs.transition("j1", "armed", { patch: { state: "cancelled" }, events: [{ type: "cancelled", data: null }], dropKeys: true });
      expect(stale).toBeUndefined();
      expect((await store.jobs.get("j1"))?.state).toBe("booted");
      expect(await store.jobs.keyIds("j1")).toEqual([UUID]);
      expect((await store.jobs.events("j1")).map((e) => e.type)).toEqual(["booted", "note"]);
      expect(await store.jobs.transition("nope", "armed", { patch: { state: "booted" }, events: [], dropKeys: false })).toBeUndefined();
      const end = await store.jobs.transition("j1", "booted", { patch: { state: "failed", error: "x" }, events: [{ type: "failed", data: "x" }], dropKeys: true });
      expect(end?.job.state).toBe("failed");
      expect(await store.jobs.keyIds("j1")).toEqual([]);
    });

    it("jobs: raced transitions from one state, from two servers at once: exactly one wins, its events only", async () => {
      const o = await b.open();
      const a = o.store;
      const c = o.other();
      for (let round = 0; round < 5; round++) {
        const id = `r${round}`;
        await a.jobs.create(job(id, `52:54:00:00:01:0${round}`));
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) =>
            (i % 2 ? a : c).jobs.transition(id, "armed", { patch: { state: "booted", tokenHash: `t${i}` }, events: [{ type: "booted", data: { by: i } }], dropKeys: false }),
          ),
        );
        const winners = results.filter((r) => r !== undefined);
        expect(winners).toHaveLength(1);
        const events = await c.jobs.events(id);
        expect(events).toHaveLength(1);
        expect((await a.jobs.get(id))?.tokenHash).toBe(`t${(events[0]!.data as { by: number }).by}`);
      }
    });

    it("jobs: events after an id, their bytes by type, pruned for jobs that ended before a time", async () => {
      const { store } = await b.open();
      await store.jobs.create(job("j1", "52:54:00:00:00:01"));
      await store.jobs.create(job("j2", "52:54:00:00:00:02"));
      const e1 = await store.jobs.addEvent("j1", "armed", {});
      await store.jobs.addEvent("j1", "agent-log", { text: "é".repeat(10) });
      await store.jobs.addEvent("j2", "agent-log", { text: "x" });
      expect((await store.jobs.events("j1", { afterId: e1.id })).map((e) => e.type)).toEqual(["agent-log"]);
      // Bytes, not characters: é is two.
      expect(await store.jobs.eventBytes("j1", "agent-log")).toBe(Buffer.byteLength(JSON.stringify({ text: "é".repeat(10) })));
      expect(await store.jobs.eventBytes("j1", "none")).toBe(0);
      await store.jobs.update("j1", { state: "done" });
      expect(await store.jobs.pruneEvents(new Date(Date.now() - DAY).toISOString())).toBe(0);
      expect(await store.jobs.pruneEvents(new Date(Date.now() + DAY).toISOString())).toBe(2);
      expect(await store.jobs.events("j1")).toEqual([]);
      expect(await store.jobs.events("j2")).toHaveLength(1);
    });

    it("secrets: a LUKS key is sealed in the database, bound to its row, handed out once even to two servers asking at once", async () => {
      const o = await b.open();
      const { store } = o;
      await store.jobs.create(job("j1", "52:54:00:00:00:01"));
      await store.jobs.create(job("j2", "52:54:00:00:00:02"));
      await store.jobs.setKey("j1", UUID, PASS);
      await store.jobs.setKey("j1", "0000", "other");
      const sealed = await o.rawKey("j1", UUID);
      expect(SecretBox.isSealed(sealed)).toBe(true);
      expect(sealed.includes(PASS)).toBe(false);
      expect(await store.jobs.keyIds("j1")).toEqual(["0000", UUID]);
      // Moved to another row, it does not open (and stays there).
      await o.setRawKey("j2", UUID, sealed);
      await expect(store.jobs.takeKey("j2", UUID)).rejects.toThrow(`the stored secret for job j2 LUKS container ${UUID} does not open: altered, or sealed under another key file`);
      expect(await store.jobs.keyIds("j2")).toEqual([UUID]);
      // Altered, likewise.
      const raw = Buffer.from(sealed.slice(sealed.indexOf(":") + 1), "base64");
      raw[raw.length - 1]! ^= 1;
      await o.setRawKey("j1", UUID, `${sealed.slice(0, sealed.indexOf(":") + 1)}${raw.toString("base64")}`);
      await expect(store.jobs.takeKey("j1", UUID)).rejects.toThrow(/does not open/);
      await o.setRawKey("j1", UUID, sealed);
      const other = o.other();
      const taken = await Promise.all([store.jobs.takeKey("j1", UUID), other.jobs.takeKey("j1", UUID), store.jobs.takeKey("j1", UUID), other.jobs.takeKey("j1", UUID)]);
      expect(taken.filter((x) => x !== undefined)).toEqual([PASS]);
      expect(await store.jobs.keyIds("j1")).toEqual(["0000"]);
      await store.jobs.dropKeys("j1");
      expect(await store.jobs.takeKey("j1", "0000")).toBeUndefined();
    });

    it("power: config and a sealed password per host; null: none", async () => {
      const { store } = await b.open();
      await store.hosts.add(host("web1", []));
      const cfg = { kind: "ipmi" as const, address: "10.231.25.9", port: 623, user: "admin", cipherSuite: 17 };
      expect(await store.power.get("web1")).toBeUndefined();
      const p = await store.power.put("web1", cfg, "bmc secret");
      expect(p).toMatchObject({ host: "web1", config: cfg, hasSecret: true });
      expect(await store.power.secret("web1")).toBe("bmc secret");
      expect(await store.power.put("web1", { kind: "wol" }, null)).toMatchObject({ config: { kind: "wol" }, hasSecret: false });
      expect(await store.power.secret("web1")).toBeUndefined();
      expect(await store.power.secret("nobody")).toBeUndefined();
    });

    it("leases: one offered or bound lease per client, declined ones kept apart, removed, pruned by expiry", async () => {
      const { store } = await b.open();
      await store.leases.put(lease(10));
      await store.leases.put(lease(11, { client: lease(10).client, state: "offered" }));
      expect(await store.leases.byIp("10.231.25.10")).toBeUndefined();
      expect((await store.leases.byClient(lease(10).client, "a"))?.ip).toBe("10.231.25.11");
      await store.leases.put(lease(12, { client: lease(10).client, state: "declined", expiresAt: "2000-01-01T00:00:00.000Z" }));
      expect((await store.leases.byClient(lease(10).client, "a"))?.ip).toBe("10.231.25.11");
      await store.leases.put(lease(9, { expiresAt: "2000-01-02T00:00:00.000Z", hostname: "h" }));
      expect((await store.leases.list()).map((l) => l.ip)).toEqual(["10.231.25.11", "10.231.25.12", "10.231.25.9"]);
      expect(await store.leases.byIp("10.231.25.9")).toEqual(lease(9, { expiresAt: "2000-01-02T00:00:00.000Z", hostname: "h" }));
      // The declined one expired; the bound one is kept until its own (later) bound limit.
      expect(await store.leases.prune("2001-01-01T00:00:00.000Z", "2000-01-01T00:00:00.000Z")).toBe(1);
      expect(await store.leases.prune("2001-01-01T00:00:00.000Z", "2001-01-01T00:00:00.000Z")).toBe(1);
      // Leases belong to the server that gave them: the same client on another server's LAN keeps this one.
      await store.leases.put(lease(200, { client: lease(10).client, state: "offered", server: "b" }));
      expect((await store.leases.byClient(lease(10).client, "a"))?.ip).toBe("10.231.25.11");
      expect((await store.leases.byClient(lease(10).client, "b"))?.ip).toBe("10.231.25.200");
      expect(await store.leases.byClient(lease(10).client, "c")).toBeUndefined();
      expect(await store.leases.remove("10.231.25.200")).toBe(true);
      expect(await store.leases.remove("10.231.25.11")).toBe(true);
      expect(await store.leases.remove("10.231.25.11")).toBe(false);
      expect(await store.leases.list()).toEqual([]);
    });

    it("catalog: a refresh replaces one config's dumps; listed in order, filtered; a refresh's time, count and warnings", async () => {
      const { store } = await b.open();
      await store.catalog.replace("daily", [dump("daily", "web1", "/", 1, "20261125"), dump("daily", "web1", "/", 0, "20261124"), dump("daily", "db1", "/var", 0, "20261124")], []);
      await store.catalog.replace("weekly", [dump("weekly", "web1", "/", 0, "20261101")], ["odd"]);
      expect((await store.catalog.list()).map((d) => [d.amanda, d.host, d.datestamp])).toEqual([
        ["daily", "db1", "20261124"], ["weekly", "web1", "20261101"], ["daily", "web1", "20261124"], ["daily", "web1", "20261125"],
      ]);
      expect((await store.catalog.list({ amanda: "daily", host: "web1", disk: "/" })).map((d) => d.level)).toEqual([0, 1]);
      const d = dump("daily", "db1", "/var", 0, "20261124");
      expect(await store.catalog.get(d.id)).toEqual(d);
      await store.catalog.replace("daily", [], ["gone"]);
      expect((await store.catalog.list()).map((x) => x.amanda)).toEqual(["weekly"]);
      expect(await store.catalog.get(d.id)).toBeUndefined();
      expect((await store.catalog.refreshes()).map((r) => [r.amanda, r.dumps, r.warnings])).toEqual([["daily", 0, ["gone"]], ["weekly", 1, ["odd"]]]);
    });

    it("servers and claims: beats listed; a job's boot is claimed by one server, again by it, by another only once the holder is dead or the job stalled", async () => {
      const o = await b.open();
      const { store } = o;
      const t = "2026-12-01T00:00:00.000Z";
      await store.servers.beat({ name: "b", url: "http://10.231.25.2:8080", amanda: ["daily"], startedAt: t });
      await store.servers.beat({ name: "a", url: "http://10.231.25.1:8080", amanda: [], startedAt: t });
      const listed = await store.servers.list();
      expect(listed.map((s) => [s.name, s.url, s.amanda, s.startedAt])).toEqual([["a", "http://10.231.25.1:8080", [], t], ["b", "http://10.231.25.2:8080", ["daily"], t]]);
      const seen = Date.parse(listed[0]!.lastSeenAt);
      expect(Math.abs(seen - Date.now())).toBeLessThan(60_000);
      const alive = new Date(seen - 1000).toISOString();
      const dead = new Date(seen + 1000).toISOString();
      await store.jobs.create(job("j1", "52:54:00:00:00:01"));
      expect(await store.jobs.claim("j1", "a", "t1", alive)).toMatchObject({ server: "a", tokenHash: "t1" });
      expect(await store.jobs.claim("j1", "b", "t2", alive)).toBeUndefined();
      expect(await store.jobs.get("j1")).toMatchObject({ server: "a", tokenHash: "t1" });
      expect(await store.jobs.claim("j1", "a", "t3", alive)).toMatchObject({ server: "a", tokenHash: "t3" });
      // a's last beat is older than the dead line: b may take the job.
      expect(await store.jobs.claim("j1", "b", "t4", dead)).toMatchObject({ server: "b", tokenHash: "t4" });
      await store.jobs.update("j1", { state: "stalled" });
      expect(await store.jobs.claim("j1", "a", "t5", alive)).toMatchObject({ server: "a", tokenHash: "t5" });
      expect(await store.jobs.claim("nope", "a", "t", alive)).toBeUndefined();
      // Two servers claiming one boot at once: one gets it.
      await store.jobs.create(job("j2", "52:54:00:00:00:02"));
      const other = o.other();
      const raced = await Promise.all([store.jobs.claim("j2", "a", "ta", alive), other.jobs.claim("j2", "b", "tb", alive)]);
      expect(raced.filter((r) => r !== undefined)).toHaveLength(1);
      expect((await store.jobs.get("j2"))?.server).toBe(raced.find((r) => r)!.server);
    });

    it("snapshot: an SQLite copy of the whole store without the LUKS keys, which the SQLite store opens", async () => {
      const { store } = await b.open();
      await store.hosts.add(host("web1", ["52:54:00:00:00:01"]));
      await store.jobs.create(job("j1", "52:54:00:00:00:01", { trustHttpBoot: true }));
      await store.jobs.addEvent("j1", "armed", { by: "t" });
      await store.jobs.setKey("j1", UUID, PASS);
      const file = join(tempDir("lifeboat-snap-"), "copy.db");
      await store.snapshot(file);
      const raw = new Database(file, { readonly: true });
      expect(raw.prepare("SELECT COUNT(*) AS n FROM job_keys").get()).toEqual({ n: 0 });
      raw.close();
      const copy = track(new SqliteStore(file));
      expect((await copy.hosts.byMac("52:54:00:00:00:01"))?.name).toBe("web1");
      expect(await copy.jobs.get("j1")).toEqual(await store.jobs.get("j1"));
      expect((await copy.jobs.events("j1")).map((e) => e.data)).toEqual([{ by: "t" }]);
    });
  });
}

describeNeeding(postgresUnavailable(), "PostgreSQL store: migration rules and opening", () => {
  beforeAll(async () => {
    postgres ??= await startPostgres();
  });
  const keyFile = () => join(tempDir("lifeboat-pgkey-"), "store-key");

  it("applies migrations in id order, whatever their order in the list; an existing store gets only the new ones and keeps its data", async () => {
    const url = await postgres!.createDatabase();
    const key = keyFile();
    const first = track(new PgStore(url, { keyFile: key }));
    await first.hosts.add(host("web1", []));
    await first.close();
    opened.splice(opened.indexOf(first), 1);
    const extra = [
      { id: "9999-b", sql: "ALTER TABLE test_extra ADD COLUMN y INTEGER" },
      { id: "9998-a", sql: "CREATE TABLE test_extra (x INTEGER)" },
    ];
    const next = track(new PgStore(url, { keyFile: key, migrations: [...pgMigrations, ...extra] }));
    expect(await next.migrations()).toEqual([...pgMigrations.map((m) => m.id), "9998-a", "9999-b"]);
    expect((await next.hosts.get("web1"))?.name).toBe("web1");
    expect((await next.pool.query("SELECT x, y FROM test_extra")).rows).toEqual([]);
  });

  it("a failing migration is rolled back whole and names itself; a store from a newer Lifeboat is refused before anything changes", async () => {
    const url = await postgres!.createDatabase();
    const key = keyFile();
    const bad = { id: "9999-bad", sql: "CREATE TABLE half (x INTEGER); CREATE TABLE half (y INTEGER);" };
    const broken = track(new PgStore(url, { keyFile: key, migrations: [...pgMigrations, bad] }));
    await expect(broken.migrations()).rejects.toThrow(/migration 9999-bad failed and was rolled back: relation "half" already exists/);
    const ok = track(new PgStore(url, { keyFile: key }));
    expect(await ok.migrations()).toEqual(pgMigrations.map((m) => m.id));
    expect((await ok.pool.query("SELECT to_regclass('half') AS t")).rows).toEqual([{ t: null }]);
    await ok.pool.query("INSERT INTO schema_migrations (id, applied_at) VALUES ('9999-from-the-future', 'x')");
    const old = track(new PgStore(url, { keyFile: key }));
    await expect(old.hosts.list()).rejects.toThrow("the store comes from a newer Lifeboat (migration 9999-from-the-future unknown here); run that version or newer");
  });

  it("another server's job changes are heard (LISTEN/NOTIFY): the job and its event, never a server's own", async () => {
    const url = await postgres!.createDatabase();
    const key = keyFile();
    const a = track(new PgStore(url, { keyFile: key }));
    const b = track(new PgStore(url, { keyFile: key }));
    const heardByA: Array<[string, number | null]> = [];
    const heardByB: Array<[string, number | null]> = [];
    const stopA = await a.watchJobs((id, e) => heardByA.push([id, e]));
    const stopB = await b.watchJobs((id, e) => heardByB.push([id, e]));
    await b.jobs.create(job("j1", "52:54:00:00:00:01"));
    const t = await b.jobs.transition("j1", "armed", { patch: { state: "booted" }, events: [{ type: "booted", data: null }], dropKeys: false });
    const e = await b.jobs.addEvent("j1", "note", null);
    await b.jobs.claim("j1", "b", "t", new Date(0).toISOString());
    await vi.waitFor(() => expect(heardByA).toEqual([["j1", null], ["j1", t!.events[0]!.id], ["j1", e.id], ["j1", null]]), { timeout: 5000 });
    expect(heardByB).toEqual([]);
    await stopA();
    await b.jobs.update("j1", { error: "x" });
    await stopB();
    await new Promise((r) => setTimeout(r, 200));
    expect(heardByA).toHaveLength(4);
  });

  it("servers starting at once on a new store migrate it once", async () => {
    const url = await postgres!.createDatabase();
    const key = keyFile();
    const stores = [1, 2, 3].map(() => track(new PgStore(url, { keyFile: key })));
    const seen = await Promise.all(stores.map((s) => s.migrations()));
    for (const m of seen) expect(m).toEqual(pgMigrations.map((x) => x.id));
  });

  it("a server with another store key is refused at open, naming its key file; an unreachable database in one line", async () => {
    const url = await postgres!.createDatabase();
    const first = track(new PgStore(url, { keyFile: keyFile() }));
    await first.jobs.create(job("j1", "52:54:00:00:00:01"));
    await first.jobs.setKey("j1", UUID, PASS);
    const wrong = keyFile();
    const second = track(new PgStore(url, { keyFile: wrong }));
    await expect(second.jobs.takeKey("j1", UUID)).rejects.toThrow(`${wrong}: not the store key of postgresql://lifeboat@localhost/`);
    await expect(second.opened()).rejects.toThrow(/every server of one store needs the same store-key file/);
    expect(await first.jobs.keyIds("j1")).toEqual([UUID]);
    const nowhere = track(new PgStore(`postgresql://lifeboat:pw@localhost/none?host=${encodeURIComponent(join(postgres!.dir, "missing"))}`, { keyFile: keyFile() }));
    await expect(nowhere.opened()).rejects.toThrow(/^postgresql:\/\/lifeboat:\*\*\*@localhost\/none\?host=.*: cannot open the store \(/);
  });
});
