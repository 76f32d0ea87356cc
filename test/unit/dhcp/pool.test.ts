import { afterEach, describe, expect, it } from "vitest";
import { MessageType, Opt, ipBytes } from "../../../server/dhcp/codec.ts";
import { LeasePool } from "../../../server/dhcp/pool.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { request } from "./packets.ts";

const cfg = {
  start: "10.231.7.100", end: "10.231.7.102", netmask: "255.255.255.0", router: "10.231.7.1", dns: [], leaseSeconds: 600,
  staticLeases: [{ mac: "52-54-00-07-00-99", ip: "10.231.7.50", hostname: "fixed" }],
};
const mac = (n: number) => {
  const c = Buffer.alloc(16);
  Buffer.from([0x52, 0x54, 0, 7, 0, n]).copy(c);
  return c;
};
const discover = (n: number, extra = {}) => request(MessageType.DISCOVER, extra, { chaddr: mac(n) });
const req = (n: number, ip: string, sid = "10.231.7.1") =>
  request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes(ip), [Opt.SERVER_ID]: ipBytes(sid) }, { chaddr: mac(n) });

let stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores) await s.close();
  stores = [];
});

function setup(file = ":memory:", now = () => 1_000_000) {
  const store = new SqliteStore(file);
  stores.push(store);
  return { store, pool: new LeasePool(cfg, store.leases, "10.231.7.1", now) };
}

describe("full-mode lease pool", () => {
  it("DISCOVER → offer, REQUEST → ack and a bound lease; the same MAC gets the same address again", async () => {
    const { pool, store } = setup();
    expect(await pool.decide(discover(1))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.100" } });
    expect(await pool.decide(req(1, "10.231.7.100"))).toMatchObject({ kind: "ack", lease: { ip: "10.231.7.100", leaseSeconds: 600 } });
    expect(await store.leases.byMac("52:54:00:07:00:01")).toMatchObject({ state: "bound", ip: "10.231.7.100" });
    expect(await pool.decide(discover(1))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.100" } });
  });

  it("static leases by MAC, never handed to another machine", async () => {
    const { pool } = setup();
    expect(await pool.decide(discover(0x99))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.50", hostname: "fixed" } });
    expect(await pool.decide(req(0x99, "10.231.7.50"))).toMatchObject({ kind: "ack" });
    expect(await pool.decide(req(0x99, "10.231.7.100"))).toMatchObject({ kind: "nak" });
  });

  it("NAKs an address held by someone else, stays silent when the client chose another server", async () => {
    const { pool, store } = setup();
    await pool.decide(discover(1));
    await pool.decide(req(1, "10.231.7.100"));
    expect(await pool.decide(req(2, "10.231.7.100"))).toMatchObject({ kind: "nak" });
    await pool.decide(discover(3));
    expect(await pool.decide(req(3, "10.231.7.200", "10.231.7.2"))).toMatchObject({ kind: "none", reason: /chose server/ });
    expect(await store.leases.byMac("52:54:00:07:00:03")).toBeUndefined();
  });

  it("runs out cleanly, RELEASE frees, DECLINE parks the address", async () => {
    const { pool } = setup();
    for (const n of [1, 2, 3]) {
      const o = await pool.decide(discover(n));
      if (o.kind !== "offer") throw new Error("no offer");
      await pool.decide(req(n, o.lease.ip));
    }
    expect(await pool.decide(discover(4))).toMatchObject({ kind: "none", reason: /exhausted/ });
    await pool.decide(request(MessageType.RELEASE, {}, { chaddr: mac(2), ciaddr: "10.231.7.101" }));
    expect(await pool.decide(discover(4))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.101" } });
    await pool.decide(request(MessageType.DECLINE, { [Opt.REQUESTED_IP]: ipBytes("10.231.7.101") }, { chaddr: mac(4) }));
    expect(await pool.decide(discover(4))).toMatchObject({ kind: "none", reason: /exhausted/ });
  });

  it("offers expire; bound leases survive a restart (kept in the store)", async () => {
    let t = 1_000_000;
    const file = `${tempDir()}/lifeboat.db`;
    const a = setup(file, () => t);
    await a.pool.decide(discover(1));
    await a.pool.decide(req(1, "10.231.7.100"));
    await a.pool.decide(discover(2)); // offered .101, never requested
    await a.store.close();
    stores = [];
    t += 120_000;
    const b = setup(file, () => t);
    expect(await b.pool.decide(discover(3))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.101" } });
    expect(await b.pool.decide(req(9, "10.231.7.100"))).toMatchObject({ kind: "nak" });
  });

  it("relays: answers for the pool's subnet only", async () => {
    const { pool } = setup();
    expect(await pool.decide(request(MessageType.DISCOVER, {}, { chaddr: mac(1), giaddr: "10.231.7.254" }))).toMatchObject({ kind: "offer" });
    expect(await pool.decide(request(MessageType.DISCOVER, {}, { chaddr: mac(1), giaddr: "10.9.9.1" }))).toMatchObject({ kind: "none", reason: /relay/ });
  });

  it("INFORM gets configuration without an address; INIT-REBOOT for an unknown foreign address stays silent", async () => {
    const { pool } = setup();
    expect(await pool.decide(request(MessageType.INFORM, {}, { chaddr: mac(1), ciaddr: "10.231.7.9" }))).toMatchObject({ kind: "inform" });
    const reboot = request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes("10.231.7.9") }, { chaddr: mac(1) });
    expect(await pool.decide(reboot)).toMatchObject({ kind: "none" });
    const wrongNet = request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes("192.168.1.9") }, { chaddr: mac(1) });
    expect(await pool.decide(wrongNet)).toMatchObject({ kind: "nak" });
  });

  it("refuses a pool that makes no sense", () => {
    const store = new SqliteStore(":memory:");
    stores.push(store);
    expect(() => new LeasePool({ ...cfg, start: "" }, store.leases, "10.231.7.1")).toThrow(/required/);
    expect(() => new LeasePool({ ...cfg, end: "10.231.8.5" }, store.leases, "10.231.7.1")).toThrow(/subnet/);
  });
});
