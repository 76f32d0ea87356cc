/**
 * DHCP clients nobody here wrote against the real `lifeboat serve`, in one namespace LAN
 * (10.231.41.0/24): Debian 12's ISC dhclient, dhcpcd, busybox udhcpc, nmap's dhcp-discover
 * script and dhcping. Each defect of issue 27 that a client found has its scenario here,
 * beside the behaviour that already passed (lease, renew, release, INIT-REBOOT, INFORM,
 * NAK, proxy silence towards plain clients):
 * - full mode: dhclient's INIT-REBOOT for another address is NAKed and it is given its own
 *   back; udhcpc's ARP check DECLINEs an address in use, which then stays out even after
 *   the decliner took another; dhcpcd's DUID client identifier keys its lease; /healthz
 *   keeps answering while 64 KB hostile datagrams arrive (issue 16).
 * - proxy mode beside dnsmasq (with its ping check, and a 1 s reply delay standing for a
 *   LAN server that is not instant): dhclient and udhcpc sending a PXE vendor class end up
 *   with dnsmasq's address, not Lifeboat's empty offer; dhcpcd too; a plain client hears
 *   nothing from Lifeboat.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ResultPromise } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type NsServer, serveInNs } from "./lifeboat-ns.ts";

const TOOLS = ["/usr/sbin/dhclient", "/usr/sbin/dhcpcd", "/usr/bin/nmap", "/usr/sbin/dhcping", "/bin/busybox", "/usr/sbin/dnsmasq"];
const missing = TOOLS.filter((t) => !existsSync(t));
const skip = (await netnsUnavailable()) ?? (missing.length ? `missing ${missing.join(", ")} (scripts/bootstrap installs them)` : undefined);
// Under CI nothing is skipped: the suite runs and fails naming what is missing.
const skipHere = skip !== undefined && process.env.CI !== "true";
if (skipHere) console.warn(`SKIPPED DHCP interop tests: ${skip}`);

const NET = "10.231.41";
const SRV = `${NET}.1`;
const MAC = { a: "52:54:00:29:00:0a", b: "52:54:00:29:00:0b", c: "52:54:00:29:00:0c" } as const;
const PXE_CLASS = "PXEClient:Arch:00000:UNDI:002001";
const flood = fileURLToPath(new URL("./dhcp-flood.ts", import.meta.url));
const work = tempDir("lbdh-interop-");
let lan: Lan;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, fn: () => T | undefined | false, ms: number, detail: () => string = () => ""): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}\n${detail()}`);
    await sleep(50);
  }
}
const read = (f: string) => (existsSync(f) ? readFileSync(f, "utf8") : "");

/** A client's hook script: appends "<event> <ip> <server id>" to `events` and configures eth0 like the real hooks would. */
function hookScript(name: string, kind: "dhclient" | "udhcpc"): { script: string; events: () => string[] } {
  const events = join(work, `${name}.events`);
  const script = join(work, `${name}.sh`);
  const body =
    kind === "dhclient"
      ? `echo "$reason \${new_ip_address:-$old_ip_address} $new_dhcp_server_identifier" >> ${events}
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip -4 addr flush dev "$interface"; ip addr add "$new_ip_address/24" dev "$interface" ;;
  EXPIRE|FAIL|RELEASE|STOP) ip -4 addr flush dev "$interface" ;;
esac`
      : `echo "$1 $ip $serverid" >> ${events}
case "$1" in
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/24" dev "$interface" ;;
  deconfig) ip -4 addr flush dev "$interface" ;;
esac`;
  writeFileSync(script, `#!/bin/sh\n${body}\nexit 0\n`, { mode: 0o755 });
  return { script, events: () => read(events).split("\n").filter(Boolean) };
}

