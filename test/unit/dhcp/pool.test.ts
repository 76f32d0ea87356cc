import { afterEach, describe, expect, it } from "vitest";
import { MessageType, Opt, ipBytes } from "../../../server/dhcp/codec.ts";
import { LeasePool, clientKey } from "../../../server/dhcp/pool.ts";
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
const req = (n: number, ip: string, sid = "10.231.7.1", extra = {}) =>
  request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes(ip), [Opt.SERVER_ID]: ipBytes(sid), ...extra }, { chaddr: mac(n) });
/** INIT-REBOOT: option 50, no server identifier, no ciaddr. */
const reboot = (n: number, ip: string, extra = {}) => request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes(ip), ...extra }, { chaddr: mac(n) });
const decline = (n: number, ip: string, extra = {}) => request(MessageType.DECLINE, { [Opt.REQUESTED_IP]: ipBytes(ip), [Opt.SERVER_ID]: ipBytes("10.231.7.1"), ...extra }, { chaddr: mac(n) });
/** Offer then request: the address `n` got bound. */
async function bind(pool: LeasePool, n: number, extra = {}): Promise<string> {
  const o = await pool.decide(discover(n, extra));
  if (o.kind !== "offer") throw new Error(`no offer for ${n}: ${JSON.stringify(o)}`);
  expect(await pool.decide(req(n, o.lease.ip, "10.231.7.1", extra))).toMatchObject({ kind: "ack" });
  return o.lease.ip;
}

let stores: SqliteStore[] = [];
afterEach(async () => {
  for (const s of stores) await s.close();
  stores = [];
});

function setup(file = ":memory:", now = () => 1_000_000) {
  const store = new SqliteStore(file);
  stores.push(store);
  return { store, pool: new LeasePool(cfg, store.leases, "10.231.7.1", "lb1", now) };
}

