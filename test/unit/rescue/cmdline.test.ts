import { describe, expect, it } from "vitest";
import { KERNEL_ARG_KEYS, type KernelArgs, type RescueNet, describeRescueNet, parseKernelArgs, renderKernelArgs, rescueNetArgs } from "../../../server/plan/cmdline.ts";
import { agentSh } from "./agent-sh.ts";

const parseInSh = (shell: string[], cmdline: string) =>
  agentSh(`lb_parse_cmdline "$1"; printf '%s\\n' "$LB_SERVER" "$LB_JOB" "$LB_TOKEN" "$LB_MAC"`, { shell, args: [cmdline] });
/** Every key the agent reads, in KERNEL_ARG_KEYS order. */
const SH_VARS = { server: "LB_SERVER", job: "LB_JOB", token: "LB_TOKEN", code: "LB_CODE", mac: "LB_MAC", bond: "LB_NET_BOND", vlan: "LB_NET_VLAN", ip: "LB_NET_IP", gw: "LB_NET_GW", dns: "LB_NET_DNS" } as const;
const parseAllInSh = (shell: string[], cmdline: string) =>
  agentSh(`lb_parse_cmdline "$1"; printf '%s\\n' ${Object.values(SH_VARS).map((v) => `"$${v}"`).join(" ")}`, { shell, args: [cmdline] });

const cases: KernelArgs[] = [
  { server: "http://10.0.0.5:8080", job: "job-0123456789", token: "AbC_-x.y~".replace("~", "z"), mac: "52:54:00:12:34:56" },
  { server: "http://[fd00::1]:8080", job: "j", token: "t%2B/+=,@:x" },
  { server: "https://lifeboat.example.org", job: "job-[0-9]", token: "a[b]c" },
];

describe("kernel command line: renderKernelArgs (server) → the agent's lb_parse_cmdline (sh)", () => {
  for (const shell of [["dash"], ["busybox", "sh"]]) {
    it(`${shell.join(" ")} reads what the server renders, among other kernel words`, async () => {
      for (const args of cases) {
        const line = `BOOT_IMAGE=vmlinuz initrd=initramfs console=ttyS0 ${renderKernelArgs(args)} quiet lifeboat.other=1`;
        const r = await parseInSh(shell, line);
        expect(r.exitCode).toBe(0);
        const [server, job, token, mac] = r.stdout.split("\n");
        const ts = parseKernelArgs(line);
        expect({ server, job, token, mac }).toEqual({ server: ts.server, job: ts.job, token: ts.token, mac: ts.mac ?? "" });
      }
    });
  }

  it("falls back to pxelinux's BOOTIF for the MAC and normalises it", async () => {
    const r = await parseInSh(["dash"], "BOOTIF=01-52-54-00-AB-CD-EF lifeboat.server=http://s/ lifeboat.job=j lifeboat.token=t");
    expect(r.stdout.split("\n")).toEqual(["http://s", "j", "t", "52:54:00:ab:cd:ef", ""]);
  });

  it("a missing key is empty (the agent then waits and says which key is missing)", async () => {
    const r = await parseInSh(["dash"], "console=ttyS0 lifeboat.server=http://s");
    expect(r.stdout.split("\n")).toEqual(["http://s", "", "", "", ""]);
  });
});