/** ISC dhclient in the foreground in `member`, with its own config, lease file and hook. */
function dhclient(member: string, name: string, conf: string) {
  const hook = hookScript(name, "dhclient");
  const cf = join(work, `${name}.conf`);
  const lf = join(work, `${name}.leases`);
  const pf = join(work, `${name}.pid`);
  writeFileSync(cf, `timeout 10;\nretry 1;\ninitial-interval 1;\nreboot 10;\n${conf}`);
  let log = "";
  const start = () => {
    const out = join(work, `${name}-${Date.now()}.log`);
    log = out;
    return lan.spawn(member, ["dhclient", "-4", "-d", "-v", "-cf", cf, "-lf", lf, "-pf", pf, "-sf", hook.script, "eth0"], { stdout: out, stderr: out });
  };
  return { ...hook, lf, start, log: () => read(log), release: () => lan.exec(member, ["dhclient", "-4", "-r", "-cf", cf, "-lf", lf, "-pf", pf, "-sf", hook.script, "eth0"], { timeout: 15_000 }) };
}

async function stopProc(p: ResultPromise): Promise<void> {
  if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.race([p, sleep(3000)]);
}

/** The lease rows of the running server's store (SQLite in WAL mode: a second reader is fine). */
async function leases(dataDir: string) {
  const store = new SqliteStore(join(dataDir, "lifeboat.db"));
  try {
    return await store.leases.list();
  } finally {
    await store.close();
  }
}

const dhcpLines = (srv: NsServer, mac: string) => srv.lines().filter((l) => l.svc === "dhcp" && l.mac === mac).map((l) => l.msg);

