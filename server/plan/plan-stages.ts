import { type CapturedNic, NIC_NAME, type NicMapping, describeNicMatch, mapNics } from "./nics.ts";
import { randomUUID } from "node:crypto";
import { fmtBytes } from "../layout/layout-text.ts";
import type { Disk, DiskLayout, Luks, Lvm, MdArray, PartitionTable } from "../layout/layout.ts";
import { SHIM_PACKAGES, lvMapperPath } from "../layout/layout.ts";
import { isNormalMountpoint } from "../layout/layout-validate.ts";
import { type TargetDisk, dumpStreamPath } from "./agent-api.ts";
import type { DiskMatch } from "./disks.ts";
import type { PlanOptions, RestoreChain } from "./plan.ts";
import type { StaticAddress } from "../store/types.ts";
import { FS_MIN_BYTES, HEADROOM, LUKS2_HEADER, LVM_METADATA, MiB, Minimums, type PlannedPartition, fitSizes, planPartitions, roundDown, sfdiskScript } from "./plan-sizes.ts";
import { type Step, step } from "./steps.ts";

/**
 * The stages of a plan, in the order ReaR's recover workflow runs them: disks gated →
 * partition tables → storage stack (MD, LUKS, LVM) → filesystems → mounts → restores →
 * finish (fstab, identity, boot loader, initramfs). Each reads and adds to one PlanState;
 * a stage that finds problems stops the plan after it.
 */

export interface PlanState {
  /** The layout as captured (DLE mounts are looked up in it) and the one recreated. */
  captured: DiskLayout;
  layout: DiskLayout;
  targets: TargetDisk[];
  chains: RestoreChain[];
  options: PlanOptions;
  matches: DiskMatch[];
  minimums: Minimums;
  /** Captured device path → target device path. */
  device: Map<string, string>;
  /** Target device path → its new size in bytes. */
  sizeOf: Map<string, number>;
  steps: Step[];
  notes: string[];
  /** The restored system's network: which new NIC each captured one becomes (networkNames). */
  network: string[];
  problems: string[];
  /** Old → new UUIDs, for fix_fstab (options.newUuids). */
  changedUuids: Array<[string, string]>;
  /** Mount points the plan mounts. */
  mounted: Set<string>;
  /** The dump ids the restore steps stream, in order. */
  dumps: string[];
}

export type PlanStage = (state: PlanState) => void;

export function planState(captured: DiskLayout, layout: DiskLayout, targets: TargetDisk[], chains: RestoreChain[], options: PlanOptions, matches: DiskMatch[], notes: string[]): PlanState {
  return {
    captured,
    layout,
    targets,
    chains,
    options,
    matches,
    minimums: new Minimums(layout, HEADROOM),
    device: new Map(),
    sizeOf: new Map(),
    steps: [],
    notes,
    network: [],
    problems: [],
    changedUuids: [],
    mounted: new Set(),
    dumps: [],
  };
}

/** A fresh UUID in the spelling the tool wants (vfat: XXXX-XXXX; GPT: upper case). */
function freshUuid(kind: "vfat" | "upper" | "lower", generate: () => string): string {
  const uuid = generate();
  if (kind === "vfat") return uuid.replace(/-/g, "").slice(0, 8).toUpperCase().replace(/^(.{4})/, "$1-");
  return kind === "upper" ? uuid.toUpperCase() : uuid.toLowerCase();
}

/** The UUID an object gets: the captured one, or a fresh one remembered for fix_fstab (newUuids). */
function newId(state: PlanState, old: string | null, kind: "vfat" | "upper" | "lower"): string {
  if (!old || !state.options.newUuids) return old ?? "";
  const fresh = freshUuid(kind, state.options.uuid ?? randomUUID);
  state.changedUuids.push([old, fresh]);
  return fresh;
}

export const targetOf = (state: PlanState, match: DiskMatch): TargetDisk => state.targets.find((t) => t.path === match.targetPath)!;
export const capturedDiskOf = (state: PlanState, match: DiskMatch): Disk => state.layout.disks.find((d) => d.path === match.capturedPath)!;

