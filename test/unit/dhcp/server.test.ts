/** The DHCP service's send path on a socket double: the proxy OFFER hold and its bounds. */
import type { Socket } from "node:dgram";
import { describe, expect, it } from "vitest";
import { MessageType, Opt, decode, encode, ipBytes } from "../../../server/dhcp/codec.ts";
import { MAX_HELD_OFFERS } from "../../../server/dhcp/server.ts";
import { canonicalSmbiosUuid } from "../../../server/smbios-uuid.ts";
import type { JobRecord } from "../../../server/store/types.ts";
import { pxeDiscover, request } from "./packets.ts";
import { DgramDouble, dhcpService, drops, rinfo } from "./service.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("proxy OFFER hold (dhcp.proxyOfferDelayMs)", () => {
  it("holds a proxy OFFER for the delay, then sends it once; a retransmitted DISCOVER neither postpones nor doubles it", async () => {
    const { svc, metrics } = dhcpService("proxy", 150);
    const sock = new DgramDouble();
    const d = encode(pxeDiscover(7));
    await svc.receive(sock as unknown as Socket, 67, d, rinfo("0.0.0.0", 68));
    await sleep(60);
    await svc.receive(sock as unknown as Socket, 67, d, rinfo("0.0.0.0", 68)); // retransmission, same xid (iPXE resends after 1 s)
    await sleep(40);
    expect(sock.sent).toEqual([]);
    await sleep(80); // 180 ms after the first DISCOVER, 120 ms after the second
    expect(sock.sent).toEqual([{ port: 68, address: "255.255.255.255" }]);
    await sleep(200);
    expect(sock.sent).toHaveLength(1);
    expect(await drops(metrics)).toMatchObject({ "held-already": 1 });
    const answers = (await metrics.getSingleMetric("lifeboat_dhcp_answers_total")!.get()).values;
    expect(answers).toEqual([expect.objectContaining({ labels: { kind: "proxy-offer" }, value: 1 })]);
  });

  it("answers on 4011 and in full mode at once (only proxy OFFERs race the LAN's DHCP server)", async () => {
    const sock = new DgramDouble();
    const proxy = dhcpService("proxy", 1000).svc;
    const req = encode(request(MessageType.REQUEST, { 60: "PXEClient", 93: Buffer.from([0, 7]) }, { ciaddr: "10.231.7.9" }));
    await proxy.receive(sock as unknown as Socket, 4011, req, rinfo("10.231.7.9", 4011));
    const full = dhcpService("full", 1000).svc;
    await full.receive(sock as unknown as Socket, 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
    await sleep(20);
    expect(sock.sent).toEqual([{ port: 4011, address: "10.231.7.9" }, { port: 68, address: "255.255.255.255" }]);
  });

  it("holds at most MAX_HELD_OFFERS OFFERs (a DISCOVER flood is dropped and counted, not queued); stop() cancels the held ones", async () => {
    const { svc, metrics } = dhcpService("proxy", 1000);
    const sock = new DgramDouble();
    for (let i = 0; i < MAX_HELD_OFFERS + 76; i++) {
      const p = pxeDiscover(7);
      p.xid = i;
      await svc.receive(sock as unknown as Socket, 67, encode(p), rinfo("0.0.0.0", 68));
    }
    expect(await drops(metrics)).toMatchObject({ "hold-full": 76 });
    await svc.stop();
    await sleep(1100);
    expect(sock.sent).toEqual([]);
  });
});

