import { describe, expect, it } from "vitest";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { type PlanInput, type PlanResult, type RestoreChain, buildPlan, describePlan, fitSizes, matchDisks } from "../../../server/plan/plan.ts";
import type { Step } from "../../../server/plan/steps.ts";
import { planCalls } from "../../integration/recovery/plan-calls.ts";
import { FIXTURES, fixtureLayout, newDisk, sameMachine } from "./fixtures.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Deterministic "fresh" UUIDs for clone plans. */
function counterUuid() {
  let n = 0;
  return () => `00000000-0000-4000-8000-${String(++n).padStart(12, "0")}`;
}

function ok(r: PlanResult): Extract<PlanResult, { ok: true }> {
  if (!r.ok) throw new Error(`plan refused: ${r.reasons.join("; ")}`);
  return r;
}

/** The reason a plan was refused; a plan that was made instead fails the test. */
function refusal(r: PlanResult): string {
  if (r.ok) throw new Error(`expected the plan to be refused, but it has ${r.steps.length} steps`);
  return r.reason;
}

const fns = (steps: Step[]) => steps.map((s) => s.fn);
const args = (steps: Step[], fn: string) => steps.filter((s) => s.fn === fn).map((s) => s.args);

/** Partition lines of a partition step's sfdisk script: [number, start, size]. */
function planned(steps: Step[], dev: string): Array<[number, number, number]> {
  const script = steps.find((s) => s.fn === "partition" && s.args[0] === dev)!.args[1]!;
  return [...script.matchAll(/(\d+) : start=(\d+), size=(\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
}

const chain = (dle: string, mountpoint: string, levels: number[]): RestoreChain => ({
  dle,
  mountpoint,
  program: "gtar",
  dumps: levels.map((level, i) => ({ id: `${dle.replace(/\W/g, "")}-${i}`, level, datestamp: `2026113${i}000000`, sizeBytes: 1000 + i, compression: "gzip" })),
});

function planFor(layout: DiskLayout, extra: Partial<PlanInput> = {}) {
  const keys = layout.luks.map((l) => l.uuid);
  return buildPlan({ layout, targets: sameMachine(layout), ...extra, options: { luksKeys: keys, ...extra.options } });
}

describe("plans for each captured layout (same machine)", () => {
  for (const name of FIXTURES)
    it(`${name}: steps snapshot, and the script round-trips through sh`, async () => {
      const layout = fixtureLayout(name);
      const chains = layout.mounts.map((m) => chain(`${m.mountpoint}`, m.mountpoint, [0, 1]));
      const r = ok(planFor(layout, { chains }));
      expect(r.steps[0]!.fn).toBe("plan_begin");
      expect(r.steps[0]!.args[2]).toBe(String(r.steps.length));
      expect(r.steps.at(-1)!.fn).toBe("plan_done");
      expect(r.mapping.every((m) => m.matchedBy === "serial")).toBe(true);
      expect(await planCalls(r.script)).toEqual(r.steps);
      expect(r.script).toMatchSnapshot();
    });

  it("the order: identity checks, wipes, tables, stack, filesystems, mounts (parents first), restores, boot, unmount", () => {
    const layout = fixtureLayout("luks-lvm");
    const r = ok(planFor(layout, { chains: [chain("/home", "/home", [0, 1, 2]), chain("/", "/", [0])] }));
    const order = fns(r.steps);
    const first = (fn: string) => order.indexOf(fn as Step["fn"]);
    const last = (fn: string) => order.lastIndexOf(fn as Step["fn"]);
    expect(first("check_disk")).toBe(1);
    for (const [a, b] of [
      ["check_disk", "wipe_disk"],
      ["wipe_disk", "partition"],
      ["partition", "create_luks"],
      ["create_luks", "create_pv"],
      ["create_pv", "create_vg"],
      ["create_vg", "create_lv"],
      ["create_lv", "make_fs"],
      ["make_fs", "mount_fs"],
      ["mount_fs", "restore_dump"],
      ["restore_dump", "install_bootloader"],
      ["install_bootloader", "unmount_all"],
    ])
      expect(last(a!), `${a} before ${b}`).toBeLessThan(first(b!));
    expect(args(r.steps, "mount_fs").map((x) => x[1])).toEqual(["/", "/boot", "/home", "/boot/efi"]);
    // Restore chains in chain order, level 0 first, one call per dump, by stream URL.
    expect(args(r.steps, "restore_dump").map((x) => [x[0], x[2], x[5]])).toEqual([
      ["/home", "0", "/api/v1/dumps/home-0/stream"],
      ["/home", "1", "/api/v1/dumps/home-1/stream"],
      ["/home", "2", "/api/v1/dumps/home-2/stream"],
      ["/", "0", "/api/v1/dumps/-0/stream"],
    ]);
    expect(args(r.steps, "install_bootloader")).toEqual([["uefi", "grub", "/dev/nvme0n1", "/boot/efi", "fedora"]]);
  });

  it("MD RAID1 + LVM: the array from both mapped partitions, PV with its UUID, LVs at their sizes", () => {
    const layout = fixtureLayout("md-raid1-lvm");
    const r = ok(planFor(layout));
    expect(args(r.steps, "create_md")).toEqual([["/dev/md0", "fixture:0", "raid1", "1.2", "3f5c1a2b:9d8e7f60:12345678:abcdef01", "/dev/sda2", "/dev/sdb2"]]);
    expect(args(r.steps, "create_pv")).toEqual([["/dev/md0", "Hj3kLm-nOpQ-rStU-vWxY-z012-3456-789abc"]]);
    expect(args(r.steps, "create_vg")).toEqual([["vg0", "4194304", "/dev/md0"]]);
    expect(args(r.steps, "create_lv")).toEqual([
      ["vg0", "root", String(8 * GiB)],
      ["vg0", "swap", String(2 * GiB)],
      ["vg0", "home", String(4 * GiB)],
    ]);
    expect(args(r.steps, "install_bootloader")).toEqual([["bios", "grub", "/dev/sda", "", ""]]);
  });

  it("btrfs: subvolumes after mkfs, mounted with subvol=", () => {
    const r = ok(planFor(fixtureLayout("btrfs-subvols")));
    expect(args(r.steps, "create_subvol")).toEqual([
      ["/dev/nvme0n1p2", "@"],
      ["/dev/nvme0n1p2", "@home"],
    ]);
    expect(args(r.steps, "mount_fs").filter((a) => a[2] === "btrfs")).toEqual([
      ["/dev/nvme0n1p2", "/", "btrfs", "subvol=@"],
      ["/dev/nvme0n1p2", "/home", "btrfs", "subvol=@home"],
    ]);
  });

  it("mkfs keeps the captured UUIDs and labels; nothing is rewritten in fstab when none changed", () => {
    const layout = fixtureLayout("gpt-uefi");
    const r = ok(planFor(layout));
    expect(args(r.steps, "make_fs").map((a) => a.slice(0, 4))).toEqual(layout.filesystems.map((f) => [f.type, f.dev, f.uuid, f.label ?? ""]));
    expect(fns(r.steps)).not.toContain("fix_fstab");
    expect(fns(r.steps)).not.toContain("regen_initramfs");
  });
});

describe("disk identity", () => {
  const layout = fixtureLayout("multi-disk");

  it("matches by serial even when the kernel names changed order", () => {
    const t = sameMachine(layout);
    const swapped = [
      { ...t[1]!, name: "sda", path: "/dev/sda" },
      { ...t[0]!, name: "sdb", path: "/dev/sdb" },
    ];
    const r = ok(buildPlan({ layout, targets: swapped }));
    expect(r.mapping.map((m) => [m.captured, m.targetPath, m.matchedBy])).toEqual([
      ["sda", "/dev/sdb", "serial"],
      ["sdb", "/dev/sda", "serial"],
    ]);
    expect(args(r.steps, "check_disk").map((a) => [a[0], a[1]])).toEqual([
      ["/dev/sdb", "QM00005"],
      ["/dev/sda", "QM00006"],
    ]);
  });

  it("matches by WWN and by /dev/disk/by-id when the serial is not reported", () => {
    const md = fixtureLayout("md-raid1-lvm");
    const byWwn = sameMachine(md).map((t) => ({ ...t, serial: null, byId: [] }));
    expect(matchDisks(md, byWwn).matches.map((m) => m.matchedBy)).toEqual(["wwn", "wwn"]);
    const byId = sameMachine(md).map((t) => ({ ...t, serial: null, wwn: null }));
    expect(matchDisks(md, byId).matches.map((m) => m.matchedBy)).toEqual(["by-id", "by-id"]);
  });

  it("never by size alone: new disks of the very same size are refused until mapped", () => {
    const targets = layout.disks.map((d, i) => newDisk(`vd${"ab"[i]}`, d.sizeBytes));
    const r = buildPlan({ layout, targets });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reasons).toHaveLength(2);
    expect(r.reason).toMatch(/captured disk sda .*serial QM00005.*no target disk has its serial\/WWN\/by-id .*explicit mapping sda=TARGET/);
    expect("steps" in r).toBe(false);
    expect(describePlan(r)).toContain("REFUSED, nothing will be written");
  });

  it("an explicit mapping (by name, path, serial or by-id) is used and shown", () => {
    const targets = [newDisk("vda", 512 * MiB), newDisk("vdb", 2 * GiB, { byId: ["/dev/disk/by-id/virtio-data"] })];
    const r = ok(buildPlan({ layout, targets, options: { mapping: { sda: "/dev/vda", "/dev/sdb": "virtio-data" } } }));
    expect(r.mapping.map((m) => [m.captured, m.target, m.matchedBy])).toEqual([
      ["sda", "vda", "mapping"],
      ["sdb", "vdb", "mapping"],
    ]);
    expect(describePlan(r)).toMatch(/sda .* → \/dev\/vda .*\[mapping\]/);
  });

  it("ambiguity is refused: two targets with the captured serial, or one target for two disks", () => {
    const t = sameMachine(layout);
    const dup = [...t, { ...t[0]!, name: "sdc", path: "/dev/sdc" }];
    const r1 = buildPlan({ layout, targets: dup });
    expect(refusal(r1)).toMatch(/ambiguous, sda and sdc all match/);
    const r2 = buildPlan({ layout, targets: t, options: { mapping: { sda: "sdb" } } });
    expect(refusal(r2)).toMatch(/target disk sdb is matched by both sda and sdb/);
  });

  it("a mapping naming a disk that does not exist is refused with what does", () => {
    const r = buildPlan({ layout, targets: sameMachine(layout), options: { mapping: { sdz: "sda" } } });
    expect(refusal(r)).toBe("mapping sdz=sda: the layout has no disk sdz (it has sda, sdb)");
    const r2 = buildPlan({ layout, targets: sameMachine(layout), options: { mapping: { sda: "nvme9n9" } } });
    expect(refusal(r2)).toBe("mapping sda=nvme9n9: no target disk is nvme9n9 (targets: sda, sdb)");
  });

  it("different logical sector sizes are refused (tables are in sectors)", () => {
    const l = fixtureLayout("gpt-uefi");
    const r = buildPlan({ layout: l, targets: sameMachine(l, { logicalSectorSize: 4096 }) });
    expect(refusal(r)).toMatch(/512-byte sectors, target sda has 4096: not supported/);
  });
});

describe("migration", () => {
  const layout = fixtureLayout("gpt-uefi");
  const esp = layout.disks[0]!.table!.partitions[0]!;
  const root = layout.disks[0]!.table!.partitions[1]!;
  const swap = layout.disks[0]!.table!.partitions[2]!;
  const onDisk = (size: number, extra: Partial<PlanInput["options"]> = {}) =>
    buildPlan({ layout, targets: [newDisk("vda", size)], options: { mapping: { sda: "vda" }, ...extra } });

  it("same size: the table is reproduced sector for sector", () => {
    const r = ok(onDisk(layout.disks[0]!.sizeBytes));
    expect(planned(r.steps, "/dev/vda")).toEqual(layout.disks[0]!.table!.partitions.map((p) => [p.number, p.start, p.size]));
  });

  it("bigger: the ESP keeps its size, the others grow by one factor, the last takes the rest", () => {
    const size = 4 * GiB;
    const r = ok(onDisk(size));
    const [p1, p2, p3] = planned(r.steps, "/dev/vda");
    expect(p1).toEqual([1, esp.start, esp.size]);
    const f2 = p2![2] / root.size;
    const f3 = p3![2] / swap.size;
    expect(f2).toBeGreaterThan(3.5);
    expect(Math.abs(f3 - f2) / f2).toBeLessThan(0.02);
    expect(p3![1] + p3![2] - 1).toBe(size / 512 - 34); // ends at the last usable GPT sector
    expect(p2![1] % 2048).toBe(0);
    expect(p3![1] % 2048).toBe(0);
    expect(r.notes.join("\n")).toMatch(/\/dev\/sda2 → \/dev\/vda2: 700\.0 MiB/);
  });

  it("--grow picks the partition that takes the rest", () => {
    const r = ok(onDisk(4 * GiB, { grow: "/dev/sda2" }));
    const [, p2, p3] = planned(r.steps, "/dev/vda");
    const lastUsable = (4 * GiB) / 512 - 34;
    expect(p3![1] + p3![2] - 1).toBeLessThanOrEqual(lastUsable);
    expect(p3![1] + p3![2] - 1).toBeGreaterThan(lastUsable - 2048); // only alignment is left over
    expect(p2![2] / root.size).toBeGreaterThan(p3![2] / swap.size);
  });

  it("exact: sectors kept on a bigger disk", () => {
    const r = ok(onDisk(4 * GiB, { migration: "exact" }));
    expect(planned(r.steps, "/dev/vda")).toEqual(layout.disks[0]!.table!.partitions.map((p) => [p.number, p.start, p.size]));
  });

  it("smaller: partitions shrink, never below used bytes plus headroom", () => {
    const size = 600 * MiB;
    const r = ok(onDisk(size));
    const [p1, p2, p3] = planned(r.steps, "/dev/vda");
    expect(p1![2]).toBe(esp.size);
    const rootFs = layout.filesystems.find((f) => f.dev === "/dev/sda2")!;
    expect(p2![2] * 512).toBeGreaterThanOrEqual(rootFs.usedBytes! * 1.1 + 64 * MiB);
    expect(p2![2]).toBeLessThan(root.size / 2);
    // Swap shrinks to at most 256 MiB; this one is smaller, so it keeps its size.
    expect(p3![2]).toBeGreaterThanOrEqual(swap.size);
    expect(p3![1] + p3![2] - 1).toBeLessThanOrEqual(size / 512 - 34);
  });

  it("too small: refused before any step, saying by how much; that much more fits", () => {
    const size = 300 * MiB;
    const r = onDisk(size);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const m = /does not fit, .*\((\d+) bytes\) more needed/.exec(r.reason);
    expect(m, r.reason).not.toBeNull();
    const short = Number(m![1]);
    expect(onDisk(size + short).ok).toBe(true);
    expect(onDisk(size + short - MiB).ok).toBe(false);
  });

  it("a filesystem whose used bytes are unknown keeps its size when shrinking", () => {
    const l = structuredClone(layout);
    l.filesystems[1]!.usedBytes = null;
    const r = buildPlan({ layout: l, targets: [newDisk("vda", 600 * MiB)], options: { mapping: { sda: "vda" } } });
    expect(refusal(r)).toMatch(/does not fit/);
  });

  it("MBR with logical partitions: the extended container wraps its logicals after resizing", () => {
    const l = fixtureLayout("mbr-ext4");
    const r = ok(buildPlan({ layout: l, targets: [newDisk("vda", 3 * GiB)], options: { mapping: { sda: "vda" } } }));
    const [p1, ext, p5] = planned(r.steps, "/dev/vda");
    expect(ext![0]).toBe(2);
    expect(ext![1]).toBeGreaterThanOrEqual(p1![1] + p1![2]);
    expect(p5![1]).toBeGreaterThan(ext![1]);
    expect(p5![1] + p5![2]).toBe(ext![1] + ext![2]);
    expect(p5![1] + p5![2] - 1).toBe(3 * GiB / 512 - 1);
  });

  it("LVM on a smaller disk: LVs shrink to their used bytes plus headroom when the VG cannot hold them", () => {
    const l = fixtureLayout("luks-lvm");
    const key = l.luks[0]!.uuid;
    const r = ok(buildPlan({ layout: l, targets: [newDisk("nvme1n1", 128 * GiB)], options: { mapping: { nvme0n1: "nvme1n1" }, luksKeys: [key] } }));
    const lvs = args(r.steps, "create_lv");
    const total = lvs.reduce((n, a) => n + Number(a[2]), 0);
    expect(total).toBeLessThan(128 * GiB);
    const home = Number(lvs.find((a) => a[1] === "home")![2]);
    expect(home).toBeGreaterThanOrEqual(50 * GiB * 1.1);
    expect(home % (4 * MiB)).toBe(0);
    const tooSmall = buildPlan({ layout: l, targets: [newDisk("nvme1n1", 40 * GiB)], options: { mapping: { nvme0n1: "nvme1n1" }, luksKeys: [key] } });
    expect(refusal(tooSmall)).toMatch(/more needed/);
  });

  it("fitSizes: one factor, minimums respected, sums to what is available", () => {
    expect(fitSizes([100, 300], [0, 0], 800, 1)).toEqual([200, 600]);
    expect(fitSizes([100, 300], [150, 0], 400, 1)).toEqual([150, 250]);
    expect(fitSizes([100, 300], [300, 200], 400, 1)).toBeNull();
  });
});

describe("keys, clones, chains, boot", () => {
  it("LUKS needs a key the admin supplied for the job; the plan names the key, never holds it", () => {
    const l = fixtureLayout("luks-lvm");
    const r = buildPlan({ layout: l, targets: sameMachine(l) });
    expect(refusal(r)).toMatch(/LUKS container 2c1e4b7a-.* no key supplied for this job/);
    const r2 = ok(buildPlan({ layout: l, targets: sameMachine(l), options: { luksKeys: [l.luks[0]!.uuid] } }));
    expect(args(r2.steps, "create_luks")).toEqual([["/dev/nvme0n1p3", l.luks[0]!.uuid, l.luks[0]!.name, l.luks[0]!.uuid]]);
  });

  it("clones get new UUIDs everywhere, fstab/crypttab fixed for each, and a new initramfs", () => {
    const l = fixtureLayout("gpt-uefi");
    const r = ok(buildPlan({ layout: l, targets: [newDisk("vda", l.disks[0]!.sizeBytes)], options: { mapping: { sda: "vda" }, newUuids: true, uuid: counterUuid() } }));
    const fixes = args(r.steps, "fix_fstab");
    const oldFs = l.filesystems.map((f) => f.uuid);
    for (const u of [...oldFs, l.swap[0]!.uuid]) expect(fixes.map((f) => f[0])).toContain(u);
    expect(args(r.steps, "make_fs").map((a) => a[2])).not.toContain(oldFs[1]);
    expect(args(r.steps, "make_fs")[0]![2]).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/); // vfat volume id
    expect(fns(r.steps)).toContain("regen_initramfs");
    expect(r.steps.find((s) => s.fn === "partition")!.args[1]).not.toContain(l.disks[0]!.table!.id);
  });

  it("a clone's identity goes in after the restores, before the boot loader; a bad name is refused", () => {
    const l = fixtureLayout("mbr-ext4");
    const r = ok(buildPlan({ layout: l, targets: sameMachine(l), chains: [chain("/", "/", [0])], options: { identity: { hostname: "web-3" } } }));
    expect(args(r.steps, "set_identity")).toEqual([["web-3"]]);
    const order = fns(r.steps);
    expect(order.indexOf("set_identity")).toBeGreaterThan(order.lastIndexOf("restore_dump"));
    expect(order.indexOf("set_identity")).toBeLessThan(order.indexOf("install_bootloader"));
    expect(fns(ok(buildPlan({ layout: l, targets: sameMachine(l) })).steps)).not.toContain("set_identity");
    const bad = buildPlan({ layout: l, targets: sameMachine(l), options: { identity: { hostname: "web 3; rm -rf /" } } });
    expect(refusal(bad)).toBe('identity: "web 3; rm -rf /" is not a host name (letters, digits, \'-\' and \'.\')');
  });

  it("a new disk bus (sata → nvme) regenerates the initramfs; the same bus does not", () => {
    const l = fixtureLayout("mbr-ext4");
    const nvme = ok(buildPlan({ layout: l, targets: [newDisk("nvme0n1", l.disks[0]!.sizeBytes, { bus: "nvme" })], options: { mapping: { sda: "nvme0n1" } } }));
    expect(args(nvme.steps, "regen_initramfs")).toEqual([["update-initramfs"]]);
    expect(args(nvme.steps, "make_fs")[0]![1]).toBe("/dev/nvme0n1p1");
    const sata = ok(buildPlan({ layout: l, targets: [newDisk("sdx", l.disks[0]!.sizeBytes)], options: { mapping: { sda: "sdx" } } }));
    expect(fns(sata.steps)).not.toContain("regen_initramfs");
  });

  it("restore chains: refused when a chain has no level 0 or lands on nothing mounted", () => {
    const l = fixtureLayout("mbr-ext4");
    const bad = buildPlan({ layout: l, targets: sameMachine(l), chains: [chain("/", "/", [1, 2])] });
    expect(refusal(bad)).toMatch(/must start with a level 0/);
    const noRoot = { ...l, mounts: [] };
    const bad2 = buildPlan({ layout: noRoot, targets: sameMachine(l), chains: [chain("/srv", "/srv", [0])] });
    expect(refusal(bad2)).toMatch(/mount point \/srv is on no filesystem the plan mounts/);
  });

  it("boot loader: bios on the disk holding /, skipped with --bootloader none, uefi needs an ESP", () => {
    const l = fixtureLayout("mbr-ext4");
    expect(args(ok(planFor(l)).steps, "install_bootloader")).toEqual([["bios", "grub", "/dev/sda", "", ""]]);
    expect(fns(ok(planFor(l, { options: { bootloader: "none" } })).steps)).not.toContain("install_bootloader");
    const r = planFor(l, { options: { firmware: "uefi" } });
    expect(refusal(r)).toMatch(/uefi boot: the layout has no mounted EFI system partition/);
  });

  it("a ReaR import plans only with an explicit mapping (ReaR records no serials)", async () => {
    const { layoutFromRear } = await import("../../../server/layout/rear-import.ts");
    const { readFileSync } = await import("node:fs");
    const text = readFileSync(new URL("../../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url), "utf8");
    const l = layoutFromRear(text, "oldbox", "2024-01-15T10:30:00Z");
    const target = newDisk("sda", 20 * GiB);
    expect(buildPlan({ layout: l, targets: [target] }).ok).toBe(false);
    const r = ok(buildPlan({ layout: l, targets: [target], options: { mapping: { sda: "sda" } } }));
    expect(fns(r.steps)).toEqual(expect.arrayContaining(["create_pv", "create_vg", "create_lv", "make_fs", "make_swap"]));
    expect(r.steps.find((s) => s.fn === "partition")!.args[1]).not.toContain("label-id");
    expect(r.script).toMatchSnapshot();
  });
});
