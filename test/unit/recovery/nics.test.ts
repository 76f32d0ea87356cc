/** Issue 21 item 3: which new NIC each captured NIC becomes (pure), the plan's map_nic steps, and captured NICs as hostile input. */
import { describe, expect, it } from "vitest";
import { parseCapture } from "../../../server/layout/layout-capture.ts";
import { type CapturedNic, describeNicMatch, mapNics } from "../../../server/plan/nics.ts";
import { buildPlan, describePlan } from "../../../server/plan/plan.ts";
import { fixtureLayout, sameMachine } from "./fixtures.ts";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const A = "52:54:00:21:00:01";
const B = "52:54:00:21:00:02";
const X = "52:54:00:21:00:0a";
const Y = "52:54:00:21:00:0b";
const Z = "52:54:00:21:00:0c";
const nic = (name: string, mac: string): CapturedNic => ({ name, mac, driver: "e1000", defaultRoute: false });

describe("mapNics", () => {
  it("the same hardware: each NIC by its MAC, whatever the new machine's order", () => {
    expect(mapNics([nic("eth0", A), nic("eth1", B)], [B, A]).matches).toEqual([
      { name: "eth0", oldMac: A, newMac: A, by: "mac" },
      { name: "eth1", oldMac: B, newMac: B, by: "mac" },
    ]);
  });

  it("new hardware: by order, after the ones that kept their MAC; a NIC too many is left alone with a note", () => {
    const r = mapNics([nic("enp1s0", A), nic("enp2s0", B), nic("enp3s0", "52:54:00:21:00:03")], [X, B]);
    expect(r.matches).toEqual([
      { name: "enp1s0", oldMac: A, newMac: X, by: "order" },
      { name: "enp2s0", oldMac: B, newMac: B, by: "mac" },
    ]);
    expect(r.notes).toEqual(["captured NIC enp3s0 (52:54:00:21:00:03) has no NIC left on this machine: its configuration is left as it was"]);
    expect(r.problems).toEqual([]);
  });

  it("the admin's mapping wins; one naming no captured NIC or no reported MAC is a problem", () => {
    const r = mapNics([nic("eth0", A), nic("eth1", B)], [X, Y, Z], { eth1: "52-54-00-21-00-0C" });
    expect(r.matches.map(describeNicMatch)).toEqual([`NIC eth0 ${A} → ${X} [by order]`, `NIC eth1 ${B} → ${Z} [the admin's mapping]`]);
    expect(mapNics([nic("eth0", A)], [X], { eth9: X }).problems).toEqual([`NIC mapping eth9=${X}: the layout has no NIC named eth9`]);
    expect(mapNics([nic("eth0", A)], [X], { eth0: Y }).problems).toEqual([`NIC mapping eth0=${Y}: the machine reported no free NIC with that MAC`]);
    expect(mapNics([nic("eth0", A)], [X], { eth0: "nope" }).problems).toEqual(["NIC mapping eth0=nope: the machine reported no NIC with that MAC"]);
  });

  it("a swap the admin asks for (each NIC taking the other's MAC) is refused: the configs would be rewritten twice", () => {
    expect(mapNics([nic("eth0", A), nic("eth1", B)], [A, B], { eth0: B, eth1: A }).problems).toEqual([
      `NIC mapping: eth0 would take ${B}, which eth1 gives up; map eth1 to its own MAC`,
      `NIC mapping: eth1 would take ${A}, which eth0 gives up; map eth0 to its own MAC`,
    ]);
  });

  it("hostile names and MACs from a capture are left alone, never mapped", () => {
    const r = mapNics([nic("../../etc/x", A), nic("eth0\nName=evil", B), nic("eth1", "not-a-mac"), nic("..", X), nic("a".repeat(16), Y)], [A, B, X, Y]);
    expect(r.matches).toEqual([]);
    expect(r.notes).toHaveLength(5);
    expect(r.notes[0]).toBe('captured NIC "../../etc/x" ("52:54:00:21:00:01") left alone: not a NIC name and MAC');
  });
});

describe("the plan: map_nic after the restores, before the boot loader", () => {
  const layout = () => {
    const l = fixtureLayout("mbr-ext4");
    l.system.nics = [{ name: "ens3", mac: A, driver: "e1000", defaultRoute: true }];
    return l;
  };
  const byName = (l: ReturnType<typeof layout>) => Object.fromEntries(l.disks.map((d) => [d.name, d.name]));

  it("with the NICs the machine reported: one map_nic per match, noted in the dry run people read", () => {
    const l = layout();
    const r = buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l), nics: { current: [X] } } });
    if (!r.ok) throw new Error(r.reason);
    expect(r.steps.filter((s) => s.fn === "map_nic").map((s) => s.args)).toEqual([["ens3", A, X]]);
    const order = r.steps.map((s) => s.fn);
    expect(order.indexOf("map_nic")).toBeGreaterThan(order.lastIndexOf("mount_fs"));
    expect(order.indexOf("map_nic")).toBeLessThan(order.indexOf("install_bootloader"));
    expect(describePlan(r)).toContain(`network after the restore:\n  - NIC ens3 ${A} → ${X} [by order]`);
    expect(r.script).toContain(`map_nic ens3 ${A} ${X}`);
  });

  it("before the machine reported its NICs: a note, no step; an admin mapping that cannot be followed refuses the plan", () => {
    const l = layout();
    const dry = buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l) } });
    if (!dry.ok) throw new Error(dry.reason);
    expect(dry.steps.some((s) => s.fn === "map_nic")).toBe(false);
    expect(dry.network).toContain(`NIC mapping: made once the machine reports its NICs (captured: ens3 ${A})`);
    const bad = buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l), nics: { current: [X], admin: { ens3: Y } } } });
    expect(bad.ok ? "made" : bad.reason).toBe(`NIC mapping ens3=${Y}: the machine reported no free NIC with that MAC`);
  });
});

describe("captured NICs are hostile until checked", () => {
  const doc = () => JSON.parse(readFileSync(fileURLToPath(new URL("../../fixtures/layouts/mbr-ext4.capture.json", import.meta.url)), "utf8")) as Record<string, unknown>;
  it("a physical NIC's name, MAC and driver are checked; a virtual one's are not used and not checked", () => {
    const ok = parseCapture({ ...doc(), nics: [{ name: "enp1s0", mac: "52:54:00:AA:00:01", physical: true, driver: "virtio_net", defaultRoute: true }, { name: "weird name!", mac: "x", physical: false }] });
    expect(ok.nics[0]).toEqual({ name: "enp1s0", mac: "52:54:00:AA:00:01", physical: true, driver: "virtio_net", defaultRoute: true });
    for (const [n, message] of [
      [{ name: "eth0/../x", mac: A, physical: true }, "capture document: nics.0: expected a NIC name (1-15 letters, digits, '_', '.', '-')"],
      [{ name: "eth0", mac: "52:54:00:21:00", physical: true }, "capture document: nics.0: expected a MAC address"],
      [{ name: "eth0", mac: A, physical: true, driver: "e1000; reboot" }, "capture document: nics.0: expected a driver name"],
    ] as const)
      expect(() => parseCapture({ ...doc(), nics: [n] })).toThrow(message);
  });
});
