import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { bootsThroughShim, layoutFromCapture, parseCapture } from "../../../server/layout/layout-capture.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { disksFingerprint, matchDisks, resolveMapping } from "../../../server/plan/disks.ts";
import { type PlanInput, type PlanResult, type RestoreChain, buildPlan, describePlan, fitSizes } from "../../../server/plan/plan.ts";
import type { Step } from "../../../server/plan/steps.ts";
import { planCalls } from "../../integration/recovery/plan-calls.ts";
import { FIXTURES, FIXTURE_DIR, fixtureLayout, newDisk, sameMachine } from "./fixtures.ts";

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

/** The fixtures captured in QEMU: their ATA serials (QM000nn) identify no disk, so the same machine needs a mapping. */
const QEMU_SERIALS = new Set<string>(["mbr-ext4", "gpt-uefi", "xfs", "multi-disk"]);

/** Each captured disk mapped to the target of the same name: the admin saying "the same machine". */
const byName = (l: DiskLayout) => Object.fromEntries(l.disks.map((d) => [d.name, d.name]));

function planFor(layout: DiskLayout, extra: Partial<PlanInput> = {}) {
  const keys = layout.luks.map((l) => l.uuid);
  const mapping = layout.disks.some((d) => /^QM\d{5}$/.test(d.serial ?? "")) ? byName(layout) : undefined;
  return buildPlan({ layout, targets: sameMachine(layout), ...extra, options: { luksKeys: keys, mapping, ...extra.options } });
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
      expect(r.mapping.map((m) => m.matchedBy)).toEqual(layout.disks.map(() => (QEMU_SERIALS.has(name) ? "mapping" : "serial")));
      expect(await planCalls(r.script)).toEqual(r.steps);
      expect(r.script).toMatchSnapshot();
    });

  // Independent of the snapshots: what each stage must have produced from the layout.
  for (const name of FIXTURES)
    it(`${name}: a gate per disk, a mkfs per filesystem with its UUID, a mount per mount, each chain restored in order`, () => {
      const layout = fixtureLayout(name);
      const chains = layout.mounts.map((m) => chain(`${m.mountpoint}`, m.mountpoint, [0, 1]));
      const r = ok(planFor(layout, { chains }));
      const called = (fn: string) => r.steps.filter((s) => s.fn === fn);
      expect(called("check_disk")).toHaveLength(layout.disks.length);
      expect(called("make_fs").map((s) => s.args[2])).toEqual(layout.filesystems.map((f) => f.uuid ?? ""));
      expect(called("make_swap")).toHaveLength(layout.swap.length);
      expect(called("mount_fs").map((s) => s.args[1])).toEqual(layout.mounts.map((m) => m.mountpoint));
      expect(called("restore_dump").map((s) => `${s.args[0]}@${s.args[2]}`)).toEqual(layout.mounts.flatMap((m) => [`${m.mountpoint}@0`, `${m.mountpoint}@1`]));
      expect(called("fix_fstab")).toHaveLength(0);
      const order = fns(r.steps);
      expect(order.lastIndexOf("check_disk")).toBeLessThan(order.indexOf("wipe_disk"));
      expect(order.lastIndexOf("make_fs")).toBeLessThan(order.indexOf("mount_fs"));
      expect(order.lastIndexOf("mount_fs")).toBeLessThan(order.indexOf("restore_dump"));
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

  it("several servers: a dump only another server holds is streamed from its full URL, the others from this server", () => {
    const layout = fixtureLayout("luks-lvm");
    const r = ok(planFor(layout, { chains: [chain("/home", "/home", [0, 1]), chain("/", "/", [0])], options: { dumpUrls: { "home-1": "http://10.231.25.1:8080/api/v1/dumps/home-1/stream" } } }));
    expect(args(r.steps, "restore_dump").map((x) => x[5])).toEqual(["/api/v1/dumps/home-0/stream", "http://10.231.25.1:8080/api/v1/dumps/home-1/stream", "/api/v1/dumps/-0/stream"]);
  });

  it("MD RAID1 + LVM: the array from both mapped partitions, PV with its UUID, LVs at their sizes", () => {
    const layout = fixtureLayout("md-raid1-lvm");
    const r = ok(planFor(layout));
    expect(args(r.steps, "create_md")).toEqual([["/dev/md0", "fixture:0", "raid1", "1.2", "3f5c1a2b:9d8e7f60:12345678:abcdef01", "", "/dev/sda2", "/dev/sdb2"]]);
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
    const md = fixtureLayout("md-raid1-lvm");
    const t = sameMachine(md);
    const swapped = [
      { ...t[1]!, name: "sda", path: "/dev/sda" },
      { ...t[0]!, name: "sdb", path: "/dev/sdb" },
    ];
    const r = ok(buildPlan({ layout: md, targets: swapped }));
    expect(r.mapping.map((m) => [m.captured, m.targetPath, m.matchedBy])).toEqual([
      ["sda", "/dev/sdb", "serial"],
      ["sdb", "/dev/sda", "serial"],
    ]);
    expect(args(r.steps, "check_disk").map((a) => [a[0], a[1]])).toEqual([
      ["/dev/sdb", "WD-WCC4E0000001"],
      ["/dev/sda", "WD-WCC4E0000002"],
    ]);
  });

  it("matches by WWN and by /dev/disk/by-id when the serial is not reported", () => {
    const md = fixtureLayout("md-raid1-lvm");
    const byWwn = sameMachine(md).map((t) => ({ ...t, serial: null, byId: [] }));
    expect(matchDisks(md, md.disks, byWwn).matches.map((m) => m.matchedBy)).toEqual(["wwn", "wwn"]);
    const byId = sameMachine(md).map((t) => ({ ...t, serial: null, wwn: null }));
    expect(matchDisks(md, md.disks, byId).matches.map((m) => m.matchedBy)).toEqual(["by-id", "by-id"]);
  });

  it("never by size alone: new disks of the very same size are refused until mapped", () => {
    const md = fixtureLayout("md-raid1-lvm");
    const targets = md.disks.map((d, i) => newDisk(`vd${"ab"[i]}`, d.sizeBytes));
    const r = buildPlan({ layout: md, targets });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.reasons).toHaveLength(2);
    expect(r.reason).toMatch(/captured disk sda .*serial WD-WCC4E0000001.*no target disk has its serial\/WWN\/by-id .*explicit mapping sda=TARGET/);
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
    const md = fixtureLayout("md-raid1-lvm");
    const t = sameMachine(md);
    const dup = [...t, { ...t[0]!, name: "sdc", path: "/dev/sdc" }];
    const r1 = buildPlan({ layout: md, targets: dup });
    expect(refusal(r1)).toMatch(/ambiguous, sda and sdc all match/);
    const r2 = buildPlan({ layout: md, targets: t, options: { mapping: { sda: "sdb" } } });
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
    const r = buildPlan({ layout: l, targets: sameMachine(l, { logicalSectorSize: 4096 }), options: { mapping: byName(l) } });
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

  it("--grow naming no captured partition is refused, not quietly replaced by the default", () => {
    expect(refusal(onDisk(4 * GiB, { grow: "/dev/sda9" }))).toBe(`grow /dev/sda9: layout of ${layout.hostname} has no partition by that name`);
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
  it("the plan ends with plan_done and the end state: reboot unless the options say poweroff or hold", () => {
    const l = fixtureLayout("luks-lvm");
    expect(ok(planFor(l)).steps.at(-1)).toEqual({ fn: "plan_done", args: ["reboot"] });
    for (const endState of ["poweroff", "hold"] as const) expect(ok(planFor(l, { options: { endState } })).script).toMatch(new RegExp(`\\nplan_done ${endState}\\n$`));
  });
  it("LUKS needs a key the admin supplied for the job; the plan names the key, never holds it", () => {
    const l = fixtureLayout("luks-lvm");
    const r = buildPlan({ layout: l, targets: sameMachine(l) });
    expect(refusal(r)).toMatch(/LUKS container 2c1e4b7a-.* no key supplied for this job/);
    const r2 = ok(buildPlan({ layout: l, targets: sameMachine(l), options: { luksKeys: [l.luks[0]!.uuid] } }));
    // The capture says the header's version (blkid), not its cipher, key size or hash: cryptsetup's defaults.
    expect(args(r2.steps, "create_luks")).toEqual([["/dev/nvme0n1p3", l.luks[0]!.uuid, l.luks[0]!.name, l.luks[0]!.uuid, "luks2", "", "", ""]]);
  });

  it("btrfs: subvolumes created, then NOCOW ones marked and the default subvolume set (snapper's root boots the right tree)", () => {
    const l = fixtureLayout("btrfs-subvols");
    const fs = l.filesystems.find((f) => f.type === "btrfs")!;
    Object.assign(fs, { defaultSubvolume: "@", nocow: ["@home"] });
    const r = ok(buildPlan({ layout: l, targets: sameMachine(l) }));
    const btrfs = r.steps.filter((s) => ["create_subvol", "set_nocow", "set_default_subvol"].includes(s.fn)).map((s) => [s.fn, s.args[1]]);
    expect(btrfs).toEqual([["create_subvol", "@"], ["create_subvol", "@home"], ["set_nocow", "@home"], ["set_default_subvol", "@"]]);
    Object.assign(fs, { defaultSubvolume: "@/.snapshots/1/snapshot" });
    expect(refusal(buildPlan({ layout: l, targets: sameMachine(l) }))).toMatch(/filesystems\.\d+\.defaultSubvolume: "@\/\.snapshots\/1\/snapshot" is not one of the filesystem's subvolumes/);
  });

  it("a LUKS1 container (GRUB's /boot) is formatted LUKS1 again, with its cipher, key size and hash", () => {
    const l = fixtureLayout("luks-lvm");
    Object.assign(l.luks[0]!, { type: "luks1", cipher: "aes-cbc-essiv:sha256", keySizeBits: 256, hash: "sha1" });
    const r = ok(buildPlan({ layout: l, targets: sameMachine(l), options: { luksKeys: [l.luks[0]!.uuid] } }));
    expect(args(r.steps, "create_luks")[0]!.slice(4)).toEqual(["luks1", "aes-cbc-essiv:sha256", "256", "sha1"]);
    Object.assign(l.luks[0]!, { cipher: "aes-cbc-essiv:sha256 --header /dev/sdb" });
    expect(refusal(buildPlan({ layout: l, targets: sameMachine(l), options: { luksKeys: [l.luks[0]!.uuid] } }))).toMatch(/luks\.0\.cipher: "aes-cbc-essiv:sha256 --header \/dev\/sdb" is not a cipher/);
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
    const r = ok(buildPlan({ layout: l, targets: sameMachine(l), chains: [chain("/", "/", [0])], options: { mapping: byName(l), identity: { hostname: "web-3" } } }));
    expect(args(r.steps, "set_identity")).toEqual([["web-3"]]);
    const order = fns(r.steps);
    expect(order.indexOf("set_identity")).toBeGreaterThan(order.lastIndexOf("restore_dump"));
    expect(order.indexOf("set_identity")).toBeLessThan(order.indexOf("install_bootloader"));
    expect(fns(ok(buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l) } })).steps)).not.toContain("set_identity");
    const bad = buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l), identity: { hostname: "web 3; rm -rf /" } } });
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
    const bad = buildPlan({ layout: l, targets: sameMachine(l), chains: [chain("/", "/", [1, 2])], options: { mapping: byName(l) } });
    expect(refusal(bad)).toMatch(/must start with a level 0/);
    const noRoot = { ...l, mounts: [] };
    const bad2 = buildPlan({ layout: noRoot, targets: sameMachine(l), chains: [chain("/srv", "/srv", [0])], options: { mapping: byName(l) } });
    expect(refusal(bad2)).toMatch(/mount point \/srv is on no filesystem the plan mounts/);
  });

  it("boot loader: bios on the disk holding /, skipped with --bootloader none, uefi needs an ESP", () => {
    const l = fixtureLayout("mbr-ext4");
    expect(args(ok(planFor(l)).steps, "install_bootloader")).toEqual([["bios", "grub", "/dev/sda", "", ""]]);
    expect(fns(ok(planFor(l, { options: { bootloader: "none" } })).steps)).not.toContain("install_bootloader");
    const r = planFor(l, { options: { firmware: "uefi" } });
    expect(refusal(r)).toMatch(/uefi boot: the layout has no mounted EFI system partition/);
  });

  it("boot loader with / on LVM and no /boot: the disk under the VG, through LUKS too (GRUB reads both)", async () => {
    const crypt = fixtureLayout("luks-lvm");
    const noBoot = { ...crypt, mounts: crypt.mounts.filter((m) => m.mountpoint !== "/boot") };
    expect(args(ok(planFor(noBoot, { options: { firmware: "bios" } })).steps, "install_bootloader")).toEqual([["bios", "grub", "/dev/nvme0n1", "", ""]]);
    const { layoutFromRear } = await import("../../../server/layout/rear-import.ts");
    const { readFileSync } = await import("node:fs");
    const text = readFileSync(new URL("../../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url), "utf8").replace(/^fs \/dev\/sda2 \/boot .*$/m, "");
    const rear = layoutFromRear(text, "oldbox", "2024-01-15T10:30:00Z");
    expect(rear.mounts.map((m) => m.mountpoint)).toEqual(["/"]);
    const r = ok(buildPlan({ layout: rear, targets: [newDisk("sda", 20 * GiB)], options: { mapping: { sda: "sda" } } }));
    expect(args(r.steps, "install_bootloader")).toEqual([["bios", "grub", "/dev/sda", "", ""]]);
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

describe("identity that is weak, contradicted or stale (issue 15 item 5)", () => {
  const withKey = (l: DiskLayout) => ({ luksKeys: l.luks.map((x) => x.uuid) });

  for (const name of QEMU_SERIALS)
    it(`${name}: QEMU's default serials (QM000nn) match nothing by themselves; the same machine needs a mapping`, () => {
      const l = fixtureLayout(name as (typeof FIXTURES)[number]);
      const r = buildPlan({ layout: l, targets: sameMachine(l) });
      expect(r.ok).toBe(false);
      expect(refusal(r)).toMatch(/^captured disk sda \(.*serial QM0000\d.*\): serial QM0000\d is QEMU's default ATA serial, which identifies no disk: give an explicit mapping sda=TARGET$/);
      expect(ok(buildPlan({ layout: l, targets: sameMachine(l), options: { mapping: byName(l) } })).mapping.map((m) => m.matchedBy)).toEqual(l.disks.map(() => "mapping"));
    });

  it("all-zero and placeholder serials, and a serial two disks share, match nothing; a strong WWN still does", () => {
    const md = structuredClone(fixtureLayout("md-raid1-lvm"));
    for (const serial of ["000000000000", "To be filled by O.E.M.", "SAME-ON-BOTH"]) {
      const l = structuredClone(md);
      for (const d of l.disks) Object.assign(d, { serial });
      const noWwn = structuredClone(l);
      for (const d of noWwn.disks) Object.assign(d, { wwn: null, byId: [] });
      const r = buildPlan({ layout: noWwn, targets: sameMachine(noWwn) });
      expect(r.ok, serial).toBe(false);
      expect(refusal(r)).toMatch(/^captured disk sda: ambiguous, sda and sdb all match \(serial .* is (one character repeated|a placeholder|shared by two disks)\): give an explicit mapping sda=TARGET$/);
      expect(ok(buildPlan({ layout: l, targets: sameMachine(l) })).mapping.map((m) => m.matchedBy), serial).toEqual(["wwn", "wwn"]);
    }
  });

  it("a serial match is refused when the WWN or the size contradicts it; an explicit mapping still works", () => {
    const l = fixtureLayout("luks-lvm");
    const [t] = sameMachine(l);
    const otherWwn = buildPlan({ layout: l, targets: [{ ...t!, wwn: "eui.ffffffffffffffff" }], options: withKey(l) });
    expect(refusal(otherWwn)).toBe(
      "captured disk nvme0n1 (Samsung SSD 980 PRO 256GB, serial S5GXNF0R123456, wwn eui.002538b111b2c3d4, 256.0 GiB (274877906944 bytes)): nvme0n1 has its serial but another WWN (eui.002538b111b2c3d4 captured, eui.ffffffffffffffff now): not the same disk; if it is the one, give an explicit mapping nvme0n1=nvme0n1",
    );
    const otherSize = buildPlan({ layout: l, targets: [{ ...t!, sizeBytes: 512 * GiB }], options: withKey(l) });
    expect(refusal(otherSize)).toMatch(/has its serial but another size \(256\.0 GiB .* captured, 512\.0 GiB .* now\): not the same disk/);
    // Within 1% is the same size class.
    expect(buildPlan({ layout: l, targets: [{ ...t!, sizeBytes: t!.sizeBytes + 64 * MiB }], options: withKey(l) }).ok).toBe(true);
    const mapped = ok(buildPlan({ layout: l, targets: [{ ...t!, sizeBytes: 512 * GiB }], options: { ...withKey(l), mapping: { nvme0n1: "nvme0n1" } } }));
    expect(mapped.mapping[0]!.matchedBy).toBe("mapping");
  });

  it("a disk behind a USB bridge is never matched by its serial, even when removable disks are included", () => {
    const l = fixtureLayout("luks-lvm");
    // The original disk, now in a USB enclosure: same serial, reported on bus usb.
    const [t] = sameMachine(l, { bus: "usb", name: "sdb", path: "/dev/sdb", wwn: null, byId: [] });
    const r = buildPlan({ layout: l, targets: [t!], options: withKey(l) });
    expect(refusal(r)).toMatch(/no target disk has its serial\/WWN\/by-id/);
    const inc = buildPlan({ layout: l, targets: [t!], options: { ...withKey(l), includeRemovable: true } });
    expect(refusal(inc)).toMatch(/^captured disk nvme0n1 .*: sdb matches only by an identifier that identifies no disk \(on sdb serial S5GXNF0R123456 is a USB bridge's serial\)/);
  });
});

describe("removable, USB and left-out disks (issue 15 item 5)", () => {
  const l = fixtureLayout("luks-lvm");
  const keys = { luksKeys: l.luks.map((x) => x.uuid) };
  const stick = newDisk("sdc", 64 * GiB, { bus: "usb", removable: true, signatures: ["vfat"] });

  it("a USB or removable disk is never a target by default, not even when mapped; --include-removable allows it", () => {
    // The machine's own disk is gone; a USB disk and a card reader are what it has.
    const usb = newDisk("sdb", 512 * GiB, { bus: "usb" });
    const card = newDisk("mmcblk0", 512 * GiB, { bus: null, removable: true });
    for (const t of [usb, card]) {
      const r = buildPlan({ layout: l, targets: [t], options: { ...keys, mapping: { nvme0n1: t.name } } });
      expect(refusal(r)).toBe(
        `mapping nvme0n1=${t.name}: ${t.name} is a removable or USB disk, which plans leave alone unless removable disks are included (--include-removable)`,
      );
      const inc = ok(buildPlan({ layout: l, targets: [t], options: { ...keys, mapping: { nvme0n1: t.name }, includeRemovable: true } }));
      expect(inc.mapping.map((m) => m.targetPath)).toEqual([t.path]);
    }
    // Beside the machine's own disk, a stick changes nothing and is never checked or wiped.
    const r = ok(buildPlan({ layout: l, targets: [...sameMachine(l), stick], options: keys }));
    expect(r.steps.filter((s) => s.args.some((a) => a.startsWith("/dev/sdc")))).toEqual([]);
  });

  it("a captured removable or USB disk is left out of the plan by default, with a note; included on request", () => {
    const two = structuredClone(fixtureLayout("multi-disk"));
    Object.assign(two.disks[1]!, { transport: "usb" });
    const r = ok(buildPlan({ layout: two, targets: sameMachine(two), options: { mapping: { sda: "sda" } } }));
    expect(r.mapping.map((m) => m.captured)).toEqual(["sda"]);
    expect(r.steps.filter((s) => s.args.some((a) => a.startsWith("/dev/sdb")))).toEqual([]);
    expect(r.notes).toEqual(expect.arrayContaining(["captured disk sdb (removable/USB) left out: nothing is recreated on it", "left out with it: /var/lib/data (not mounted, nothing restored into it)"]));
    const inc = ok(buildPlan({ layout: two, targets: sameMachine(two).map((t) => ({ ...t, bus: "sata" })), options: { mapping: byName(two), includeRemovable: true } }));
    expect(inc.mapping.map((m) => m.captured)).toEqual(["sda", "sdb"]);
  });

  it("a plan can leave a captured disk out (CAPTURED=none): nothing of it is recreated, its DLEs are not restored", () => {
    const two = fixtureLayout("multi-disk");
    const chains = [chain("/", "/", [0]), chain("/var/lib/data", "/var/lib/data", [0]), chain("/var/lib/data/x", "/var/lib/data/x", [0])];
    const r = ok(buildPlan({ layout: two, targets: sameMachine(two).slice(0, 1), chains, options: { mapping: { sda: "sda", sdb: "none" } } }));
    expect(r.mapping.map((m) => m.captured)).toEqual(["sda"]);
    expect(args(r.steps, "mount_fs").map((a) => a[1])).toEqual(["/"]);
    expect(args(r.steps, "restore_dump").map((a) => a[0])).toEqual(["/"]);
    expect(r.notes).toEqual(
      expect.arrayContaining([
        "captured disk sdb left out: nothing is recreated on it",
        "DLE /var/lib/data (/var/lib/data) not restored: its filesystem is on a disk left out",
        "DLE /var/lib/data/x (/var/lib/data/x) not restored: its filesystem is on a disk left out",
      ]),
    );
    // Without leaving it out, the missing target is refused as before.
    expect(buildPlan({ layout: two, targets: sameMachine(two).slice(0, 1), options: { mapping: { sda: "sda" } } }).ok).toBe(false);
  });

  it("leaving out one disk of an MD array or volume group is refused: it cannot be recreated from part of its members", () => {
    const md = fixtureLayout("md-raid1-lvm");
    const r = buildPlan({ layout: md, targets: sameMachine(md), options: { mapping: { sdb: "none" } } });
    expect(refusal(r)).toBe("MD array /dev/md0 is built on /dev/sda2, /dev/sdb2: it cannot be recreated from part of them; leave out all of its disks or none");
  });
});

describe("mappings are kept as the target's identity (issue 15 item 5)", () => {
  const two = fixtureLayout("multi-disk");
  const disks = () => [newDisk("vda", 1 * GiB, { serial: "NEW-A", byId: ["/dev/disk/by-id/virtio-NEW-A"] }), newDisk("vdb", 4 * GiB, { serial: "NEW-B" })];

  it("a kernel name is resolved against the disks the admin saw; a later boot naming the disks the other way round needs a new look", () => {
    const seen = disks();
    const mapping = resolveMapping({ sda: "vda", sdb: "vdb" }, seen);
    expect(mapping.sda).toEqual({ name: "vda", serial: "NEW-A", wwn: null, byId: ["virtio-NEW-A"], sizeBytes: 1 * GiB, seen: disksFingerprint(seen) });
    const r = ok(buildPlan({ layout: two, targets: seen, options: { mapping } }));
    expect(r.mapping.map((m) => [m.captured, m.target, m.matchedBy])).toEqual([
      ["sda", "vda", "mapping"],
      ["sdb", "vdb", "mapping"],
    ]);
    // Next boot: the kernel names swapped. A kernel-name mapping would now wipe the wrong disk.
    const swapped = disks().map((t, i, all) => ({ ...t, name: all[1 - i]!.name, path: all[1 - i]!.path }));
    const stale = buildPlan({ layout: two, targets: swapped, options: { mapping } });
    expect(refusal(stale)).toBe(
      "mapping sda=vda (serial NEW-A): the machine reports other disks than when this mapping was made (now: vdb, vda): look at them again and map again",
    );
    // A USB stick plugged in since the admin looked: also a new look.
    const plugged = buildPlan({ layout: two, targets: [...seen, newDisk("sdc", 8 * GiB, { bus: "usb", removable: true })], options: { mapping } });
    expect(refusal(plugged)).toMatch(/the machine reports other disks than when this mapping was made \(now: vda, vdb, sdc \(removable\/USB\)\)/);
  });

  it("serial:, wwn: and by-id: need no look; every identifier the disk has must still agree", () => {
    const mapping = resolveMapping({ sda: "serial:NEW-A", sdb: "by-id:virtio-NEW-B" }, null);
    expect(mapping.sdb).toEqual({ name: null, serial: null, wwn: null, byId: ["virtio-NEW-B"], sizeBytes: null, seen: null });
    const targets = [disks()[0]!, { ...disks()[1]!, byId: ["/dev/disk/by-id/virtio-NEW-B"] }];
    const reordered = targets.map((t, i, all) => ({ ...t, name: all[1 - i]!.name, path: all[1 - i]!.path }));
    const r = ok(buildPlan({ layout: two, targets: reordered, options: { mapping } }));
    expect(r.mapping.map((m) => [m.captured, m.targetPath])).toEqual([
      ["sda", "/dev/vdb"],
      ["sdb", "/dev/vda"],
    ]);
    const gone = buildPlan({ layout: two, targets: [targets[1]!], options: { mapping } });
    expect(refusal(gone)).toBe("mapping sda=disk (serial NEW-A): no disk the machine reports has that identity now");
    // Chosen from a hello, then the disk's size differs: not the same disk.
    const id = resolveMapping({ sda: "vda" }, disks()).sda!;
    const grown = buildPlan({ layout: two, targets: [{ ...disks()[0]!, sizeBytes: 8 * GiB }], options: { mapping: { sda: { ...id, seen: null }, sdb: "none" } } });
    expect(refusal(grown)).toBe("mapping sda=vda (serial NEW-A): no disk the machine reports has that identity now");
  });

  it("before the machine reported its disks, a kernel name is refused in one line; none leaves a disk out", () => {
    expect(() => resolveMapping({ sda: "vdb" }, null)).toThrow(
      /^sda=vdb: a kernel name may name another disk at the next boot; map once the machine has reported its disks \(lifeboat jobs plan JOB shows them\), or name the target by serial:…, wwn:… or by-id:…$/,
    );
    expect(resolveMapping({ sdb: "none", sda: "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4" }, null)).toEqual({
      sdb: null,
      sda: { name: null, serial: null, wwn: null, byId: ["wwn-0x5000c500a1b2c3d4"], sizeBytes: null, seen: null },
    });
    expect(() => resolveMapping({ sda: "vdz" }, disks())).toThrow("sda=vdz: the machine reports no disk vdz (it has vda, vdb)");
  });
});

describe("multipath disks from a ReaR layout (issue 26 item 3)", () => {
  const local =
    "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n";
  const san =
    "multipath /dev/mapper/3600508b4000156d700012000000b0000 107374182400 gpt /dev/sdy,/dev/sdz\n" +
    "part /dev/mapper/3600508b4000156d700012000000b0000 107372085248 1048576 rear-noname lvm /dev/mapper/3600508b4000156d700012000000b0000-part1\n" +
    "lvmdev /dev/vgoracle /dev/mapper/3600508b4000156d700012000000b0000-part1 uuid 209715200\nlvmgrp /dev/vgoracle 4096 25599\nlvmvol /dev/vgoracle lvoracle 107369988096b linear\n" +
    "fs /dev/mapper/vgoracle-lvoracle /app xfs uuid=4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809 label=\n";
  const disk = "mapper/3600508b4000156d700012000000b0000";
  const targets = [newDisk("sda", 20 * GiB), newDisk("sdb", 100 * GiB, { wwn: "0x600508b4000156d700012000000b0000" }), newDisk("sdc", 100 * GiB, { wwn: "0x600508b4000156d700012000000b0000" })];
  const rear = async (text: string) => (await import("../../../server/layout/rear-import.ts")).layoutFromRear(text, "dbhost", "2024-01-15T10:30:00Z");

  it("a plan that would write a multipath disk is refused in one line naming it, its WWID and paths, and why, before any disk is matched", async () => {
    const r = buildPlan({ layout: await rear(local + san), targets, options: { mapping: { sda: "sda", [disk]: "sdb" } } });
    expect(r.ok).toBe(false);
    expect(r.mapping).toEqual([]);
    expect(refusal(r)).toBe(
      `captured disk ${disk} is a multipath disk (WWID 3600508b4000156d700012000000b0000; paths /dev/sdy, /dev/sdz): the rescue image has no multipath tools, and a write through one of its paths would leave the others stale; map it to none (${disk}=none) to restore the rest and recreate it by hand`,
    );
  });

  it("mapped to none (by name or path), the rest is restored and the multipath disk, its VG and /app are left alone", async () => {
    for (const key of [disk, `/dev/${disk}`]) {
      const r = ok(buildPlan({ layout: await rear(local + san), targets, options: { mapping: { sda: "sda", [key]: "none" } } }));
      expect(args(r.steps, "check_disk").map((a) => a[0])).toEqual(["/dev/sda"]);
      expect(fns(r.steps)).not.toContain("create_pv");
      expect(args(r.steps, "mount_fs").map((a) => a[1])).toEqual(["/"]);
      expect(r.notes).toContain("left out with it: /app (not mounted, nothing restored into it)");
    }
  });

  it("a VG across a local disk and a multipath disk cannot be split: leaving the multipath disk out is refused by name", async () => {
    const across = `${local.replace("none /dev/sda1\nfs /dev/sda1 / ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n", "lvm /dev/sda1\n")}lvmdev /dev/vgoracle /dev/sda1 uuid2 20969472\n${san}`;
    const r = buildPlan({ layout: await rear(across), targets, options: { mapping: { sda: "sda", [disk]: "none" } } });
    expect(refusal(r)).toMatch(/^volume group vgoracle spans \/dev\/sda1, \/dev\/mapper\/3600508b4000156d700012000000b0000-part1: it cannot be recreated from part of them/);
  });
});

describe("MD arrays of whole disks, partitioned (issue 26 item 2)", () => {
  const text = async () => (await import("node:fs")).readFileSync(new URL("../../fixtures/rear/md-whole-disks.disklayout.conf", import.meta.url), "utf8");
  const rear = async (t: string) => (await import("../../../server/layout/rear-import.ts")).layoutFromRear(t, "mdbox", "2024-01-15T10:30:00Z");
  const targets = (size = 10 * GiB) => [newDisk("sda", size), newDisk("sdb", size)];
  const mapping = { sda: "sda", sdb: "sdb" };

  it("the members are gated and wiped, the array made its captured size (mdadm --size), then partitioned as captured; the PV and ESP go on its partitions", async () => {
    const r = ok(buildPlan({ layout: await rear(await text()), targets: targets(), options: { mapping, bootloader: "none" } }));
    expect(fns(r.steps).slice(0, 8)).toEqual(["plan_begin", "check_disk", "check_disk", "wipe_disk", "wipe_disk", "create_md", "partition", "create_pv"]);
    expect(args(r.steps, "wipe_disk")).toEqual([["/dev/sda", ""], ["/dev/sdb", ""]]);
    expect(args(r.steps, "create_md")).toEqual([["/dev/md127", "any:127", "raid1", "1.2", "8d05eb84:2de831d1:dfed54b2:ad592118", String(10733223936 / 1024), "/dev/sda", "/dev/sdb"]]);
    const [partition] = args(r.steps, "partition");
    expect(partition![0]).toBe("/dev/md127");
    expect(planned(r.steps, "/dev/md127")).toEqual([[1, 2048, 1048576], [2, 1050624, 19910656]]);
    expect(partition![1]).toContain("/dev/md127p1 : start=2048, size=1048576, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    expect(args(r.steps, "create_pv").map((a) => a[0])).toEqual(["/dev/md127p2"]);
    expect(args(r.steps, "make_fs").map((a) => [a[0], a[1]])).toEqual([["vfat", "/dev/md127p1"], ["ext4", "/dev/system/root"]]);
    expect(r.script).toContain("create_md /dev/md127 any:127 raid1 1.2 8d05eb84:2de831d1:dfed54b2:ad592118 10481664 /dev/sda /dev/sdb\npartition /dev/md127 ");
  });

  it("the boot loader goes on the disk under the array's partition (the ESP on /dev/md127p1)", async () => {
    const r = ok(buildPlan({ layout: await rear(await text()), targets: targets(), options: { mapping } }));
    expect(args(r.steps, "install_bootloader")).toEqual([["uefi", "grub", "/dev/sda", "/boot/efi", "linux"]]);
  });

  it("larger members keep the array at its captured size (noted); smaller ones are refused in one line naming the array and the sizes", async () => {
    const big = ok(buildPlan({ layout: await rear(await text()), targets: targets(20 * GiB), options: { mapping, bootloader: "none" } }));
    expect(args(big.steps, "create_md")[0]![5]).toBe("10481664");
    expect(big.notes).toContain("MD array /dev/md127 keeps its captured size 10.0 GiB (10733223936 bytes) on the larger /dev/sda, /dev/sdb (its partition table is written as captured)");
    const small = buildPlan({ layout: await rear(await text()), targets: targets(10 * GiB - 2 * 1024 * 1024), options: { mapping, bootloader: "none" } });
    expect(refusal(small)).toBe(
      "MD array /dev/md127 has a partition table, so it is made its captured size (10.0 GiB (10733223936 bytes) of each member plus 4.0 MiB (4194304 bytes) for the superblock): /dev/sda holds 10.0 GiB (10735321088 bytes)",
    );
  });

  it("a partitioned raid0 or linear array is refused by name: mdadm cannot set its size before it is partitioned", async () => {
    const raid0 = (await text()).replace("level=raid1", "level=raid0").replace("raiddisk /dev/md127 10733223936", "raiddisk /dev/md127 21466447872");
    expect(refusal(buildPlan({ layout: await rear(raid0), targets: targets(), options: { mapping, bootloader: "none" } }))).toBe(
      "MD array /dev/md127 (raid0, 2 members) has a partition table of its own: its size is set (mdadm --size) before it is partitioned, which mdadm does for raid1, raid4, raid5, raid6 and raid10 only",
    );
  });

  it("both members left out: the array, its partitions and all on them go too; one left out is refused", async () => {
    const l = await rear(await text());
    const none = buildPlan({ layout: l, targets: targets(), options: { mapping: { sda: "none", sdb: "none" } } });
    expect(refusal(none)).toBe("layout of mdbox has no disk to recreate");
    const half = buildPlan({ layout: l, targets: targets(), options: { mapping: { sda: "sda", sdb: "none" } } });
    expect(refusal(half)).toBe("MD array /dev/md127 is built on /dev/sda, /dev/sdb: it cannot be recreated from part of them; leave out all of its disks or none");
  });
});

describe("Secure Boot: a system captured booting through shim gets shim and the signed GRUB again", () => {
  const SHIM_NVRAM = "BootCurrent: 0004\nBootOrder: 0004,0001\nBoot0001* UEFI PXEv4\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)\nBoot0004* debian\tHD(1,GPT,0d3b…,0x800,0x100000)/File(\\EFI\\debian\\shimx64.efi)\n";
  const withPackages = (list: string) => ({ manager: "dpkg" as const, list });
  const SIGNED = "grub-efi-amd64-signed\t1+2.06+13+deb12u2\nshim-signed\t1.51~1+deb12u1+16.1-2~deb12u1\nbash\t5.2\n";

  it("bootsThroughShim: the packages, and Secure Boot on or the boot entry in use naming shim (or no efibootmgr output)", () => {
    const off = "SecureBoot disabled";
    expect(bootsThroughShim({ efibootmgr: SHIM_NVRAM, packages: withPackages(SIGNED), secureBoot: off })).toBe(true);
    expect(bootsThroughShim({ efibootmgr: null, packages: withPackages(SIGNED), secureBoot: null })).toBe(true);
    expect(bootsThroughShim({ efibootmgr: SHIM_NVRAM.replace("shimx64", "grubx64"), packages: withPackages(SIGNED), secureBoot: off })).toBe(false);
    expect(bootsThroughShim({ efibootmgr: SHIM_NVRAM.replace("BootCurrent: 0004", "BootCurrent: 0001"), packages: withPackages(SIGNED), secureBoot: off })).toBe(false);
    expect(bootsThroughShim({ efibootmgr: SHIM_NVRAM, packages: withPackages("grub-efi-amd64-signed\t1\n"), secureBoot: off })).toBe(false);
    expect(bootsThroughShim({ efibootmgr: SHIM_NVRAM, packages: null, secureBoot: off })).toBe(false);
    // Booted verified from a disk's removable path: the firmware's own entry names no file, Secure Boot says it was shim.
    const removable = "BootCurrent: 0002\nBootOrder: 0002,0001\nBoot0001* UEFI PXEv4\tPciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)\nBoot0002* UEFI Misc Device\tPciRoot(0x0)/Pci(0x4,0x0)\n";
    expect(bootsThroughShim({ efibootmgr: removable, packages: withPackages(SIGNED), secureBoot: "SecureBoot enabled" })).toBe(true);
    expect(bootsThroughShim({ efibootmgr: removable, packages: withPackages(SIGNED), secureBoot: off })).toBe(false);
    expect(bootsThroughShim({ efibootmgr: removable, packages: withPackages("bash\t5.2\n"), secureBoot: "SecureBoot enabled" })).toBe(false);
  });

  it("a shim layout plans install_bootloader with grub-shim and no Secure Boot note; an unsigned UEFI one gets the note; BIOS neither", () => {
    const l = fixtureLayout("gpt-uefi");
    const shim = { ...l, boot: { ...l.boot, shim: true, secureBoot: true } };
    const r = ok(planFor(shim));
    expect(args(r.steps, "install_bootloader")[0]!.slice(0, 2)).toEqual(["uefi", "grub-shim"]);
    expect(r.notes.join("\n")).not.toMatch(/Secure Boot/);
    const plain = ok(planFor(l));
    expect(args(plain.steps, "install_bootloader")[0]!.slice(0, 2)).toEqual(["uefi", "grub"]);
    expect(plain.notes).toContain(
      "Secure Boot: the restored system gets its GRUB built by grub-install, unsigned (the capture shows no boot through shim with shim-signed and grub-efi-amd64-signed installed): it will not start with Secure Boot on",
    );
    expect(ok(planFor(fixtureLayout("mbr-ext4"))).notes.join("\n")).not.toMatch(/Secure Boot/);
  });

  it("capture.sh's secureBoot line becomes layout.boot.secureBoot", () => {
    const raw = JSON.parse(readFileSync(`${FIXTURE_DIR}gpt-uefi.capture.json`, "utf8")) as Record<string, unknown>;
    for (const [line, want] of [["SecureBoot enabled\n", true], ["SecureBoot disabled\n", false], [null, null]] as const)
      expect(layoutFromCapture(parseCapture({ ...raw, secureBoot: line })).boot.secureBoot).toBe(want);
  });
});