describe("overload (full mode): shed new DISCOVERs, finish started handshakes", () => {
  /** The loop's turns, ended by the test: what the shedder counted in a turn is decided when it ends. */
  class Turns {
    private ends: Array<() => void> = [];
    afterTurn = (fn: () => void) => void this.ends.push(fn);
    end(): void {
      for (const fn of this.ends.splice(0)) fn();
    }
  }
  const chaddr = (n: number) => Buffer.from([0x52, 0x54, 0x00, 0x64, 0, n, ...Array<number>(10).fill(0)]);
  const discover = (n: number) => encode(request(MessageType.DISCOVER, {}, { chaddr: chaddr(n), xid: n }));
  const answers = async (metrics: import("prom-client").Registry) =>
    Object.fromEntries((await metrics.getSingleMetric("lifeboat_dhcp_answers_total")!.get()).values.map((v) => [v.labels.kind, v.value]));

  it("after a turn that read a full batch (a queue behind it), new DISCOVERs are shed (counted, unanswered), a REQUEST is still ACKed; a drained turn ends it", async () => {
    const turns = new Turns();
    const { svc, metrics } = dhcpService("full", 0, turns);
    const sock = new DgramDouble() as unknown as Socket;
    const rx = (b: Buffer) => svc.receive(sock, 67, b, rinfo("0.0.0.0", 68));
    // one turn of 31 DISCOVERs: no full batch, all answered, no shedding after it
    for (let n = 1; n <= 31; n++) await rx(discover(n));
    turns.end();
    await rx(discover(40));
    turns.end();
    expect((await drops(metrics)).overload).toBeUndefined();
    // a turn of 32 datagrams, 2 of them malformed (they count: the queue is the queue)
    for (let n = 41; n <= 70; n++) await rx(discover(n));
    await rx(Buffer.alloc(10));
    await rx(Buffer.alloc(10));
    turns.end();
    await sleep(20);
    expect(await answers(metrics)).toEqual({ offer: 62 });
    // behind: new DISCOVERs are shed; client 1's REQUEST (offered before) completes its handshake
    await rx(discover(100));
    await rx(discover(101));
    const req = encode(request(MessageType.REQUEST, { [Opt.SERVER_ID]: ipBytes("10.231.7.1"), [Opt.REQUESTED_IP]: ipBytes("10.231.7.100") }, { chaddr: chaddr(1), xid: 1 }));
    await rx(req);
    for (let n = 102; n <= 106; n++) await rx(discover(n));
    turns.end(); // 8 datagrams: still behind
    await rx(discover(107));
    turns.end(); // 1 datagram: drained
    turns.end(); // (an idle turn changes nothing)
    await sleep(20);
    expect((await drops(metrics)).overload).toBe(8);
    expect(await answers(metrics)).toEqual({ offer: 62, ack: 1 });
    await rx(discover(108));
    await sleep(20);
    expect((await drops(metrics)).overload).toBe(8);
    expect((await answers(metrics)).offer).toBe(63);
  });

  it("a flood that stops leaves no shedding behind: the next turn without datagrams ends it", async () => {
    const turns = new Turns();
    const { svc, metrics } = dhcpService("full", 0, turns);
    const sock = new DgramDouble() as unknown as Socket;
    for (let n = 1; n <= 40; n++) await svc.receive(sock, 67, discover(n), rinfo("0.0.0.0", 68));
    turns.end();
    turns.end(); // nothing came in this turn: the queue is empty
    await svc.receive(sock, 67, discover(41), rinfo("0.0.0.0", 68));
    await sleep(20);
    expect((await drops(metrics)).overload).toBeUndefined();
    expect((await answers(metrics)).offer).toBe(41);
  });
});

