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
  /** The loop as the shedder sees it: the test moves the clock and says how much of the time was busy. */
  class FakeLoop {
    private t = 0;
    private busy = 0;
    now = () => this.t;
    load = () => ({ active: this.busy, idle: this.t - this.busy });
    pass(ms: number, utilization: number): void {
      this.t += ms;
      this.busy += ms * utilization;
    }
  }
  const chaddr = (n: number) => Buffer.from([0x52, 0x54, 0x00, 0x64, 0, n, ...Array<number>(10).fill(0)]);
  const discover = (n: number) => encode(request(MessageType.DISCOVER, {}, { chaddr: chaddr(n), xid: n }));
  const answers = async (metrics: import("prom-client").Registry) =>
    Object.fromEntries((await metrics.getSingleMetric("lifeboat_dhcp_answers_total")!.get()).values.map((v) => [v.labels.kind, v.value]));

  it("a saturated loop with a DISCOVER flood sheds the next DISCOVERs (counted, unanswered), still ACKs a REQUEST, and answers again once idle", async () => {
    const loop = new FakeLoop();
    const { svc, metrics } = dhcpService("full", 0, loop);
    const sock = new DgramDouble() as unknown as Socket;
    // 25 DISCOVERs in 17.5 ms of a loop 95 % busy: answered while that sample is open
    for (let n = 1; n <= 25; n++) {
      await svc.receive(sock, 67, discover(n), rinfo("0.0.0.0", 68));
      loop.pass(0.7, 0.95);
    }
    // the next DISCOVERs close the sample (26 datagrams in 20.5 ms, 95 % busy): shed
    loop.pass(3, 0.95);
    await svc.receive(sock, 67, discover(100), rinfo("0.0.0.0", 68));
    await svc.receive(sock, 67, discover(101), rinfo("0.0.0.0", 68));
    // client 1 was offered an address before the flood: its REQUEST completes the handshake
    const offered = "10.231.7.100";
    const req = encode(request(MessageType.REQUEST, { [Opt.SERVER_ID]: ipBytes("10.231.7.1"), [Opt.REQUESTED_IP]: ipBytes(offered) }, { chaddr: chaddr(1), xid: 1 }));
    await svc.receive(sock, 67, req, rinfo("0.0.0.0", 68));
    await sleep(20);
    expect((await drops(metrics)).overload).toBe(2);
    expect(await answers(metrics)).toEqual({ offer: 25, ack: 1 });
    // still 80 % busy (above the stop mark): still shedding
    loop.pass(25, 0.8);
    await svc.receive(sock, 67, discover(102), rinfo("0.0.0.0", 68));
    expect((await drops(metrics)).overload).toBe(3);
    // idle: the next sample ends the shedding
    loop.pass(25, 0.1);
    await svc.receive(sock, 67, discover(103), rinfo("0.0.0.0", 68));
    await sleep(20);
    expect((await drops(metrics)).overload).toBe(3);
    expect((await answers(metrics)).offer).toBe(26);
  });

  it("a loop busy with something else while a few machines boot sheds nothing", async () => {
    const loop = new FakeLoop();
    const { svc, metrics } = dhcpService("full", 0, loop);
    const sock = new DgramDouble() as unknown as Socket;
    for (let n = 1; n <= 10; n++) {
      loop.pass(25, 1);
      await svc.receive(sock, 67, discover(n), rinfo("0.0.0.0", 68));
    }
    await sleep(20);
    expect((await drops(metrics)).overload).toBeUndefined();
    expect((await answers(metrics)).offer).toBe(10);
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