/** Every target disk checked by the agent before anything is written. */
export const gateDisks: PlanStage = (state) => {
  for (const match of state.matches) {
    const target = targetOf(state, match);
    state.steps.push(step("check_disk", { dev: target.path, serial: target.serial ?? "", wwn: target.wwn ?? "", size_bytes: target.sizeBytes }));
    state.device.set(match.capturedPath, target.path);
    state.sizeOf.set(target.path, target.sizeBytes);
  }
};

/** Every disk wiped, then every captured table written (sizes fitted to the target). */
export const partitionTables: PlanStage = (state) => {
  const { options } = state;
  const tableSteps: Step[] = [];
  for (const match of state.matches) {
    const disk = capturedDiskOf(state, match);
    const target = targetOf(state, match);
    if (!disk.table) {
      state.steps.push(step("wipe_disk", { dev: target.path, label_id: "" }));
      continue;
    }
    const planned = planPartitions(disk, target, { exact: options.migration === "exact", grow: options.grow, mins: state.minimums });
    if ("problem" in planned) {
      state.problems.push(planned.problem);
      continue;
    }
    const written = writeTable(state, disk.table, target.path, planned.parts);
    state.steps.push(step("wipe_disk", { dev: target.path, label_id: written.labelId }));
    tableSteps.push(written.partition);
  }
  if (state.problems.length === 0) state.steps.push(...tableSteps);
};

/**
 * The partition step that writes `table` on `dev` (a disk, or an MD array once created) with the
 * planned partitions; their captured paths now lead to the new ones, their new sizes noted.
 */
function writeTable(state: PlanState, table: PartitionTable, dev: string, planned: PlannedPartition[]): { labelId: string; partition: Step } {
  const labelId = newId(state, table.id, table.label === "gpt" ? "upper" : "lower");
  const labelIdText = table.label === "dos" && state.options.newUuids ? `0x${labelId.replace(/-/g, "").slice(0, 8)}` : labelId;
  const parts = planned.map((p) => ({ ...p, uuid: p.uuid ? newId(state, p.uuid, "upper") : null }));
  for (const part of parts) {
    state.device.set(part.path, part.targetPath);
    state.sizeOf.set(part.targetPath, part.size * table.sectorSize);
    const old = table.partitions.find((x) => x.number === part.number)!;
    if (old.size !== part.size) state.notes.push(`${old.path} → ${part.targetPath}: ${fmtBytes(old.size * table.sectorSize)} → ${fmtBytes(part.size * table.sectorSize)}`);
  }
  return { labelId: labelIdText, partition: step("partition", { dev, sfdisk_script: sfdiskScript(table, labelIdText, parts) }) };
}

type Pv = Lvm["pvs"][number];
type LvmVg = Lvm["vgs"][number];
type LvmLv = Lvm["lvs"][number];

/** What is still to be created in the storage stack. */
interface Pending {
  md: MdArray[];
  luks: Luks[];
  pvs: Pv[];
  vgs: LvmVg[];
  lvs: LvmLv[];
}

const done = <T>(list: T[], item: T) => list.splice(list.indexOf(item), 1);

/** How many members' worth of data an array of `n` members holds, per level that takes mdadm --size (raid0 and linear do not). */
const DATA_MEMBERS: Record<string, (n: number) => number> = { raid1: () => 1, raid4: (n) => n - 1, raid5: (n) => n - 1, raid6: (n) => n - 2, raid10: (n) => n / 2 };

/** The captured size in bytes of a disk or partition of the layout, or null. */
function capturedSize(layout: DiskLayout, dev: string): number | null {
  for (const owner of [...layout.disks, ...layout.md]) {
    if (owner.path === dev) return owner.sizeBytes;
    const part = owner.table?.partitions.find((p) => p.path === dev);
    if (part) return part.size * owner.table!.sectorSize;
  }
  return null;
}

/**
 * What each member gives a partitioned array (mdadm --size, KiB): its table is laid out before
 * the array exists, so the array is made exactly its captured size; each target member must hold
 * that plus the superblock room its captured member had; or why not.
 */