describe("the rescue network on the kernel command line: rescueNetArgs (server) → lb_parse_cmdline (sh)", () => {
  const nets: RescueNet[] = [
    { address: "10.231.22.20/24", gateway: "10.231.22.1", dns: ["10.231.22.1", "10.231.22.2"] },
    { vlan: 20 },
    { bond: { mode: "active-backup", macs: ["52:54:00:22:00:01", "52:54:00:22:00:02"] } },
    { bond: { mode: "802.3ad", macs: ["52:54:00:22:00:01", "52:54:00:22:00:02"] }, vlan: 4094, address: "192.168.7.9/16", gateway: "192.168.0.1" },
  ];

  it("a boot medium's line (lifeboat image iso): the server, a one-time code and a static address, no job or token", async () => {
    const args: KernelArgs = { server: "http://10.231.22.1:8080", code: "ABCD-EFGH-JK23", ...rescueNetArgs(nets[0]) };
    const line = `console=ttyS0 ${renderKernelArgs(args)}`;
    const r = await parseAllInSh(["busybox", "sh"], line);
    const sh = Object.fromEntries(Object.keys(SH_VARS).map((k, i) => [k, r.stdout.split("\n")[i]]));
    expect(sh).toMatchObject({ server: "http://10.231.22.1:8080", job: "", token: "", code: "ABCD-EFGH-JK23", ip: "10.231.22.20/24", gw: "10.231.22.1" });
    expect(parseKernelArgs(line)).toEqual(args);
  });

  it("the agent reads every key the server has (one list: KERNEL_ARG_KEYS)", () => {
    expect(Object.keys(SH_VARS)).toEqual(Object.keys(KERNEL_ARG_KEYS));
  });

  for (const shell of [["dash"], ["busybox", "sh"]]) {
    it(`${shell.join(" ")} reads the same values the server's parser reads, for static, VLAN, bond and all three at once`, async () => {
      for (const net of nets) {
        const args: KernelArgs = { server: "http://10.231.22.1:8080", job: "j1", token: "t", mac: "52:54:00:22:00:01", ...rescueNetArgs(net) };
        const line = `console=ttyS0 ${renderKernelArgs(args)} quiet`;
        const r = await parseAllInSh(shell, line);
        expect(r.exitCode).toBe(0);
        const sh = Object.fromEntries(Object.keys(SH_VARS).map((k, i) => [k, r.stdout.split("\n")[i]]));
        const ts = parseKernelArgs(line);
        expect(sh).toEqual(Object.fromEntries(Object.keys(SH_VARS).map((k) => [k, ts[k as keyof KernelArgs] ?? ""])));
        expect(ts).toEqual(args);
      }
    });
  }

  it("renders each part in its one spelling; nothing set renders nothing (DHCP on the boot NIC)", () => {
    expect(rescueNetArgs(undefined)).toEqual({});
    expect(rescueNetArgs({})).toEqual({});
    expect(rescueNetArgs(nets[3])).toEqual({ bond: "802.3ad,52:54:00:22:00:01,52:54:00:22:00:02", vlan: "4094", ip: "192.168.7.9/16", gw: "192.168.0.1" });
    expect(rescueNetArgs(nets[0])).toEqual({ ip: "10.231.22.20/24", gw: "10.231.22.1", dns: "10.231.22.1,10.231.22.2" });
  });

  it("describes it in one line for jobs plan and the page", () => {
    expect(describeRescueNet(undefined)).toBe("DHCP on the NIC that booted");
    expect(describeRescueNet(nets[1])).toBe("DHCP on VLAN 20 on the NIC that booted");
    expect(describeRescueNet(nets[3])).toBe("static 192.168.7.9/16 (gateway 192.168.0.1) on VLAN 4094 on bond 802.3ad of 52:54:00:22:00:01, 52:54:00:22:00:02");
    expect(describeRescueNet(nets[0])).toBe("static 10.231.22.20/24 (gateway 10.231.22.1, DNS 10.231.22.1, 10.231.22.2) on the NIC that booted");
    expect(describeRescueNet({ vlan: 20, server: "http://10.231.20.1:8080" })).toBe("DHCP on VLAN 20 on the NIC that booted; Lifeboat at http://10.231.20.1:8080");
    expect(describeRescueNet({ vlan: 20, address: "10.231.20.60/24", server: "http://10.231.20.1:8080" })).toBe("static 10.231.20.60/24 (no gateway) on VLAN 20 on the NIC that booted; Lifeboat at http://10.231.20.1:8080");
  });
});
