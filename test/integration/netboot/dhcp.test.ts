/**
 * DHCP on a real (namespace) LAN, 10.231.7.0/24, with the real `lifeboat serve`:
 * - full mode: busybox udhcpc with a PXE vendor class and option 93 gets a lease and the
 *   boot file; the lease is in the store and survives a restart.
 * - proxy mode beside dnsmasq (DHCP only): a PXE client gets dnsmasq's address offer and
 *   Lifeboat's proxy offer, then the boot file from port 4011; plain clients are left alone.
 * - two interfaces: each server only hears (and answers) its own interface's broadcasts.
 * - hostile packets on the wire are dropped and the server keeps answering.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MessageType, Opt, encode, ipBytes } from "../../../server/dhcp/codec.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { fixture, pxeDiscover, request } from "../../unit/dhcp/packets.ts";
import { type NsServer, serveInNs } from "./lifeboat-ns.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const skip = await netnsUnavailable();
const clientScript = fileURLToPath(new URL("./dhcp-client.ts", import.meta.url));

interface Reply { from: string; xid: number; type: number; yiaddr: string; siaddr: string; file: string; serverId: string; vendorClass: string | null; uuid: string | null; opt43: string | null }

let lan: Lan;
const work = tempDir("lbt7-dhcp-");

/** Sends `packet` from `member` and collects the replies heard in `ms`. */
async function exchange(member: string, packet: Buffer | Buffer[], dest = "255.255.255.255", destPort = 67, listenPort = 68, ms = 1500): Promise<Reply[]> {
  const hex = [packet].flat().map((p) => p.toString("hex")).join(",");
  const r = await lan.exec(member, [process.execPath, "--import", "tsx", clientScript, "-", dest, String(destPort), String(listenPort), String(ms)], { input: hex });
  if (r.exitCode !== 0) throw new Error(`dhcp client: ${r.stderr}`);
  return r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Reply);
}

const withMac = <T extends { chaddr: Buffer }>(p: T, last: number): T => {
  p.chaddr = Buffer.alloc(16);
  Buffer.from([0x52, 0x54, 0x00, 0x07, 0x01, last]).copy(p.chaddr);
  return p;
};

const udhcpcScript = join(work, "udhcpc.sh");
writeFileSync(udhcpcScript, `#!/bin/sh\n[ "$1" = bound ] && echo "BOUND ip=$ip siaddr=$siaddr boot_file=$boot_file serverid=$serverid"\nexit 0\n`, { mode: 0o755 });