function pinnedMemberKib(state: PlanState, array: MdArray, members: string[]): { kib: number } | { problem: string } {
  const level = /^\d+$/.test(array.level) ? `raid${array.level}` : array.level;
  const dataMembers = Object.hasOwn(DATA_MEMBERS, level) ? DATA_MEMBERS[level]!(members.length) : 0;
  if (!(dataMembers >= 1))
    return { problem: `MD array ${array.path} (${array.level}, ${members.length} members) has a partition table of its own: its size is set (mdadm --size) before it is partitioned, which mdadm does for raid1, raid4, raid5, raid6 and raid10 only` };
  const perMember = array.sizeBytes / dataMembers;
  if (!Number.isInteger(perMember / 1024)) return { problem: `MD array ${array.path}: its size ${fmtBytes(array.sizeBytes)} is not ${dataMembers} equal whole KiB members' worth` };
  const larger: string[] = [];
  for (const [i, member] of members.entries()) {
    const room = Math.max(MiB, (capturedSize(state.layout, array.members[i]!) ?? 0) - perMember);
    const has = state.sizeOf.get(member) ?? 0;
    if (has < perMember + room)
      return { problem: `MD array ${array.path} has a partition table, so it is made its captured size (${fmtBytes(perMember)} of each member plus ${fmtBytes(room)} for the superblock): ${member} holds ${fmtBytes(has)}` };
    if (has > perMember + room) larger.push(member);
  }
  if (larger.length) state.notes.push(`MD array ${array.path} keeps its captured size ${fmtBytes(array.sizeBytes)} on the larger ${larger.join(", ")} (its partition table is written as captured)`);
  return { kib: perMember / 1024 };
}

function createMd(state: PlanState, pending: Pending, array: MdArray): boolean {
  if (!array.members.every((x) => state.device.has(x))) return false;
  done(pending.md, array);
  const members = array.members.map((x) => state.device.get(x)!);
  const pinned = array.table ? pinnedMemberKib(state, array, members) : null;
  if (pinned && "problem" in pinned) {
    state.problems.push(pinned.problem);
    return true;
  }
  const uuid = newId(state, array.uuid, "lower");
  state.steps.push(step("create_md", { dev: array.path, name: array.name ?? "", level: array.level, metadata: array.metadata, uuid, size_kib: pinned?.kib ?? "" }, members));
  state.device.set(array.path, array.path);
  const memberSizes = members.map((x) => state.sizeOf.get(x) ?? 0);
  state.sizeOf.set(array.path, array.table ? array.sizeBytes : array.level === "raid0" || array.level === "linear" ? memberSizes.reduce((a, b) => a + b, 0) : Math.min(...memberSizes));
  if (array.table) {
    // Then its own table, as captured (the array has its captured size): the partitions lead to the same paths.
    const parts = array.table.partitions.map((p) => ({ ...p, targetPath: p.path }));
    state.steps.push(writeTable(state, array.table, array.path, parts).partition);
  }
  return true;
}

function createLuks(state: PlanState, pending: Pending, container: Luks): boolean {
  if (!state.device.has(container.path)) return false;
  done(pending.luks, container);
  if (!(state.options.luksKeys ?? []).includes(container.uuid)) {
    state.problems.push(`LUKS container ${container.uuid} on ${container.path} (${container.name}): no key supplied for this job (the plan never holds keys; add one to the job)`);
    return false;
  }
  state.steps.push(
    step("create_luks", {
      dev: state.device.get(container.path)!,
      uuid: newId(state, container.uuid, "lower"),
      name: container.name,
      key_id: container.uuid,
      type: container.type ?? "",
      cipher: container.cipher ?? "",
      key_size: container.keySizeBits ?? "",
      hash: container.hash ?? "",
    }),
  );
  const mapped = `/dev/mapper/${container.name}`;
  state.device.set(mapped, mapped);
  state.sizeOf.set(mapped, (state.sizeOf.get(state.device.get(container.path)!) ?? 0) - LUKS2_HEADER);
  return true;
}