describe.skipIf(skipHere)("real DHCP clients against lifeboat serve (namespace LAN 10.231.41.0/24)", () => {
  beforeAll(async () => {
    if (skip) throw new Error(`DHCP interop tests cannot run: ${skip}`);
    lan = await createLan({ prefix: "lbdh", subnet: NET, members: { srv: 1, dns: 2, a: 0, b: 0, c: 0 } });
    for (const m of ["a", "b", "c"] as const) await lan.exec(m, ["ip", "link", "set", "eth0", "address", MAC[m]]);
  });
  afterAll(async () => {
    await lan?.down();
  });

  describe("full mode", () => {
    let srv: NsServer;
    const dataDir = join(work, "full");
    beforeAll(async () => {
      srv = await serveInNs(lan, "srv", dataDir, {
        listen: { interface: "eth0" },
        http: { port: 8080 },
        tftp: { enabled: false },
        dhcp: { mode: "full", pool: { start: `${NET}.100`, end: `${NET}.120`, router: SRV, dns: [SRV], leaseSeconds: 120 } },
      }, ["http", "dhcp"]);
    });
    afterAll(async () => srv?.stop());

    it("ISC dhclient: lease with its client identifier echoed (RFC 6842); INIT-REBOOT confirms it; INIT-REBOOT for another address is NAKed and it gets its own back; release", async () => {
      // Option 61 as type 1 + its MAC (what dhclient sends when told to): echoed, and the lease is the MAC's.
      const c = dhclient("a", "dhclient-full", `send dhcp-client-identifier 1:${MAC.a};\n`);
      let p = c.start();
      try {
        const bound = await until("dhclient BOUND", () => c.events().find((e) => e.startsWith("BOUND ")), 15_000, c.log);
        const ip = bound.split(" ")[1]!;
        expect(bound).toBe(`BOUND ${ip} ${SRV}`);
        expect(ip).toMatch(/^10\.231\.41\.1[0-2]\d$/);
        // SIGTERM once the lease file has it: no RELEASE, dhclient starts from that lease next time.
        await until("the lease file", () => read(c.lf).includes(`fixed-address ${ip};`), 5000);
        expect(read(c.lf)).toContain("option dhcp-client-identifier 1:52:54:0:29:0:a;");
        expect((await leases(dataDir)).find((l) => l.ip === ip)).toMatchObject({ client: MAC.a, state: "bound" });
        await stopProc(p);

        // A restart: INIT-REBOOT (REQUEST with option 50, no server id) for its address is confirmed.
        p = c.start();
        await until("dhclient REBOOT", () => c.events().find((e) => e === `REBOOT ${ip} ${SRV}`), 15_000, c.log);
        await stopProc(p);

        // Its lease file now claims a free address it does not hold: NAK (RFC 2131 4.3.2), then DISCOVER gives its own back.
        const other = ip === `${NET}.119` ? `${NET}.118` : `${NET}.119`;
        writeFileSync(c.lf, read(c.lf).replaceAll(`fixed-address ${ip};`, `fixed-address ${other};`));
        const before = c.events().length;
        p = c.start();
        await until("dhclient BOUND again", () => c.events().slice(before).find((e) => e.startsWith("BOUND ")), 20_000, c.log);
        expect(c.log()).toContain(`DHCPREQUEST for ${other} on eth0`);
        expect(c.log()).toContain(`DHCPNAK from ${SRV}`);
        expect(c.events().slice(before)).not.toContain(`REBOOT ${other} ${SRV}`);
        expect(c.events().slice(before).find((e) => e.startsWith("BOUND "))).toBe(`BOUND ${ip} ${SRV}`);
        expect((await leases(dataDir)).filter((l) => l.mac === MAC.a)).toEqual([expect.objectContaining({ ip, state: "bound" })]);
        // dhclient runs the BOUND hook before it appends the lease to its file, and `dhclient -r` releases the file's last
        // lease: wait for the append, or on a busy machine it releases the address it was NAKed for.
        await until("the new lease in the lease file", () => read(c.lf).lastIndexOf(`fixed-address ${ip};`) > read(c.lf).lastIndexOf(`fixed-address ${other};`), 5000);

        // dhclient -r: RELEASE; the address is free again.
        expect((await c.release()).exitCode).toBe(0);
        await until("the RELEASE", () => dhcpLines(srv, MAC.a).includes(`ignored: released ${ip}`), 5000, srv.log);
        expect((await leases(dataDir)).filter((l) => l.ip === ip)).toEqual([]);
      } finally {
        await stopProc(p);
      }
    });

    it("busybox udhcpc: lease with a PXE vendor class (boot file), renew (unicast) and release on signals", async () => {
      const hook = hookScript("udhcpc-full", "udhcpc");
      const p = lan.spawn("b", ["busybox", "udhcpc", "-f", "-i", "eth0", "-t", "4", "-T", "1", "-V", PXE_CLASS, "-x", "0x5d:0000", "-s", hook.script]);
      try {
      const bound = await until("udhcpc bound", () => hook.events().find((e) => e.startsWith("bound ")), 15_000);
      const ip = bound.split(" ")[1]!;
      expect(bound).toBe(`bound ${ip} ${SRV}`);
      // The server logs an answer once it is sent: the client may run its hook before the line arrives.
      await until("ack logged", () => dhcpLines(srv, MAC.b).length >= 2, 5000, srv.log);
      // udhcpc retransmits after its 1 s timeout (-T 1): on a loaded machine a request may be answered
      // twice, so the log is an offer, then acks only, each with the PXE boot file.
      const atBound = dhcpLines(srv, MAC.b);
      expect(atBound[0]).toBe("offer undionly.kpxe");
      expect(atBound.slice(1).every((l) => l === "offer undionly.kpxe" || l === "ack undionly.kpxe")).toBe(true);
      expect(atBound.at(-1)).toBe("ack undionly.kpxe");
      process.kill(p.pid!, "SIGUSR1"); // renew: a unicast REQUEST from its address
      await until("udhcpc renew", () => hook.events().find((e) => e.startsWith("renew ")), 10_000);
      expect(hook.events().find((e) => e.startsWith("renew "))).toBe(`renew ${ip} ${SRV}`);
      await until("renew ack logged", () => dhcpLines(srv, MAC.b).length > atBound.length, 5000, srv.log);
      const afterRenew = dhcpLines(srv, MAC.b).slice(atBound.length);
      expect(afterRenew.length).toBeGreaterThan(0);
      expect(afterRenew.every((l) => l === "ack undionly.kpxe")).toBe(true);
      process.kill(p.pid!, "SIGUSR2"); // release
      await until("lease released", () => dhcpLines(srv, MAC.b).includes(`ignored: released ${ip}`), 5000, srv.log);
      expect((await leases(dataDir)).filter((l) => l.ip === ip)).toEqual([]);
      } finally {
        await stopProc(p);
      }
    });

    it("busybox udhcpc's ARP check DECLINEs an address in use; it stays out after the decliner took another, for a client without ARP check too", async () => {
      const taken = `${NET}.110`;
      await lan.exec("c", ["ip", "addr", "add", `${taken}/24`, "dev", "eth0"]); // a machine configured by hand
      try {
        // A client identifier of its own: a lease machine b may still hold from the test before does not come first.
        const id = ["-C", "-x", "0x3d:ff0000002900010001"];
        const hook = hookScript("udhcpc-arp", "udhcpc");
        const r = await lan.exec("b", ["busybox", "udhcpc", "-n", "-q", "-f", "-a", "-A", "1", "-t", "4", "-T", "1", "-i", "eth0", ...id, "-r", taken, "-s", hook.script], { timeout: 30_000 });
        expect(r.stderr).toContain("offered address is in use (got ARP reply), declining");
        const second = hook.events().find((e) => e.startsWith("bound "))!.split(" ")[1];
        expect(second).not.toBe(taken);
        expect(srv.lines().some((l) => l.msg === `ignored: declined ${taken}`)).toBe(true);
        expect((await leases(dataDir)).find((l) => l.ip === taken)).toMatchObject({ state: "declined", mac: MAC.b, client: "id:ff0000002900010001" });
        // Another machine (udhcpc without its ARP check) asks for exactly that address: it must not get it.
        const other = hookScript("udhcpc-after-decline", "udhcpc");
        await lan.exec("a", ["busybox", "udhcpc", "-n", "-q", "-f", "-R", "-t", "4", "-T", "1", "-i", "eth0", "-r", taken, "-s", other.script], { timeout: 30_000 });
        const got = other.events().find((e) => e.startsWith("bound "));
        expect(got).toMatch(/^bound 10\.231\.41\.1[0-2]\d 10\.231\.41\.1$/);
        expect(got).not.toContain(taken);
        // And the decliner is not handed it back either.
        const again = hookScript("udhcpc-arp-again", "udhcpc");
        await lan.exec("b", ["busybox", "udhcpc", "-n", "-q", "-f", "-t", "4", "-T", "1", "-i", "eth0", ...id, "-r", taken, "-s", again.script], { timeout: 30_000 });
        expect(again.events().find((e) => e.startsWith("bound "))?.split(" ")[1]).toBe(second);
      } finally {
        await lan.exec("c", ["ip", "addr", "del", `${taken}/24`, "dev", "eth0"]);
      }
    });

    it("dhcpcd with a DUID client identifier (RFC 4361): the lease is keyed by it", async () => {
      // dhcpcd keeps its DUID and leases under /var/lib and /run: a private mount namespace keeps them off the host.
      const hook = hookScript("dhcpcd-full", "udhcpc");
      const r = await lan.exec("c", ["unshare", "-m", "sh", "-c",
        `mount -t tmpfs none /var/lib && mkdir -p /var/lib/dhcpcd && mount -t tmpfs none /run && exec dhcpcd -4 -B -1 -A -t 10 --noipv4ll -f /dev/null --duid -c ${hook.script} eth0`], { timeout: 30_000 });
      expect(r.stderr).toMatch(/eth0: leased 10\.231\.41\.1[0-2]\d for 120 seconds/);
      const row = (await leases(dataDir)).find((l) => l.mac === MAC.c);
      expect(row).toMatchObject({ state: "bound", client: expect.stringMatching(/^id:ff[0-9a-f]{8}0001/) });
      expect(r.stderr).not.toMatch(/invalid client id|ignoring/i);
      await lan.exec("c", ["ip", "-4", "addr", "flush", "dev", "eth0"]);
    });

    it("nmap's dhcp-discover (INFORM) and dhcping get answers", async () => {
      await lan.exec("c", ["ip", "addr", "add", `${NET}.90/24`, "dev", "eth0"]);
      try {
        const nmap = await lan.exec("c", ["nmap", "-sU", "-p67", "-Pn", "-n", "--script", "dhcp-discover", SRV], { timeout: 60_000 });
        expect(nmap.stdout).toMatch(/DHCP Message Type: DHCPACK\s+\|\s+Server Identifier: 10\.231\.41\.1\s+\|\s+Subnet Mask: 255\.255\.255\.0/);
        const ping = await lan.exec("c", ["dhcping", "-i", "-s", SRV, "-c", `${NET}.90`], { timeout: 30_000 });
        expect(ping.stdout).toContain(`Got answer from: ${SRV}`);
      } finally {
        await lan.exec("c", ["ip", "addr", "del", `${NET}.90/24`, "dev", "eth0"]);
      }
    });

    it("/healthz answers within 50 ms (95th percentile, none lost) while 64 KB repeated-option datagrams arrive, 200 a second (issue 16)", async () => {
      const metrics = async () => (await lan.exec("dns", ["curl", "-s", `http://${SRV}:8080/metrics`])).stdout;
      const malformed = async () => Number(/lifeboat_dhcp_dropped_total\{reason="malformed"\} (\d+)/.exec(await metrics())?.[1] ?? 0);
      const before = await malformed();
      const node = [process.execPath, "--import", "tsx", flood];
      const [blast, probe] = await Promise.all([
        lan.exec("dns", [...node, "blast", SRV, "4000"], { timeout: 30_000 }),
        lan.exec("dns", [...node, "probe", `http://${SRV}:8080/healthz`, "4000"], { timeout: 30_000 }),
      ]);
      expect(blast.exitCode, blast.stderr).toBe(0);
      const sent = JSON.parse(blast.stdout) as { sent: number };
      const p = JSON.parse(probe.stdout) as { probes: number; failures: number; medianMs?: number; p95Ms?: number; maxMs?: number };
      const ms = (x: number | undefined) => (x === undefined ? "-" : `${x.toFixed(1)} ms`);
      console.log(`healthz while ${sent.sent} hostile 64 KB datagrams arrived in 4 s: ${p.probes} answers, median ${ms(p.medianMs)}, p95 ${ms(p.p95Ms)}, max ${ms(p.maxMs)}`);
      expect(p.failures).toBe(0);
      expect(p.probes).toBeGreaterThan(50);
      // The 95th percentile: on this shared 2-core machine the slowest answer is the scheduler's (idle, it reaches 100-300 ms
      // when other suites run); the old decoder spent 70-260 ms of CPU on every one of these datagrams.
      expect(p.p95Ms).toBeLessThan(50);
      expect((await malformed()) - before).toBeGreaterThan(sent.sent / 2);
    });
  });

  describe("proxy mode beside dnsmasq", () => {
    let srv: NsServer;
    let dnsmasq: ResultPromise;
    // dnsmasq as the issue found it (ping check before a new address: its first offer to a client takes ~3 s),
    // every offer delayed 1 s (a LAN server that is not instant); machine a is a known host (no ping).
    const DNSMASQ_RANGE = /^10\.231\.41\.1[6-9]\d$/;
    beforeAll(async () => {
      const conf = join(work, "dnsmasq.conf");
      writeFileSync(conf, ["port=0", "pid-file=", "interface=eth0", "bind-interfaces", "dhcp-authoritative", "dhcp-reply-delay=1",
        `dhcp-leasefile=${join(work, "dnsmasq.leases")}`, `dhcp-range=${NET}.160,${NET}.199,255.255.255.0,1h`, `dhcp-host=${MAC.a},${NET}.170`, ""].join("\n"));
      dnsmasq = lan.spawn("dns", ["dnsmasq", "-k", `--conf-file=${conf}`]);
      // The hold is raised to its maximum (1.5 s) to stay behind dnsmasq's 1 s delay; pxe/README.md has the default and why.
      srv = await serveInNs(lan, "srv", join(work, "proxy"), { listen: { interface: "eth0" }, http: { port: 8080 }, dhcp: { mode: "proxy", proxyOfferDelayMs: 1500 } }, ["http", "tftp", "dhcp"]);
    });
    afterAll(async () => {
      await srv?.stop();
      if (dnsmasq) await stopProc(dnsmasq);
    });

    it("ISC dhclient sending a PXE vendor class takes dnsmasq's address, never Lifeboat's empty offer (the proxy OFFER is held)", async () => {
      const c = dhclient("a", "dhclient-proxy", `send vendor-class-identifier "${PXE_CLASS}";\n`);
      const started = Date.now();
      const p = c.start();
      let bound: string;
      try {
        bound = await until("dhclient BOUND", () => c.events().find((e) => e.startsWith("BOUND ")), 20_000, c.log);
      } finally {
        await stopProc(p);
      }
      const seconds = (Date.now() - started) / 1000;
      expect(bound).toBe(`BOUND ${NET}.170 ${NET}.2`);
      expect(c.log()).not.toContain("DHCPREQUEST for 0.0.0.0");
      expect(dhcpLines(srv, MAC.a)).toContain("proxy-offer undionly.kpxe"); // Lifeboat did answer, after dnsmasq
      expect(seconds).toBeLessThan(8);
    });

    it("busybox udhcpc sending a PXE vendor class: when it takes the empty offer (dnsmasq's ping check), Lifeboat NAKs and it gets dnsmasq's address", async () => {
      const hook = hookScript("udhcpc-proxy", "udhcpc");
      const r = await lan.exec("b", ["busybox", "udhcpc", "-n", "-q", "-f", "-t", "6", "-T", "2", "-i", "eth0", "-V", PXE_CLASS, "-x", "0x5d:0000", "-s", hook.script], { timeout: 40_000 });
      const bound = hook.events().find((e) => e.startsWith("bound "));
      expect(bound, r.stderr).toMatch(/^bound 10\.231\.41\.1[6-9]\d 10\.231\.41\.2$/);
      expect(dhcpLines(srv, MAC.b)).toEqual(expect.arrayContaining(["proxy-offer undionly.kpxe", "proxy-nak"]));
      await lan.exec("b", ["ip", "-4", "addr", "flush", "dev", "eth0"]);
    });

    it("dhcpcd sending a PXE vendor class takes dnsmasq's address", async () => {
      const hook = hookScript("dhcpcd-proxy", "udhcpc");
      const r = await lan.exec("c", ["unshare", "-m", "sh", "-c",
        `mount -t tmpfs none /var/lib && mkdir -p /var/lib/dhcpcd && mount -t tmpfs none /run && exec dhcpcd -4 -B -1 -A -t 15 --noipv4ll -f /dev/null -i ${PXE_CLASS} -c ${hook.script} eth0`], { timeout: 30_000 });
      const leased = /eth0: leased (\S+) for/.exec(r.stderr)?.[1];
      expect(leased, r.stderr).toMatch(DNSMASQ_RANGE);
      await lan.exec("c", ["ip", "-4", "addr", "flush", "dev", "eth0"]);
    });

    it("a plain client (no PXE vendor class) gets its lease from dnsmasq and nothing from Lifeboat", async () => {
      const hook = hookScript("udhcpc-plain", "udhcpc");
      const seen = srv.lines().length;
      await lan.exec("c", ["busybox", "udhcpc", "-n", "-q", "-f", "-t", "6", "-T", "2", "-i", "eth0", "-s", hook.script], { timeout: 40_000 });
      expect(hook.events().find((e) => e.startsWith("bound "))).toMatch(/^bound 10\.231\.41\.1[6-9]\d 10\.231\.41\.2$/);
      const ours = srv.lines().slice(seen).filter((l) => l.svc === "dhcp" && l.mac === MAC.c);
      expect(ours.length).toBeGreaterThan(0);
      expect(ours.every((l) => l.msg.startsWith("ignored: "))).toBe(true);
      await lan.exec("c", ["ip", "-4", "addr", "flush", "dev", "eth0"]);
    });
  });
});
