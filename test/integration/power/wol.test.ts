/**
 * Wake-on-LAN on the wire: `lifeboat serve` in a namespace with two links (its boot interface
 * eth0 on the test LAN, and eth1 to another namespace); `hosts power web1 on` sends the magic
 * packet, which a UDP listener on the LAN sees with web1's MAC, from the server's eth0 address,
 * and which the listener behind eth1 never sees.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { lifeboatBin } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type NsServer, serveInNs } from "../netboot/lifeboat-ns.ts";

const SUBNET = "10.231.70";
const OTHER = "10.231.71";
const MAC = "52:54:00:70:00:02";

/** Prints one JSON line per datagram on UDP 9: the sender's address and the bytes in hex. */
const LISTENER = `
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => process.stdout.write(JSON.stringify({ from: r.address, hex: m.toString("hex") }) + "\\n"));
s.bind(9, "0.0.0.0", () => process.stdout.write("ready\\n"));
`;

describeNeeding(await netnsUnavailable(), "Wake-on-LAN: the magic packet on the boot interface", () => {
  let lan: Lan;
  let srv: NsServer;
  const dir = tempDir();
  const dataDir = join(dir, "data");
  const cli = (...args: string[]) => lan.exec("srv", [process.execPath, lifeboatBin, ...args, "--data-dir", dataDir, "--server", `http://${SUBNET}.1:8080`]);
  const heard = (file: string) =>
    (existsSync(file) ? readFileSync(file, "utf8") : "")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { from: string; hex: string });

  beforeAll(async () => {
    lan = await createLan({ prefix: "lbpw", subnet: SUBNET, members: { srv: 1, pc: 2, other: null } });
    await lan.addSecondLink("srv", "eth1", `${OTHER}.1/24`, "other", "eth1", `${OTHER}.2/24`);
    const script = join(dir, "listen.cjs");
    writeFileSync(script, LISTENER);
    for (const m of ["pc", "other"]) lan.spawn(m, [process.execPath, script], { stdout: join(dir, `${m}.out`) });
    srv = await serveInNs(lan, "srv", dataDir, { listen: { interface: "eth0" }, http: { port: 8080 }, dhcp: { mode: "off" }, tftp: { enabled: false }, catalog: { refreshMinutes: 0 } }, ["http"]);
    for (const m of ["pc", "other"]) {
      const until = Date.now() + 10_000;
      while (!readFileSync(join(dir, `${m}.out`), "utf8").includes("ready")) {
        if (Date.now() > until) throw new Error(`the UDP listener in ${m} did not start`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }, 90_000);
  afterAll(async () => {
    await srv?.stop();
    await lan?.down();
  });

  it("hosts power web1 on sends web1's magic packet out of eth0 only", { timeout: 90_000 }, async () => {
    expect((await cli("hosts", "add", "web1", "--mac", MAC)).exitCode).toBe(0);
    const set = await cli("hosts", "power-config", "web1", "--wol");
    expect(set.stdout.trim(), set.stderr).toBe("web1: Wake-on-LAN");
    const on = await cli("hosts", "power", "web1", "on");
    expect(on.stdout.trim(), on.stderr).toBe("web1: woken (Wake-on-LAN cannot tell the state) (Wake-on-LAN)");
    const until = Date.now() + 5000;
    while (!heard(join(dir, "pc.out")).length && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(heard(join(dir, "pc.out"))).toEqual([{ from: `${SUBNET}.1`, hex: `${"ff".repeat(6)}${"525400700002".repeat(16)}` }]);
    expect(heard(join(dir, "other.out"))).toEqual([]);
    // It can only power on: off is one line saying so.
    const off = await cli("hosts", "power", "web1", "off");
    expect(off.exitCode).toBe(1);
    expect(off.stderr.trim()).toBe("lifeboat: POST /api/v1/hosts/web1/power: 502 Wake-on-LAN can only power on, not off: configure IPMI or Redfish (lifeboat hosts power-config)");
  });
});