describe("full-mode lease pool", () => {
  it("DISCOVER → offer, REQUEST → ack and a bound lease; the same MAC gets the same address again", async () => {
    const { pool, store } = setup();
    expect(await pool.decide(discover(1))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.100" } });
    expect(await pool.decide(req(1, "10.231.7.100"))).toMatchObject({ kind: "ack", lease: { ip: "10.231.7.100", leaseSeconds: 600 } });
    expect(await store.leases.byClient("52:54:00:07:00:01", "lb1")).toMatchObject({ state: "bound", ip: "10.231.7.100" });
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
    expect(await store.leases.byClient("52:54:00:07:00:03", "lb1")).toBeUndefined();
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

  it("a declined address stays out for its hold time, whatever the client that declined it does next", async () => {
    let t = 1_000_000;
    const { pool, store } = setup(":memory:", () => t);
    const first = await bind(pool, 1);
    expect(await pool.decide(decline(1, first))).toMatchObject({ kind: "none", reason: `declined ${first}` });
    // The decliner is offered another address (the write that used to delete its declined row) and binds it.
    const second = await bind(pool, 1);
    expect(second).not.toBe(first);
    expect(await store.leases.byIp(first)).toMatchObject({ state: "declined" });
    // Neither a new machine nor the decliner gets it back, not even by asking for it.
    expect(await pool.decide(discover(2, { [Opt.REQUESTED_IP]: ipBytes(first) }))).not.toMatchObject({ lease: { ip: first } });
    expect(await pool.decide(req(3, first))).toMatchObject({ kind: "nak" });
    expect(await pool.decide(reboot(1, first))).toMatchObject({ kind: "nak" });
    // A RELEASE of the declined address by its decliner does not free it either.
    await pool.decide(request(MessageType.RELEASE, {}, { chaddr: mac(1), ciaddr: first }));
    expect(await store.leases.byIp(first)).toMatchObject({ state: "declined" });
    // After the hold (10 min) it is an ordinary free address again.
    t += 11 * 60_000;
    expect(await pool.decide(discover(4, { [Opt.REQUESTED_IP]: ipBytes(first) }))).toMatchObject({ kind: "offer", lease: { ip: first } });
  });

  it("only the client an address was given to can decline it", async () => {
    const { pool, store } = setup();
    const ip = await bind(pool, 1);
    expect(await pool.decide(decline(2, ip))).toMatchObject({ kind: "none", reason: /not this client's address/ });
    expect(await pool.decide(decline(2, "10.231.7.102"))).toMatchObject({ kind: "none", reason: /not this client's address/ });
    expect(await store.leases.byIp(ip)).toMatchObject({ state: "bound", client: "52:54:00:07:00:01" });
    expect(await store.leases.byIp("10.231.7.102")).toBeUndefined();
  });

  it("a DISCOVER from a bound client keeps its binding: taking another server's offer does not drop it", async () => {
    const { pool, store } = setup();
    const ip = await bind(pool, 1);
    expect(await pool.decide(discover(1))).toMatchObject({ kind: "offer", lease: { ip } });
    expect(await store.leases.byIp(ip)).toMatchObject({ state: "bound" });
    expect(await pool.decide(req(1, "10.231.7.200", "10.231.7.2"))).toMatchObject({ kind: "none", reason: /chose server/ });
    expect(await store.leases.byIp(ip)).toMatchObject({ state: "bound" });
    expect(await pool.decide(req(2, ip))).toMatchObject({ kind: "nak" });
  });

  it("INIT-REBOOT: the bound address is confirmed, another (even a free one) is NAKed (RFC 2131 4.3.2)", async () => {
    const { pool, store } = setup();
    const ip = await bind(pool, 1);
    expect(await pool.decide(reboot(1, ip))).toMatchObject({ kind: "ack", lease: { ip } });
    expect(await pool.decide(reboot(1, "10.231.7.102"))).toMatchObject({ kind: "nak", message: /not this client's address/ });
    // RENEWING (ciaddr, no option 50) for another address too.
    const renew = request(MessageType.REQUEST, {}, { chaddr: mac(1), ciaddr: "10.231.7.102" });
    expect(await pool.decide(renew)).toMatchObject({ kind: "nak" });
    expect(await store.leases.byClient("52:54:00:07:00:01", "lb1")).toMatchObject({ ip, state: "bound" });
    expect(await store.leases.byIp("10.231.7.102")).toBeUndefined();
  });

  it("leases belong to the client identifier (option 61) when one is sent", async () => {
    const { pool, store } = setup();
    const idA = { [Opt.CLIENT_ID]: Buffer.from("ff0000000100010002abcdef", "hex") };
    const idB = { [Opt.CLIENT_ID]: Buffer.from("ff0000000200010002abcdef", "hex") };
    // Two clients behind one MAC (two OSes on one machine, a VM's DUIDs) hold two addresses.
    const a = await bind(pool, 1, idA);
    const b = await bind(pool, 1, idB);
    expect(a).not.toBe(b);
    expect(await store.leases.byClient("id:ff0000000100010002abcdef", "lb1")).toMatchObject({ ip: a, mac: "52:54:00:07:00:01", state: "bound" });
    // Each keeps its own; one's RELEASE does not free the other's.
    expect(await pool.decide(discover(1, idA))).toMatchObject({ lease: { ip: a } });
    await pool.decide(request(MessageType.RELEASE, idB, { chaddr: mac(1), ciaddr: a }));
    expect(await store.leases.byIp(a)).toMatchObject({ state: "bound" });
    expect(await pool.decide(reboot(1, a, idB))).toMatchObject({ kind: "nak" });
    // The same identifier from another MAC (a moved NIC) is the same client.
    expect(await pool.decide(discover(7, idA))).toMatchObject({ lease: { ip: a } });
  });

  it("a client identifier that only restates the MAC (iPXE, udhcpc) is the MAC: ROM, iPXE and OS share one lease", async () => {
    const { pool } = setup();
    const ip = await bind(pool, 1);
    const hwId = { [Opt.CLIENT_ID]: Buffer.from([1, 0x52, 0x54, 0, 7, 0, 1]) };
    expect(clientKey(discover(1, hwId))).toBe("52:54:00:07:00:01");
    expect(await pool.decide(reboot(1, ip, hwId))).toMatchObject({ kind: "ack", lease: { ip } });
    expect(clientKey(discover(1, { [Opt.CLIENT_ID]: Buffer.from([1, 0x52, 0x54, 0, 7, 0, 2]) }))).toBe("id:01525400070002");
  });

  it("expired rows are pruned: offers and declines when they expire, bound leases a day later", async () => {
    let t = 1_000_000;
    const { pool, store } = setup(":memory:", () => t);
    const bound = await bind(pool, 1);
    const offered = await pool.decide(discover(2));
    expect((await store.leases.list()).map((l) => l.state).sort()).toEqual(["bound", "offered"]);
    t += 2 * 60_000; // the offer expired; the bound lease (600 s) has not
    await pool.decide(request(MessageType.INFORM, {}, { chaddr: mac(3), ciaddr: "10.231.7.9" }));
    expect(await store.leases.list()).toEqual([expect.objectContaining({ ip: bound, state: "bound" })]);
    expect(offered).toMatchObject({ kind: "offer" });
    t += 20 * 60_000; // the bound lease expired, but is kept so the machine gets its address back
    await pool.decide(request(MessageType.INFORM, {}, { chaddr: mac(3), ciaddr: "10.231.7.9" }));
    expect(await store.leases.list()).toHaveLength(1);
    expect(await pool.decide(discover(1))).toMatchObject({ lease: { ip: bound } });
    t += 25 * 3600_000;
    await pool.decide(request(MessageType.INFORM, {}, { chaddr: mac(3), ciaddr: "10.231.7.9" }));
    expect(await store.leases.list()).toEqual([]);
  });

  it("leases from before leases had a server (server '') are taken over by the server whose pool range holds them", async () => {
    const { pool, store } = setup();
    const expiresAt = new Date(1_000_000 + 600_000).toISOString();
    const old = { client: "52:54:00:07:00:01", mac: "52:54:00:07:00:01", state: "bound" as const, hostname: null, expiresAt, server: "" };
    await store.leases.put({ ...old, ip: "10.231.7.101" });
    // Another LAN's lease (another server's range) and a lease another server already owns.
    await store.leases.put({ ...old, ip: "10.231.8.101", client: "52:54:00:08:00:01", mac: "52:54:00:08:00:01" });
    await store.leases.put({ ...old, ip: "10.231.7.102", client: "52:54:00:07:00:02", mac: "52:54:00:07:00:02", server: "lb2" });
    // Before: nobody's lease is not found by its client, who would be offered a second address.
    expect(await store.leases.byClient(old.client, "lb1")).toBeUndefined();
    expect(await pool.adoptUnowned()).toBe(1);
    expect(await store.leases.byClient(old.client, "lb1")).toMatchObject({ ip: "10.231.7.101", state: "bound", server: "lb1" });
    expect(await pool.decide(discover(1))).toMatchObject({ kind: "offer", lease: { ip: "10.231.7.101" } });
    expect((await store.leases.list()).map((l) => [l.ip, l.server]).sort()).toEqual([
      ["10.231.7.101", "lb1"],
      ["10.231.7.102", "lb2"],
      ["10.231.8.101", ""],
    ]);
    // Once is enough: a second start takes nothing.
    expect(await pool.adoptUnowned()).toBe(0);
  });

  it("refuses a pool that makes no sense", () => {
    const store = new SqliteStore(":memory:");
    stores.push(store);
    expect(() => new LeasePool({ ...cfg, start: "" }, store.leases, "10.231.7.1", "lb1")).toThrow(/required/);
    expect(() => new LeasePool({ ...cfg, end: "10.231.8.5" }, store.leases, "10.231.7.1", "lb1")).toThrow(/subnet/);
  });
});