function createPv(state: PlanState, pending: Pending, pv: Pv): boolean {
  if (!state.device.has(pv.path)) return false;
  state.steps.push(step("create_pv", { dev: state.device.get(pv.path)!, uuid: newId(state, pv.uuid, "lower") }));
  done(pending.pvs, pv);
  return true;
}

/** A volume group once all its PVs exist, then its LVs: kept in size when they fit, else shrunk like partitions. */
function createVg(state: PlanState, pending: Pending, vg: LvmVg): boolean {
  const { layout, device, sizeOf } = state;
  const pvs = layout.lvm.pvs.filter((p) => p.vg === vg.name);
  if (pvs.some((p) => pending.pvs.includes(p) || !device.has(p.path))) return false;
  state.steps.push(step("create_vg", { vg: vg.name, extent_bytes: vg.extentBytes }, pvs.map((p) => device.get(p.path)!)));
  done(pending.vgs, vg);
  const lvs = layout.lvm.lvs.filter((l) => l.vg === vg.name);
  const capacity = pvs.reduce((a, p) => a + roundDown((sizeOf.get(device.get(p.path)!) ?? 0) - LVM_METADATA, vg.extentBytes), 0);
  const wanted = lvs.reduce((a, l) => a + l.sizeBytes, 0);
  let sizes = lvs.map((l) => l.sizeBytes);
  if (wanted > capacity) {
    const fit = fitSizes(sizes, lvs.map((l) => state.minimums.of(l.path) ?? l.sizeBytes), capacity, vg.extentBytes);
    if (!fit) {
      state.problems.push(`volume group ${vg.name}: its logical volumes need ${fmtBytes(wanted - capacity)} more than the new PVs hold`);
      return true;
    }
    sizes = fit;
    state.notes.push(`volume group ${vg.name}: logical volumes shrunk to fit ${fmtBytes(capacity)}`);
  }
  lvs.forEach((lv, i) => {
    state.steps.push(step("create_lv", { vg: lv.vg, lv: lv.name, size_bytes: roundDown(sizes[i]!, vg.extentBytes) }));
    device.set(lv.path, lv.path);
    sizeOf.set(lv.path, sizes[i]!);
    done(pending.lvs, lv);
  });
  return true;
}

/** Storage stack: create whatever has all its parents, until nothing more can be. */
export const storageStack: PlanStage = (state) => {
  const { layout } = state;
  const pending: Pending = { md: [...layout.md], luks: [...layout.luks], pvs: [...layout.lvm.pvs], vgs: [...layout.lvm.vgs], lvs: [...layout.lvm.lvs] };
  // One pass per component type; each creates all it can (map, not some: every item is tried).
  const passes = [
    () => [...pending.md].map((array) => createMd(state, pending, array)).includes(true),
    () => [...pending.luks].map((container) => createLuks(state, pending, container)).includes(true),
    () => [...pending.pvs].map((pv) => createPv(state, pending, pv)).includes(true),
    () => [...pending.vgs].map((vg) => createVg(state, pending, vg)).includes(true),
  ];
  for (let progress = true; progress; ) progress = passes.map((pass) => pass()).includes(true);
  for (const [what, left] of Object.entries(pending))
    for (const item of left as Array<{ path?: string; name?: string }>)
      state.problems.push(`cannot recreate ${what.replace(/s$/, "")} ${item.path ?? item.name}: what it is built on is not in the plan (a disk left out of the mapping?)`);
};

