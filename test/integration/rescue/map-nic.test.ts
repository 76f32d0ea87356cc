/**
 * map_nic, the finish stage's network step (issue 21 item 3): on a real ext4 on a loop device
 * mounted as the target root, a restored system whose configs pin the old NIC by MAC (ifupdown,
 * systemd-networkd, netplan, NetworkManager, udev 70-persistent-net.rules, ifcfg) gets a .link
 * file naming the new NIC as the old one and every pinned MAC rewritten; nothing else changes,
 * symlinks leading out of the target are not followed, and the gate and its checks hold.
 */
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { loopUnavailable, makeLoop } from "../recovery/loopdev.ts";
import { stepHarness } from "./step-harness.ts";
import { describeNeeding } from "../../helpers/needs.ts";

const MiB = 1024 * 1024;
const OLD = "52:54:00:21:00:01";
const NEW = "52:54:00:21:00:0a";

describeNeeding(loopUnavailable(), "map_nic (the restored system's network on new NICs)", () => {
  const { dir, target, arm, disarm, step } = stepHarness("mapnic");

  it("names the new NIC as the old one and rewrites each MAC-pinned config, only behind the gate", async () => {
    const disk = await makeLoop(dir, "mapnic", 64 * MiB);
    arm();
    expect((await step(`check_disk "$1" "" "" ${64 * MiB} && make_fs ext4 "$1" "" root && mount_fs "$1" / ext4 ""`, [disk])).exitCode).toBe(0);
    // The old machine's configs, as a restore leaves them.
    const files: Record<string, string> = {
      "etc/network/interfaces": `auto ens3\niface ens3 inet static\n  address 10.0.5.9/24\n  hwaddress ether ${OLD}\n`,
      "etc/systemd/network/20-wired.network": `[Match]\nMACAddress=${OLD}\n\n[Network]\nDHCP=yes\n`,
      "etc/netplan/01-netcfg.yaml": `network:\n  ethernets:\n    lan:\n      match:\n        macaddress: "${OLD}"\n      set-name: ens3\n`,
      "etc/NetworkManager/system-connections/Wired.nmconnection": `[ethernet]\nmac-address=${OLD.toUpperCase()}\n`,
      "etc/udev/rules.d/70-persistent-net.rules": `SUBSYSTEM=="net", ACTION=="add", ATTR{address}=="${OLD}", NAME="ens3"\n`,
      "etc/sysconfig/network-scripts/ifcfg-ens3": `DEVICE=ens3\nHWADDR=${OLD.toUpperCase()}\n`,
      "etc/hosts": `# ${OLD} is not a network config: left as it is\n`,
    };
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(target, f, ".."), { recursive: true });
      writeFileSync(join(target, f), text);
    }
    // A link out of the restored tree: never written through.
    const outside = join(dir, "outside.network");
    writeFileSync(outside, `MACAddress=${OLD}\n`);
    symlinkSync(outside, join(target, "etc/systemd/network/30-link.network"));

    disarm();
    expect((await step(`map_nic ens3 ${OLD} ${NEW}`)).exitCode).toBe(1);
    expect(existsSync(join(target, "etc/systemd/network/10-lifeboat-ens3.link"))).toBe(false);
    expect(readFileSync(join(target, "etc/network/interfaces"), "utf8")).toContain(OLD);

    arm();
    expect((await step(`guard_map_nic ens3 ${OLD} ${NEW}`)).exitCode).toBe(1);
    const r = await step(`map_nic ens3 ${OLD} ${NEW}`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(target, "etc/systemd/network/10-lifeboat-ens3.link"), "utf8")).toBe(
      `# Lifeboat: the NIC that replaced ens3 (${OLD}) keeps its name.\n[Match]\nMACAddress=${NEW}\n\n[Link]\nName=ens3\n`,
    );
    for (const [f, text] of Object.entries(files)) {
      const want = f === "etc/hosts" ? text : text.replaceAll(OLD, NEW).replaceAll(OLD.toUpperCase(), NEW.toUpperCase());
      expect(readFileSync(join(target, f), "utf8"), f).toBe(want);
    }
    expect(readFileSync(outside, "utf8")).toBe(`MACAddress=${OLD}\n`);
    expect(r.stdout).toContain(`map_nic: /etc/netplan/01-netcfg.yaml: ${OLD} -> ${NEW}`);
    expect((await step(`guard_map_nic ens3 ${OLD} ${NEW}`)).exitCode).toBe(0);

    // The same MAC (same hardware, another slot): only the name is pinned.
    const same = await step(`map_nic ens4 ${NEW} ${NEW}`);
    expect(same.exitCode, same.stderr).toBe(0);
    expect(readFileSync(join(target, "etc/systemd/network/10-lifeboat-ens4.link"), "utf8")).toContain(`MACAddress=${NEW}\n\n[Link]\nName=ens4\n`);

    // Hostile arguments (a plan is checked by the builder too) are refused before anything is written.
    for (const bad of [`map_nic ../x ${OLD} ${NEW}`, `map_nic .. ${OLD} ${NEW}`, `map_nic ens3 '${OLD}/g;s/x' ${NEW}`, `map_nic ens3 ${OLD} ${NEW.toUpperCase()}`, "map_nic abcdefghijklmnop 52:54:00:21:00:01 52:54:00:21:00:0a"]) {
      const refused = await step(bad);
      expect(refused.exitCode, bad).toBe(1);
      expect(refused.stderr, bad).toMatch(/^refused: .*; nothing written\n$/);
    }
    expect((await step("map_nic ens3")).exitCode).toBe(2); // wrong arity is refused

    // Then a clone's own address (issue 21 item 4), in each network stack the system carries.
    disarm();
    expect((await step("set_address ens3 10.0.5.21/24 10.0.5.1 10.0.5.2,10.0.5.3")).exitCode).toBe(1);
    arm();
    expect((await step("guard_set_address ens3 10.0.5.21/24 10.0.5.1 10.0.5.2,10.0.5.3")).exitCode).toBe(1);
    const addr = await step("set_address ens3 10.0.5.21/24 10.0.5.1 10.0.5.2,10.0.5.3");
    expect(addr.exitCode, addr.stderr).toBe(0);
    expect(readFileSync(join(target, "etc/network/interfaces"), "utf8")).toBe(
      `# lifeboat: auto ens3\n# lifeboat: iface ens3 inet static\n# lifeboat:   address 10.0.5.9/24\n# lifeboat:   hwaddress ether ${NEW}\n` +
        "\n# Lifeboat: this clone's own address.\nauto ens3\niface ens3 inet static\n    address 10.0.5.21/24\n    gateway 10.0.5.1\n    dns-nameservers 10.0.5.2 10.0.5.3\n",
    );
    expect(readFileSync(join(target, "etc/systemd/network/05-lifeboat-ens3.network"), "utf8")).toBe(
      "# Lifeboat: this clone's own address (ahead of the other .network files).\n[Match]\nName=ens3\n\n[Network]\nAddress=10.0.5.21/24\nGateway=10.0.5.1\nDNS=10.0.5.2\nDNS=10.0.5.3\n",
    );
    expect(readFileSync(join(target, "etc/netplan/99-lifeboat-ens3.yaml"), "utf8")).toContain(
      "  ethernets:\n    ens3:\n      dhcp4: false\n      addresses: [10.0.5.21/24]\n      routes:\n        - to: default\n          via: 10.0.5.1\n      nameservers:\n        addresses: [10.0.5.2, 10.0.5.3]\n",
    );
    expect(readFileSync(join(target, "etc/NetworkManager/system-connections/lifeboat-ens3.nmconnection"), "utf8")).toContain("interface-name=ens3\nautoconnect-priority=100\n\n[ipv4]\nmethod=manual\naddress1=10.0.5.21/24,10.0.5.1\ndns=10.0.5.2;10.0.5.3;\n");
    expect((await step("guard_set_address ens3 10.0.5.21/24 10.0.5.1 10.0.5.2,10.0.5.3")).exitCode).toBe(0);
    for (const bad of ["set_address ../x 10.0.5.21/24 '' ''", "set_address ens3 '10.0.5.21/24;x' '' ''", "set_address ens3 10.0.5.21 '' ''", "set_address ens3 10.0.5.21/24 'a/b' ''"]) {
      const refused = await step(bad);
      expect(refused.exitCode, bad).toBe(1);
      expect(refused.stderr, bad).toMatch(/^refused: .*; nothing written\n$/);
    }
  });
});
