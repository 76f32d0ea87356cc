/**
 * The agent's rescue network setup (lib.sh lb_net_configure, issue 21 item 2) run on this host
 * inside a namespace LAN (10.231.22.0/24), from a kernel command line the server renders: a
 * static address with gateway and DNS on the NIC found by its MAC reaches the LAN; what cannot
 * be set up (no NIC with that MAC, a bond member missing) fails in one logged line and can be
 * tried again. Bonds and VLANs need the bonding and 8021q drivers this host's kernel lacks: the
 * rescue image carries them (image.test.ts loads them and restores over a bond in QEMU).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { renderKernelArgs, rescueNetArgs, type RescueNet } from "../../../server/plan/cmdline.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { AGENT_DIR } from "../../unit/rescue/agent-sh.ts";

const NET = "10.231.22";
const MAC = "52:54:00:22:00:0a";

describeNeeding(await netnsUnavailable(), `rescue network setup of the agent in a namespace LAN (${NET}.0/24)`, () => {
  let lan: Lan;
  const dir = tempDir("lbnet-");

  beforeAll(async () => {
    // "gw" is the LAN's router (its address only: the route is what is checked); "m" the rescue machine, no address yet.
    lan = await createLan({ prefix: "lbnet", subnet: NET, members: { gw: 1, m: 0 } });
    await lan.exec("m", ["ip", "link", "set", "eth0", "address", MAC]);
  });
  afterAll(async () => lan?.down());

  /** lb_parse_cmdline + lb_net_configure under dash in the machine's namespace, with the command line the server renders. */
  async function configure(name: string, net: RescueNet, mac: string | null = MAC) {
    const run = join(dir, name);
    mkdirSync(run, { recursive: true });
    const line = `console=ttyS0 ${renderKernelArgs({ server: `http://${NET}.1:8080`, job: "j1", token: "t", ...(mac ? { mac } : {}), ...rescueNetArgs(net) })}`;
    const script = `. '${AGENT_DIR}lib.sh'; lb_parse_cmdline "$1"; lb_net_configure; rc=$?; echo "iface=$LB_IFACE"; exit $rc`;
    const r = await lan.exec("m", ["env", `LB_RUN=${run}`, `LB_RESOLV=${join(run, "resolv.conf")}`, "dash", "-c", script, "net-test", line], { timeout: 30_000 });
    const read = (f: string) => readFileSync(join(run, f), "utf8");
    return { ...r, read };
  }

  it("a static address, gateway and DNS on the NIC with the boot MAC: set, routed, and the LAN answers", async () => {
    const r = await configure("static", { address: `${NET}.20/24`, gateway: `${NET}.1`, dns: [`${NET}.1`, `${NET}.2`] });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe("iface=eth0");
    expect((await lan.exec("m", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])).stdout).toContain(`inet ${NET}.20/24`);
    expect((await lan.exec("m", ["ip", "route", "show", "default"])).stdout.trim()).toBe(`default via ${NET}.1 dev eth0`);
    expect(r.read("resolv.conf")).toBe(`nameserver ${NET}.1\nnameserver ${NET}.2\n`);
    // Really on the LAN: the router's namespace answers, and sees the machine at its static address.
    expect((await lan.exec("m", ["busybox", "ping", "-c", "1", "-W", "2", `${NET}.1`])).exitCode).toBe(0);
    expect((await lan.exec("gw", ["busybox", "ping", "-c", "1", "-W", "2", `${NET}.20`])).exitCode).toBe(0);
    // Called again (the boot loop's next try), it ends the same: no address left twice.
    const again = await configure("static-again", { address: `${NET}.20/24`, gateway: `${NET}.1` });
    expect(again.exitCode, again.stderr).toBe(0);
    expect((await lan.exec("m", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])).stdout.trim().split("\n")).toHaveLength(1);
  });

  it("no NIC with the boot MAC, no lifeboat.mac, a bond member that is not there: each fails in one logged line, nothing configured", async () => {
    await lan.exec("m", ["ip", "-4", "addr", "flush", "dev", "eth0"]);
    const cases: Array<[string, RescueNet, string | null, string]> = [
      ["wrong-mac", { address: `${NET}.21/24` }, "52:54:00:22:00:99", "network: no NIC with MAC 52:54:00:22:00:99"],
      // No lifeboat.mac (a boot medium): the first NIC with a device behind it and a link; the namespace's only NIC is a veth, which has no device.
      ["no-mac", { address: `${NET}.21/24` }, null, "network: no NIC has a link (cable?)"],
      ["bond-member", { bond: { mode: "active-backup", macs: [MAC, "52:54:00:22:00:0b"] }, address: `${NET}.21/24` }, MAC, "network: no NIC with MAC 52:54:00:22:00:0b for the bond"],
    ];
    for (const [name, net, mac, message] of cases) {
      const r = await configure(name, net, mac);
      expect(r.exitCode, name).toBe(1);
      expect(r.read("agent.log")).toMatch(new RegExp(`lifeboat: ${message.replace(/[()?]/g, "\\$&")}\\n$`));
    }
    expect((await lan.exec("m", ["ip", "-4", "-o", "addr", "show", "dev", "eth0"])).stdout.trim()).toBe("");
  });
});
