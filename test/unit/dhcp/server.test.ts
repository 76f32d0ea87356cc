/** The DHCP service's send path on a socket double: the proxy OFFER hold and its bounds. */
import type { Socket } from "node:dgram";
import { describe, expect, it } from "vitest";
import { MessageType, Opt, encode, ipBytes } from "../../../server/dhcp/codec.ts";
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

  it("holds at most 1024 OFFERs (a DISCOVER flood is dropped and counted, not queued); stop() cancels the held ones", async () => {
    const { svc, metrics } = dhcpService("proxy", 1000);
    const sock = new DgramDouble();
    for (let i = 0; i < 1100; i++) {
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