describe("what the DHCP service tells the boot service (a boot token goes only to the address it answered)", () => {
  const mac = "52:54:00:07:00:42";
  const sock = () => new DgramDouble() as unknown as Socket;

  it("proxy: the OFFER has no address; the REQUEST to the LAN's server names it; a 4011 follow-up carries it as ciaddr", async () => {
    const { svc, witness } = dhcpService("proxy");
    await svc.receive(sock(), 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
    const toLan = request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes("10.231.7.160"), [Opt.SERVER_ID]: ipBytes("10.231.7.254"), [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003000" });
    await svc.receive(sock(), 67, encode(toLan), rinfo("0.0.0.0", 68));
    await svc.receive(sock(), 4011, encode(request(MessageType.REQUEST, { 60: "PXEClient", 93: Buffer.from([0, 7]) }, { ciaddr: "10.231.7.160" })), rinfo("10.231.7.160", 4011));
    expect(witness.told).toEqual([
      ["answered", mac, null],
      ["requested", mac, "10.231.7.160"],
      ["answered", mac, "10.231.7.160"],
    ]);
  });

  it("full: the lease in the answer; a client that is not network-booting is not a boot answer", async () => {
    const { svc, witness } = dhcpService("full");
    await svc.receive(sock(), 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
    await svc.receive(sock(), 67, encode(request(MessageType.DISCOVER, { 60: "udhcp 1.36.1" })), rinfo("0.0.0.0", 68));
    expect(witness.told).toEqual([["answered", mac, "10.231.7.42"]]);
  });
});

describe("reserved mode: full DHCP for armed MACs and static leases, silence to everyone else", () => {
  /** A socket double that keeps the replies, decoded. */
  class Keeping {
    readonly replies: Array<ReturnType<typeof decode>> = [];
    send(buf: Buffer, _port: number, _address: string, cb: (err: Error | null) => void): void {
      this.replies.push(decode(buf));
      setImmediate(() => cb(null));
    }
  }
  const chaddr = (last: number) => Buffer.from([0x52, 0x54, 0x00, 0x21, 0x00, last, ...Array<number>(10).fill(0)]);
  const mac = (last: number) => `52:54:00:21:00:${last.toString(16).padStart(2, "0")}`;
  const job = (id: string, m: string, state: JobRecord["state"] = "armed"): Omit<JobRecord, "createdAt" | "updatedAt"> => ({
    id, mac: m, kind: "recover", profile: "p", state, step: 0, steps: 0, bytesDone: 0, bytesTotal: 0,
    tokenHash: null, hostname: null, at: null, hello: null, mapping: null, plan: null, error: null, armedBy: "test",
    expiresAt: new Date(Date.now() + 3600_000).toISOString(), lastHeartbeatAt: null, planTokenHash: null, trustHttpBoot: false, options: {}, powerWave: null, server: null,
  });
  const yiaddrs = (s: Keeping) => s.replies.map((r) => (r.ok ? r.packet.yiaddr : "malformed"));

  it("a stranger's PXE DISCOVER, plain DISCOVER, REQUEST and 4011 follow-up get nothing, each counted as not-reserved", async () => {
    const { svc, metrics, witness } = dhcpService("reserved");
    const s = new Keeping();
    const sock = s as unknown as Socket;
    await svc.receive(sock, 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68)); // the static-lease MAC: answered
    const stranger = { chaddr: chaddr(9) };
    await svc.receive(sock, 67, encode(request(MessageType.DISCOVER, { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003000", [Opt.CLIENT_ARCH]: Buffer.from([0, 7]) }, stranger)), rinfo("0.0.0.0", 68));
    await svc.receive(sock, 67, encode(request(MessageType.DISCOVER, {}, stranger)), rinfo("0.0.0.0", 68));
    await svc.receive(sock, 67, encode(request(MessageType.REQUEST, { [Opt.REQUESTED_IP]: ipBytes("10.231.7.120"), [Opt.SERVER_ID]: ipBytes("10.231.7.1") }, stranger)), rinfo("0.0.0.0", 68));
    await svc.receive(sock, 4011, encode(request(MessageType.REQUEST, { 60: "PXEClient", 93: Buffer.from([0, 7]) }, { ...stranger, ciaddr: "10.231.7.160" })), rinfo("10.231.7.160", 4011));
    await sleep(10);
    expect(yiaddrs(s)).toEqual(["10.231.7.42"]);
    expect((await drops(metrics))["not-reserved"]).toBe(4);
    expect(witness.told).toEqual([["answered", "52:54:00:07:00:42", "10.231.7.42"]]);
  });

  it("a MAC with an active job gets a lease and its PXE answer from the pool; once the job ends it gets nothing", async () => {
    const { svc, metrics, store } = dhcpService("reserved");
    const s = new Keeping();
    const sock = s as unknown as Socket;
    const discover = encode(request(MessageType.DISCOVER, { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003000", [Opt.CLIENT_ARCH]: Buffer.from([0, 7]) }, { chaddr: chaddr(1) }));
    await svc.receive(sock, 67, discover, rinfo("0.0.0.0", 68));
    expect((await drops(metrics))["not-reserved"]).toBe(1);
    await store.jobs.create(job("j-armed", mac(1)));
    await svc.receive(sock, 67, discover, rinfo("0.0.0.0", 68));
    // A job past booting (the restore running) still has its lease renewed: the rescue system's udhcpc asks.
    await store.jobs.update("j-armed", { state: "running" });
    const renew = encode(request(MessageType.REQUEST, {}, { chaddr: chaddr(1), ciaddr: "10.231.7.100" }));
    await svc.receive(sock, 67, renew, rinfo("10.231.7.100", 68));
    await sleep(10);
    expect(s.replies).toHaveLength(2);
    const offer = s.replies[0]!;
    if (!offer.ok) throw new Error(offer.error);
    expect(offer.packet.yiaddr).toBe("10.231.7.100");
    expect(offer.packet.file).toBe("snponly.efi");
    expect(yiaddrs(s)[1]).toBe("10.231.7.100");
    await store.jobs.update("j-armed", { state: "done" });
    await svc.receive(sock, 67, renew, rinfo("10.231.7.100", 68));
    await sleep(10);
    expect(s.replies).toHaveLength(2);
    expect((await drops(metrics))["not-reserved"]).toBe(2);
  });

  it("a job armed on a host's other NIC, found through the host by this MAC or by the SMBIOS UUID the firmware sends (option 97)", async () => {
    const { svc, store } = dhcpService("reserved");
    const s = new Keeping();
    const sock = s as unknown as Socket;
    const guid = Buffer.from("00112233445566778899aabbccddeeff", "hex");
    await store.hosts.add({ name: "db1", tokenHash: "x", smbiosUuid: canonicalSmbiosUuid(guid) ?? null, macs: [mac(2), mac(3)], amandaConfig: null, dleMap: {} });
    await store.jobs.create(job("j-host", mac(3)));
    await svc.receive(sock, 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
    const pxe = { [Opt.VENDOR_CLASS]: "PXEClient:Arch:00007:UNDI:003000", [Opt.CLIENT_ARCH]: Buffer.from([0, 7]) };
    await svc.receive(sock, 67, encode(request(MessageType.DISCOVER, pxe, { chaddr: chaddr(2) })), rinfo("0.0.0.0", 68));
    // A NIC Lifeboat never saw, in the same machine: only the UUID ties it to the host.
    await svc.receive(sock, 67, encode(request(MessageType.DISCOVER, { ...pxe, [Opt.CLIENT_UUID]: Buffer.concat([Buffer.from([0]), guid]) }, { chaddr: chaddr(4) })), rinfo("0.0.0.0", 68));
    await svc.receive(sock, 67, encode(request(MessageType.DISCOVER, pxe, { chaddr: chaddr(5) })), rinfo("0.0.0.0", 68));
    await sleep(10);
    expect(yiaddrs(s)).toEqual(["10.231.7.42", "10.231.7.100", "10.231.7.101"]);
  });
});