async function udhcpc(member: string, args: string[]): Promise<string> {
  const r = await lan.exec(member, ["busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "4", "-T", "1", "-s", udhcpcScript, ...args], { timeout: 30_000 });
  return r.stdout;
}

describeNeeding(skip, "DHCP in a namespace LAN", () => {
  beforeAll(async () => {
    lan = await createLan({ prefix: "lbt7-dhcp", subnet: "10.231.7", members: { srv: 1, dhcp: 2, cli: 0, pxe: 9, other: null } });
    // Our test client sends from an address; limited broadcast needs a route out of eth0.
    await lan.exec("pxe", ["ip", "route", "add", "255.255.255.255/32", "dev", "eth0"]);
  });
  afterAll(async () => {
    await lan?.down();
  });

  describe("full mode", () => {
    let srv: NsServer;
    const dataDir = join(work, "full");
    const config = {
      listen: { interface: "eth0" },
      http: { port: 8080 },
      tftp: { enabled: true },
      dhcp: { mode: "full", pool: { start: "10.231.7.100", end: "10.231.7.150", router: "10.231.7.1", dns: ["10.231.7.1"], leaseSeconds: 600 }, staticLeases: [{ mac: "52:54:00:07:01:55", ip: "10.231.7.55" }] },
    };
    beforeAll(async () => {
      srv = await serveInNs(lan, "srv", dataDir, config, ["http", "tftp", "dhcp"]);
    });
    afterAll(async () => srv?.stop());

    it("logs one line for the DHCP service with its address", () => {
      const l = srv.lines().filter((x) => x.svc === "dhcp" && typeof x.address === "string");
      expect(l).toHaveLength(1);
      expect(l[0]!.msg).toBe("dhcp: full on eth0 (10.231.7.1) udp 67,4011");
    });

    it("busybox udhcpc with a PXE vendor class and option 93 gets a lease and undionly.kpxe", async () => {
      const out = await udhcpc("cli", ["-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"]);
      expect(out).toMatch(/BOUND ip=10\.231\.7\.1\d\d siaddr=10\.231\.7\.1 boot_file=undionly\.kpxe serverid=10\.231\.7\.1/);
      const plain = await udhcpc("cli", []);
      expect(plain).toMatch(/BOUND ip=10\.231\.7\.1\d\d siaddr=\S* boot_file= serverid=10\.231\.7\.1/);
    });

    it("the lease is kept in the store and survives a restart", async () => {
      const first = /ip=(\S+)/.exec(await udhcpc("cli", []))![1]!;
      await srv.stop();
      const store = new SqliteStore(join(dataDir, "lifeboat.db"));
      const leases = await store.leases.list();
      await store.close();
      expect(leases.find((l) => l.ip === first)).toMatchObject({ state: "bound" });
      srv = await serveInNs(lan, "srv", dataDir, config, ["http", "tftp", "dhcp"]);
      // Another machine asking for that address is refused; the owner gets it back.
      const other = withMac(request(MessageType.DISCOVER, { [Opt.REQUESTED_IP]: ipBytes(first) }), 0x77);
      const offers = await exchange("pxe", encode(other));
      expect(offers).toHaveLength(1);
      expect(offers[0]!.yiaddr).not.toBe(first);
      expect(/ip=(\S+)/.exec(await udhcpc("cli", []))![1]).toBe(first);
    });

    it("static lease by MAC; a relayed DISCOVER is answered to the relay", async () => {
      const p = withMac(pxeDiscover(7), 0x55);
      const offers = await exchange("pxe", encode(p));
      expect(offers[0]).toMatchObject({ yiaddr: "10.231.7.55", file: "snponly.efi", siaddr: "10.231.7.1" });
      const relayed = withMac(pxeDiscover(0), 0x56);
      relayed.giaddr = "10.231.7.9"; // the "pxe" namespace plays the relay agent: replies go to giaddr:67
      relayed.hops = 1;
      const viaRelay = await exchange("pxe", encode(relayed), "10.231.7.1", 67, 67);
      expect(viaRelay).toHaveLength(1);
      expect(viaRelay[0]).toMatchObject({ from: "10.231.7.1:67", type: MessageType.OFFER, file: "undionly.kpxe" });
    });

    it("drops a flood of hostile packets, counts them, and keeps answering", async () => {
      const junk = Array.from({ length: 300 }, (_, i) => (i % 2 ? randomBytes(i) : (() => {
        const b = encode(fixture("uefi-pxe-discover"));
        for (let k = 0; k < 8; k++) b[240 + ((i * 31 + k * 7) % 100)] = (i * k) & 255;
        return b;
      })()));
      const last = withMac(pxeDiscover(7), 0x60);
      last.xid = 0x600d600d;
      await exchange("pxe", junk, "255.255.255.255", 67, 68, 300);
      const offers = await exchange("pxe", encode(last));
      expect(offers.find((o) => o.xid === last.xid)).toMatchObject({ type: MessageType.OFFER, file: "snponly.efi" });
      const metrics = await (await lan.exec("srv", ["curl", "-s", "http://10.231.7.1:8080/metrics"])).stdout;
      expect(Number(/lifeboat_dhcp_dropped_total\{reason="malformed"\} (\d+)/.exec(metrics)?.[1])).toBeGreaterThan(50);
      expect(metrics).toMatch(/lifeboat_dhcp_answers_total\{kind="offer"\} \d+/);
    });
  });

  describe("proxy mode beside dnsmasq", () => {
    let srv: NsServer;
    beforeAll(async () => {
      const conf = join(work, "dnsmasq.conf");
      writeFileSync(conf, ["port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping", "dhcp-authoritative", `dhcp-leasefile=${join(work, "dnsmasq.leases")}`, "dhcp-range=10.231.7.160,10.231.7.199,255.255.255.0,1h", ""].join("\n"));
      lan.spawn("dhcp", ["dnsmasq", "-k", `--conf-file=${conf}`]);
      srv = await serveInNs(lan, "srv", join(work, "proxy"), { listen: { interface: "eth0" }, http: { port: 8080 }, dhcp: { mode: "proxy" } }, ["http", "tftp", "dhcp"]);
    });
    afterAll(async () => srv?.stop());

    it("a PXE client hears dnsmasq's address offer and Lifeboat's proxy offer (no address, option 60 and 97 echoed)", async () => {
      const d = withMac(fixture("uefi-pxe-discover"), 0x20);
      const offers = await exchange("pxe", encode(d), "255.255.255.255", 67, 68, 2500);
      const fromDnsmasq = offers.find((o) => o.serverId === "10.231.7.2");
      const fromUs = offers.find((o) => o.serverId === "10.231.7.1");
      expect(fromDnsmasq?.yiaddr).toMatch(/^10\.231\.7\.1[6-9]\d$/);
      expect(fromUs).toMatchObject({ yiaddr: "0.0.0.0", siaddr: "10.231.7.1", file: "snponly.efi", vendorClass: "PXEClient", uuid: "00".repeat(17), opt43: null });
    });

    it("the follow-up REQUEST on 4011 gets the boot file back to the client's port (iPXE sends only 'PXEClient' there)", async () => {
      const req = withMac(request(MessageType.REQUEST, { [Opt.VENDOR_CLASS]: "PXEClient", [Opt.CLIENT_ARCH]: Buffer.from([0, 0]), [Opt.USER_CLASS]: "iPXE" }, { ciaddr: "10.231.7.9" }), 0x21);
      const acks = await exchange("pxe", encode(req), "10.231.7.1", 4011, 68);
      expect(acks).toEqual([expect.objectContaining({ from: "10.231.7.1:4011", type: MessageType.ACK, file: "http://10.231.7.1:8080/boot.ipxe" })]);
      const ovmf = withMac(fixture("uefi-pxe-discover"), 0x22);
      ovmf.options.set(Opt.MESSAGE_TYPE, Buffer.from([MessageType.REQUEST]));
      ovmf.ciaddr = "10.231.7.9";
      const fromOvmf = await exchange("pxe", encode(ovmf), "10.231.7.1", 4011, 4011);
      expect(fromOvmf).toEqual([expect.objectContaining({ from: "10.231.7.1:4011", file: "snponly.efi" })]);
    });

    it("a plain client gets its lease from dnsmasq and nothing from Lifeboat", async () => {
      expect(await udhcpc("cli", [])).toMatch(/BOUND ip=10\.231\.7\.1[6-9]\d .*serverid=10\.231\.7\.2/);
      expect(srv.lines().some((l) => l.svc === "dhcp" && /^ignored: not a network-boot client/.test(l.msg))).toBe(true);
    });

    it("an unknown architecture gets no answer and a log line", async () => {
      const offers = await exchange("pxe", encode(withMac(pxeDiscover(42), 0x23)));
      expect(offers.filter((o) => o.serverId === "10.231.7.1")).toEqual([]);
      expect(srv.lines().some((l) => l.msg === "no answer: unknown client architecture 42")).toBe(true);
    });
  });

  describe("two interfaces", () => {
    it("each server hears only its own interface's broadcasts (SO_BINDTOIFINDEX)", async () => {
      // srv gets a second link to "other" (10.231.7.201/32 <-> .202/32, outside the LAN bridge).
      await lan.addSecondLink("srv", "eth1", "10.231.7.201/32", "other", "eth0", "10.231.7.202/32");
      await lan.exec("srv", ["ip", "route", "add", "10.231.7.202/32", "dev", "eth1"]);
      await lan.exec("other", ["ip", "route", "add", "10.231.7.201/32", "dev", "eth0"]);
      await lan.exec("other", ["ip", "route", "add", "255.255.255.255/32", "dev", "eth0"]);
      const a = await serveInNs(lan, "srv", join(work, "if-a"), { listen: { interface: "eth0" }, http: { port: 8081 }, tftp: { enabled: false }, dhcp: { mode: "proxy" } }, ["dhcp"]);
      const b = await serveInNs(lan, "srv", join(work, "if-b"), { listen: { interface: "eth1" }, http: { port: 8082 }, tftp: { enabled: false }, dhcp: { mode: "proxy" } }, ["dhcp"]);
      try {
        const fromLan = await exchange("pxe", encode(withMac(pxeDiscover(7), 0x30)));
        const fromOther = await exchange("other", encode(withMac(pxeDiscover(7), 0x31)));
        expect(fromLan.map((o) => o.serverId)).toEqual(["10.231.7.1"]);
        expect(fromOther.map((o) => o.serverId)).toEqual(["10.231.7.201"]);
      } finally {
        await a.stop();
        await b.stop();
      }
    });
  });
});