/** Filesystems (with their btrfs subvolumes) and swap on the recreated devices. */
export const filesystems: PlanStage = (state) => {
  for (const fs of state.layout.filesystems) {
    const target = state.device.get(fs.dev);
    if (!target) return void state.problems.push(`filesystem ${fs.uuid ?? fs.dev} on ${fs.dev}: its device is not recreated by the plan`);
    const size = state.sizeOf.get(target);
    const floor = FS_MIN_BYTES[fs.type];
    if (size !== undefined && floor && size < floor)
      return void state.problems.push(`filesystem ${fs.type} on ${fs.dev} → ${target}: ${fmtBytes(size)} is below mkfs.${fs.type}'s minimum ${fmtBytes(floor)}`);
    state.steps.push(step("make_fs", { fstype: fs.type, dev: target, uuid: newId(state, fs.uuid, fs.type === "vfat" ? "vfat" : "lower"), label: fs.label ?? "" }, fs.mkfsOptions));
    for (const subvolume of fs.subvolumes) state.steps.push(step("create_subvol", { dev: target, path: subvolume }));
    for (const subvolume of fs.nocow) state.steps.push(step("set_nocow", { dev: target, path: subvolume }));
    if (fs.defaultSubvolume) state.steps.push(step("set_default_subvol", { dev: target, path: fs.defaultSubvolume }));
  }
  for (const swap of state.layout.swap) {
    const target = state.device.get(swap.dev);
    if (!target) return void state.problems.push(`swap ${swap.uuid ?? swap.dev}: its device is not recreated by the plan`);
    state.steps.push(step("make_swap", { dev: target, uuid: newId(state, swap.uuid, "lower"), label: swap.label ?? "" }));
  }
};

export const mounts: PlanStage = (state) => {
  for (const mount of state.layout.mounts) {
    const target = state.device.get(mount.dev);
    if (!target) continue;
    state.steps.push(step("mount_fs", { dev: target, mountpoint: mount.mountpoint, fstype: mount.fstype, options: mount.options }));
    state.mounted.add(mount.mountpoint);
  }
};

/** Each DLE's chain, level 0 first, into the mount it lands on; one on a disk left out is not restored. */
export const restores: PlanStage = (state) => {
  const capturedMounts = [...state.captured.mounts].sort((a, b) => b.mountpoint.length - a.mountpoint.length);
  const landsOn = (mp: string) => capturedMounts.find((m) => mp === m.mountpoint || mp.startsWith(m.mountpoint === "/" ? "/" : `${m.mountpoint}/`));
  for (const chain of state.chains) {
    const on = landsOn(chain.mountpoint);
    if (on && !state.layout.mounts.includes(on)) {
      state.notes.push(`DLE ${chain.dle} (${chain.mountpoint}) not restored: its filesystem is on a disk left out`);
      continue;
    }
    if (!isNormalMountpoint(chain.mountpoint))
      return void state.problems.push(`DLE ${chain.dle}: mount point ${JSON.stringify(chain.mountpoint)} is not an absolute path in normal form (no "..", "." or "//")`);
    const covered = [...state.mounted].some((mp) => mp === "/" || chain.mountpoint === mp || chain.mountpoint.startsWith(`${mp}/`));
    if (!covered) return void state.problems.push(`DLE ${chain.dle}: mount point ${chain.mountpoint} is on no filesystem the plan mounts`);
    if (chain.dumps.length === 0 || chain.dumps[0]!.level !== 0) return void state.problems.push(`DLE ${chain.dle}: the restore chain must start with a level 0 dump`);
    for (const dump of chain.dumps) {
      state.dumps.push(dump.id);
      state.steps.push(
        step("restore_dump", {
          mountpoint: chain.mountpoint,
          program: chain.program,
          level: dump.level,
          compression: dump.compression,
          size_bytes: dump.sizeBytes ?? "",
          url: state.options.dumpUrls?.[dump.id] ?? dumpStreamPath(dump.id),
        }),
      );
    }
  }
};

/** fix_fstab for every UUID the plan changed (newUuids), inside the restored root. */
export const fixFstab: PlanStage = (state) => {
  if (!state.mounted.has("/")) return;
  for (const [oldUuid, newUuid] of state.changedUuids) state.steps.push(step("fix_fstab", { old_uuid: oldUuid, new_uuid: newUuid }));
};

/** A clone's own host name (set_identity). */
export const identity: PlanStage = (state) => {
  const wanted = state.options.identity;
  if (!wanted) return;
  if (!state.mounted.has("/")) return void state.problems.push(`identity ${wanted.hostname}: the plan mounts no / to write it into`);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(wanted.hostname))
    return void state.problems.push(`identity: ${JSON.stringify(wanted.hostname)} is not a host name (letters, digits, '-' and '.')`);
  state.steps.push(step("set_identity", { hostname: wanted.hostname }));
};

/**
 * After the restore the machine has a network: each captured NIC mapped to one of the new
 * machine's (nics.ts), and map_nic makes the restored system name and configure it as before.
 * Before the machine reported its NICs (a dry run) only a note says so.
 */
export const networkNames: PlanStage = (state) => {
  const captured = state.layout.system.nics;
  if (!captured.length || !state.mounted.has("/")) return;
  const nics = state.options.nics;
  if (!nics) return void state.network.push(`NIC mapping: made once the machine reports its NICs (captured: ${captured.map((n) => `${n.name} ${n.mac}`).join(", ")})`);
  const r = nicMapSteps(captured, nics);
  state.problems.push(...r.problems);
  state.network.push(...r.matches.map(describeNicMatch), ...r.notes);
  state.steps.push(...r.steps);
};

/** The captured NICs mapped onto the machine's (nics.ts), with one map_nic step per match: networkNames' steps. */
export function nicMapSteps(captured: readonly CapturedNic[], nics: NonNullable<PlanOptions["nics"]>): NicMapping & { steps: Step[] } {
  const r = mapNics(captured, nics.current, nics.admin);
  return { ...r, steps: r.matches.map((m) => step("map_nic", { name: m.name, old_mac: m.oldMac, new_mac: m.newMac })) };
}

/**
 * The restored system's own address (clones from their profile's pattern, plan/clone-address.ts):
 * set_address on the captured NIC that carried the default route (the only one, if one), after
 * map_nic gave the new NIC that name.
 */
export const staticAddress: PlanStage = (state) => {
  const want = state.options.address;
  if (!want) return;
  if (!state.mounted.has("/")) return void state.problems.push(`address ${want.address}: the plan mounts no / to write it into`);
  const r = addressStep(state.layout.system.nics, want);
  if ("problem" in r) return void state.problems.push(r.problem);
  state.network.push(r.note);
  state.steps.push(r.step);
};

/** The set_address step for WANT on the captured NIC that carried the default route (the only one, if one), or why not: staticAddress' step. */
export function addressStep(nics: readonly CapturedNic[], want: StaticAddress): { step: Step; note: string } | { problem: string } {
  const nic = nics.find((n) => n.defaultRoute) ?? (nics.length === 1 ? nics[0] : undefined);
  if (!nic)
    return {
      problem: `address ${want.address}: the layout does not say which NIC carried the default route (${nics.length ? nics.map((n) => n.name).join(", ") : "no NICs captured"}; capture it again with a newer capture.sh)`,
    };
  // The name comes from the capture (a host's own string): it goes into file names and sed on the agent.
  if (!NIC_NAME.test(nic.name)) return { problem: `address ${want.address}: captured NIC ${JSON.stringify(nic.name)} is not a NIC name` };
  return {
    note: `address after the restore: ${want.address}${want.gateway ? ` via ${want.gateway}` : ""}${want.dns?.length ? `, DNS ${want.dns.join(" ")}` : ""} on ${nic.name}`,
    step: step("set_address", { name: nic.name, address: want.address, gateway: want.gateway ?? "", dns: (want.dns ?? []).join(",") }),
  };
}

const firmwareOf = (state: PlanState) => state.options.firmware ?? state.layout.boot.firmware;

/**
 * The captured disk under a device: a partition's disk, or through an MD array's first member,
 * an opened LUKS mapping's device, an LV's first PV (GRUB 2 reads LVM and LUKS itself, so / on
 * an LV with no /boot of its own boots from the disk under the VG).
 */
function diskUnder(layout: DiskLayout, dev: string, seen = new Set<string>()): string | undefined {
  if (seen.has(dev)) return undefined;
  seen.add(dev);
  const disk = layout.disks.find((d) => d.path === dev || d.table?.partitions.some((p) => p.path === dev));
  if (disk) return disk.path;
  const md = layout.md.find((a) => a.path === dev || a.table?.partitions.some((p) => p.path === dev));
  if (md) return md.members.map((m) => diskUnder(layout, m, seen)).find(Boolean);
  const luks = layout.luks.find((l) => `/dev/mapper/${l.name}` === dev);
  if (luks) return diskUnder(layout, luks.path, seen);
  const lv = layout.lvm.lvs.find((l) => l.path === dev || lvMapperPath(l.vg, l.name) === dev);
  if (lv) return layout.lvm.pvs.filter((pv) => pv.vg === lv.vg).map((pv) => diskUnder(layout, pv.path, seen)).find(Boolean);
  return undefined;
}

/** The captured disk whose recreation holds the boot loader: the captured boot disk, else the disk under `bootSource`. */
function bootDiskOf(layout: DiskLayout, firmware: "bios" | "uefi", bootSource: string): string | undefined {
  return (firmware === "bios" && layout.boot.firmware === "bios" ? layout.boot.disk : null) ?? diskUnder(layout, bootSource);
}

/** The boot loader, from the restored root onto the disk that held it (or the ESP's disk). */
export const bootLoader: PlanStage = (state) => {
  const { layout } = state;
  if (!layout.boot.loader || state.options.bootloader === "none") return;
  if (!state.mounted.has("/")) return void state.notes.push("boot loader not installed: the plan mounts no / to install it from");
  const firmware = firmwareOf(state);
  const espMount = layout.mounts.find((m) => m.mountpoint === (layout.boot.efiDir ?? "/boot/efi"));
  if (firmware === "uefi" && !espMount) return void state.problems.push("uefi boot: the layout has no mounted EFI system partition to install the boot loader into");
  const bootSource = firmware === "uefi" ? espMount!.dev : (layout.mounts.find((m) => m.mountpoint === "/boot") ?? layout.mounts.find((m) => m.mountpoint === "/"))!.dev;
  const capturedDisk = bootDiskOf(layout, firmware, bootSource);
  const disk = capturedDisk ? state.device.get(capturedDisk) : undefined;
  if (!disk) return void state.problems.push(`boot loader: cannot tell which disk holds ${bootSource}; use --bootloader none or fix the layout`);
  // Secure Boot: a system that booted through shim gets shim and the signed GRUB again; any other UEFI system does not start with it on.
  const shim = firmware === "uefi" && layout.boot.loader === "grub" && layout.boot.shim;
  if (firmware === "uefi" && !shim)
    state.notes.push(
      `Secure Boot: the restored system gets its ${layout.boot.loader === "grub" ? "GRUB built by grub-install, unsigned" : layout.boot.loader} (the capture shows no boot through shim with ${SHIM_PACKAGES.join(" and ")} installed): it will not start with Secure Boot on`,
    );
  state.steps.push(
    step("install_bootloader", {
      firmware,
      loader: shim ? "grub-shim" : layout.boot.loader,
      disk,
      efi_dir: firmware === "uefi" ? espMount!.mountpoint : "",
      bootloader_id: firmware === "uefi" ? (layout.boot.bootloaderId ?? layout.system.os?.id ?? "linux") : "",
    }),
  );
};

/** A new initramfs when what it names changed: UUIDs, the disks' bus, or the firmware. */
export const initramfs: PlanStage = (state) => {
  const { layout } = state;
  const transportChanged = state.matches.some((match) => {
    const captured = capturedDiskOf(state, match);
    const target = targetOf(state, match);
    return captured.transport !== null && target.bus !== null && captured.transport !== target.bus;
  });
  // bootloader "none": the restore is not made bootable here, so its initramfs is left alone too.
  if (state.mounted.has("/") && layout.system.initramfsTool && state.options.bootloader !== "none" && (state.changedUuids.length || transportChanged || firmwareOf(state) !== layout.boot.firmware))
    state.steps.push(step("regen_initramfs", { tool: layout.system.initramfsTool }));
};
