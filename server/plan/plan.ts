import { fmtBytes } from "../layout/layout-text.ts";
import { randomUUID } from "node:crypto";
import type { TargetDisk } from "./agent-api.ts";
import { type Disk, type DiskLayout, type Partition, isPartType, partitionPath, removableOrUsb } from "../layout/layout.ts";
import { isNormalMountpoint, layoutProblem } from "../layout/layout-validate.ts";
import { CONTRACT_VERSION, type Step, renderPlan, step } from "./steps.ts";
import { type DiskIdentity, type DiskMatch, LEAVE_OUT, mappingOf, matchDisks } from "./disks.ts";

/**
 * The plan builder (pure): layout + the target's disks + restore chains + options →
 * ordered steps, or a refusal before any step. Disks are matched by identity (serial,
 * WWN, by-id), never by size or order; anything else needs an explicit mapping.
 */

export interface RestoreDump {
  id: string;
  level: number;
  datestamp: string;
  sizeBytes: number | null;
  /** What the stream carries: none, gzip, bzip2, xz, zstd. */
  compression: string;
}

export interface RestoreChain {
  dle: string;
  mountpoint: string;
  program: "gtar" | "dump";
  /** Level 0 first, then each next level. */
  dumps: RestoreDump[];
}

export interface PlanOptions {
  /**
   * Captured disk (name or path) → target disk: a string (name, path, serial, WWN or by-id
   * link) resolved against the targets of this call, the identity a stored mapping holds
   * (disks.ts), or null: the captured disk is left out of the plan.
   */
  mapping?: Record<string, string | DiskIdentity | null>;
  /** Removable and USB disks: restored when captured, and possible targets (default: neither). */
  includeRemovable?: boolean;
  /** proportional (default): partitions follow the target's size; exact: keep sectors as captured. */
  migration?: "proportional" | "exact";
  /** Captured partition path that takes the rest of its disk (default: the last resizable one). */
  grow?: string;
  /** Firmware of the target when it differs from the captured one. */
  firmware?: "bios" | "uefi";
  bootloader?: "auto" | "none";
  /** UUIDs of the LUKS containers the admin supplied a key for in this job. */
  luksKeys?: string[];
  /** Clone: the identity the restored system gets (set_identity), unlike the template it came from. */
  identity?: { hostname: string };
  /** New UUIDs everywhere, fstab/crypttab rewritten to match. */
  newUuids?: boolean;
  /** What a shrunk filesystem keeps free: a share of its used bytes plus a floor. */
  headroom?: { share: number; minBytes: number };
  /** For tests and clones: where new UUIDs come from. */
  uuid?: () => string;
}

export interface PlanInput {
  layout: DiskLayout;
  targets: TargetDisk[];
  chains?: RestoreChain[];
  options?: PlanOptions;
}

export type PlanResult =
  | { ok: true; steps: Step[]; script: string; mapping: DiskMatch[]; notes: string[] }
  | { ok: false; reason: string; reasons: string[]; mapping: DiskMatch[] };

const MiB = 1024 * 1024;
/** Smallest filesystem each mkfs accepts (xfsprogs ≥ 5.19 refuses below 300 MB). */
const FS_MIN_BYTES: Record<string, number> = { xfs: 300 * MiB, btrfs: 128 * MiB, vfat: 34 * MiB, ext4: 8 * MiB };
const LUKS2_HEADER = 16 * MiB;
const LVM_METADATA = 4 * MiB;
const SWAP_MIN = 256 * MiB;


/** Disks the plan must recreate: those holding a table or any storage object. */
function usedDisks(layout: DiskLayout): Disk[] {
  const direct = new Set([
    ...layout.filesystems.map((f) => f.dev),
    ...layout.swap.map((s) => s.dev),
    ...layout.lvm.pvs.map((p) => p.path),
    ...layout.luks.map((l) => l.path),
    ...layout.md.flatMap((m) => m.members),
  ]);
  return layout.disks.filter((d) => d.table || direct.has(d.path));
}

/**
 * The layout without the captured disks left out and all that is built on them alone; what
 * is built partly on them (an MD array, a volume group) cannot be recreated: a problem.
 */
export function leaveOut(layout: DiskLayout, disks: Disk[]): { layout: DiskLayout; notes: string[]; problems: string[] } {
  if (disks.length === 0) return { layout, notes: [], problems: [] };
  const gone = new Set(disks.flatMap((d) => [d.path, ...(d.table?.partitions.map((p) => p.path) ?? [])]));
  const pvsOf = (vg: string) => layout.lvm.pvs.filter((p) => p.vg === vg).map((p) => p.path);
  const all = (xs: string[]) => xs.length > 0 && xs.every((x) => gone.has(x));
  for (let before = -1; before !== gone.size; ) {
    before = gone.size;
    for (const a of layout.md) if (all(a.members)) gone.add(a.path);
    for (const c of layout.luks) if (gone.has(c.path)) gone.add(`/dev/mapper/${c.name}`);
    for (const vg of layout.lvm.vgs) if (all(pvsOf(vg.name))) for (const lv of layout.lvm.lvs.filter((l) => l.vg === vg.name)) gone.add(lv.path);
  }
  const problems: string[] = [];
  const partly = (xs: string[]) => xs.some((x) => gone.has(x)) && !all(xs);
  for (const a of layout.md)
    if (partly(a.members)) problems.push(`MD array ${a.path} is built on ${a.members.join(", ")}: it cannot be recreated from part of them; leave out all of its disks or none`);
  for (const vg of layout.lvm.vgs)
    if (partly(pvsOf(vg.name))) problems.push(`volume group ${vg.name} spans ${pvsOf(vg.name).join(", ")}: it cannot be recreated from part of them; leave out all of its disks or none`);
  const keep = (dev: string) => !gone.has(dev);
  const kept: DiskLayout = {
    ...layout,
    disks: layout.disks.filter((d) => !disks.includes(d)),
    md: layout.md.filter((a) => keep(a.path)),
    luks: layout.luks.filter((c) => keep(c.path)),
    lvm: {
      pvs: layout.lvm.pvs.filter((p) => keep(p.path)),
      vgs: layout.lvm.vgs.filter((v) => !all(pvsOf(v.name))),
      lvs: layout.lvm.lvs.filter((l) => keep(l.path)),
    },
    filesystems: layout.filesystems.filter((f) => keep(f.dev)),
    swap: layout.swap.filter((sw) => keep(sw.dev)),
    mounts: layout.mounts.filter((m) => keep(m.dev)),
  };
  const mps = layout.mounts.filter((m) => !kept.mounts.includes(m)).map((m) => m.mountpoint);
  const notes = disks.map((d) => `captured disk ${d.name}${removableOrUsb(d.removable, d.transport) ? " (removable/USB)" : ""} left out: nothing is recreated on it`);
  if (mps.length) notes.push(`left out with it: ${mps.join(", ")} (not mounted, nothing restored into it)`);
  return { layout: kept, notes, problems };
}

/** Sizes (bytes) a storage object needs at least, or null when it cannot shrink (unknown use). */
class Minimums {
  constructor(
    private readonly layout: DiskLayout,
    private readonly headroom: { share: number; minBytes: number },
  ) {}

  of(dev: string): number | null {
    const l = this.layout;
    const fs = l.filesystems.find((f) => f.dev === dev);
    if (fs) {
      if (fs.usedBytes === null) return null;
      const want = Math.ceil(fs.usedBytes * (1 + this.headroom.share)) + this.headroom.minBytes;
      return Math.max(want, FS_MIN_BYTES[fs.type] ?? 16 * MiB);
    }
    const sw = l.swap.find((s) => s.dev === dev);
    if (sw) return Math.min(sw.sizeBytes, SWAP_MIN);
    const luks = l.luks.find((x) => x.path === dev);
    if (luks) {
      const inner = this.of(`/dev/mapper/${luks.name}`);
      return inner === null ? null : inner + LUKS2_HEADER;
    }
    const pv = l.lvm.pvs.find((p) => p.path === dev);
    if (pv) {
      if (l.lvm.pvs.filter((p) => p.vg === pv.vg).length > 1) return null;
      const vg = l.lvm.vgs.find((v) => v.name === pv.vg);
      const ext = vg?.extentBytes ?? 4 * MiB;
      let sum = LVM_METADATA;
      for (const lv of l.lvm.lvs.filter((x) => x.vg === pv.vg)) sum += roundUp(this.of(lv.path) ?? lv.sizeBytes, ext);
      return sum;
    }
    return null;
  }
}

const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
const roundDown = (n: number, m: number) => Math.floor(n / m) * m;

/**
 * Scales sizes by one factor, never below each minimum, so they sum to `available`
 * (water-filling); each size a multiple of `unit`. Null when the minimums do not fit.
 */
export function fitSizes(sizes: number[], mins: number[], available: number, unit: number): number[] | null {
  const minSum = mins.reduce((a, b) => a + roundUp(b, unit), 0);
  if (minSum > available) return null;
  const total = (f: number) => sizes.reduce((a, s, i) => a + Math.max(roundUp(mins[i]!, unit), roundDown(s * f, unit)), 0);
  let lo = 0;
  let hi = 1;
  while (total(hi) < available && hi < 1e12) hi *= 2;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (total(mid) <= available) lo = mid;
    else hi = mid;
  }
  return sizes.map((s, i) => Math.max(roundUp(mins[i]!, unit), roundDown(s * lo, unit)));
}

interface PlannedPartition extends Partition {
  targetPath: string;
}

/** New partition starts and sizes on one target disk, or a refusal. */
function planPartitions(
  disk: Disk,
  target: TargetDisk,
  opts: { exact: boolean; grow?: string; mins: Minimums },
): { parts: PlannedPartition[] } | { problem: string } {
  const table = disk.table!;
  const s = table.sectorSize;
  if (target.logicalSectorSize !== s)
    return { problem: `disk ${disk.name}: captured with ${s}-byte sectors, target ${target.name} has ${target.logicalSectorSize}: not supported` };
  const targetSectors = Math.floor(target.sizeBytes / s);
  // GPT keeps 33 sectors for the backup header and entries at the end; MBR needs none.
  const lastUsable = table.label === "gpt" ? targetSectors - 34 : targetSectors - 1;
  const sorted = [...table.partitions].sort((a, b) => a.start - b.start);
  const toTarget = (p: Partition) => ({ ...p, targetPath: partitionPath(target.path, p.number) });

  if (opts.exact || target.sizeBytes === disk.sizeBytes) {
    const last = sorted.at(-1);
    if (last && last.start + last.size - 1 > lastUsable)
      return {
        problem: `disk ${disk.name} → ${target.name}: partition ${last.number} ends at sector ${last.start + last.size - 1}, the target's last usable is ${lastUsable}: ${fmtBytes((last.start + last.size - 1 - lastUsable) * s)} short`,
      };
    return { parts: sorted.map(toTarget) };
  }

  const align = Math.max(1, MiB / s);
  const isLogical = (p: Partition) => table.label === "dos" && p.number >= 5;
  const extended = sorted.find((p) => table.label === "dos" && isPartType(p, "extended"));
  const fixed = (p: Partition) => isPartType(p, "esp") || isPartType(p, "biosBoot");
  const real = sorted.filter((p) => p !== extended);
  const flexible = real.filter((p) => !fixed(p));
  // Gaps before each partition (alignment, EBRs) are kept as captured.
  const gaps = new Map<Partition, number>();
  let prevEnd = 0;
  for (const p of sorted) {
    gaps.set(p, Math.max(0, p.start - prevEnd));
    // Logical partitions follow their extended container's start, not its end.
    prevEnd = p === extended ? p.start : p.start + p.size;
  }
  const gapSum = [...gaps.values()].reduce((a, b) => a + b, 0) + sorted.length * align; // alignment slack
  const fixedSum = real.filter(fixed).reduce((a, p) => a + p.size, 0);
  const available = lastUsable + 1 - gapSum - fixedSum;
  const minSectors = flexible.map((p) => {
    const m = opts.mins.of(p.path);
    return m === null ? p.size : Math.ceil(m / s);
  });
  const sizes = fitSizes(
    flexible.map((p) => p.size),
    minSectors,
    available,
    align,
  );
  if (!sizes) {
    const need = (minSectors.reduce((a, m) => a + roundUp(m, align), 0) - available) * s;
    return {
      problem: `disk ${disk.name} → ${target.name} (${fmtBytes(target.sizeBytes)}): the data does not fit, ${fmtBytes(need)} more needed (used bytes plus headroom on each partition)`,
    };
  }
  const newSize = new Map(flexible.map((p, i) => [p, sizes[i]!]));
  const growPart = flexible.find((p) => p.path === opts.grow) ?? flexible.at(-1);

  const layoutOnce = (extra: number) => {
    const out: PlannedPartition[] = [];
    let cursor = 0;
    let extStart = 0;
    for (const p of sorted) {
      let start = cursor + gaps.get(p)!;
      if (p.start % align === 0) start = roundUp(start, align);
      if (p === extended) {
        extStart = start;
        cursor = start;
        continue;
      }
      const size = (newSize.get(p) ?? p.size) + (p === growPart ? extra : 0);
      out.push({ ...toTarget(p), start, size });
      cursor = start + size;
    }
    if (extended) {
      const logicals = out.filter(isLogical);
      const end = logicals.length ? Math.max(...logicals.map((p) => p.start + p.size)) : extStart + 1;
      out.push({ ...toTarget(extended), start: extStart, size: end - extStart });
      out.sort((a, b) => a.number - b.number);
    }
    const end = Math.max(0, ...out.map((p) => p.start + p.size - 1));
    return { out, end };
  };
  let { out, end } = layoutOnce(0);
  if (growPart && end < lastUsable) {
    const slack = lastUsable - end;
    const isLast = growPart === real.at(-1);
    ({ out, end } = layoutOnce(isLast ? slack : roundDown(slack, align)));
  }
  if (end > lastUsable) return { problem: `disk ${disk.name} → ${target.name}: the partitions do not fit (${fmtBytes((end - lastUsable) * s)} short)` };
  return { parts: out.sort((a, b) => a.number - b.number) };
}

/**
 * A name as `sfdisk --dump` writes it (libfdisk's fputs_quoted): every byte that is
 * ", \\, `, $ or not printable ASCII becomes \\xNN, so the agent can compare the table it
 * finds with the plan's text byte for byte.
 */
export function sfdiskString(v: string): string {
  let out = "";
  for (const b of Buffer.from(v, "utf8"))
    out += b < 0x20 || b >= 0x7f || b === 0x22 || b === 0x5c || b === 0x60 || b === 0x24 ? `\\x${b.toString(16).padStart(2, "0")}` : String.fromCharCode(b);
  return `"${out}"`;
}

/** The sfdisk script (sfdisk --dump format) that recreates a table on the target. */
export function sfdiskScript(table: NonNullable<Disk["table"]>, labelId: string, parts: PlannedPartition[]): string {
  // No id (a ReaR import records none): sfdisk makes a new one.
  const head = [`label: ${table.label}`, ...(labelId ? [`label-id: ${labelId}`] : []), "unit: sectors"];
  if (table.label === "gpt" && table.firstLba !== null) head.push(`first-lba: ${table.firstLba}`);
  head.push(`sector-size: ${table.sectorSize}`, "");
  const lines = parts.map((p) => {
    const f = [`start=${p.start}`, `size=${p.size}`, `type=${p.type}`];
    if (p.uuid) f.push(`uuid=${p.uuid}`);
    if (p.name) f.push(`name=${sfdiskString(p.name)}`);
    if (p.attrs) f.push(`attrs=${sfdiskString(p.attrs)}`);
    if (p.bootable) f.push("bootable");
    return `${p.targetPath} : ${f.join(", ")}`;
  });
  return [...head, ...lines].join("\n");
}

/** A fresh UUID in the spelling the tool wants (vfat: XXXX-XXXX; GPT: upper case). */
function freshUuid(kind: "vfat" | "upper" | "lower", gen: () => string): string {
  const u = gen();
  if (kind === "vfat") return u.replace(/-/g, "").slice(0, 8).toUpperCase().replace(/^(.{4})/, "$1-");
  return kind === "upper" ? u.toUpperCase() : u.toLowerCase();
}

export function buildPlan(input: PlanInput): PlanResult {
  const { layout: captured, targets } = input;
  const o = input.options ?? {};
  const chains = input.chains ?? [];
  const gen = o.uuid ?? randomUUID;
  const notes: string[] = [];
  // Stored layouts are checked on upload; this also covers older versions and direct callers.
  const bad = layoutProblem(captured);
  if (bad) return { ok: false, reason: `layout of ${captured.hostname}: ${bad}`, reasons: [`layout of ${captured.hostname}: ${bad}`], mapping: [] };
  // Left out: disks mapped to none, and removable or USB ones unless included or mapped.
  const mapping = Object.fromEntries(Object.entries(o.mapping ?? {}).map(([k, v]) => [k, v === LEAVE_OUT ? null : v]));
  const leftOut = captured.disks.filter((d) => {
    const m = mappingOf(mapping, d);
    return m === null || (m === undefined && !o.includeRemovable && removableOrUsb(d.removable, d.transport));
  });
  const kept = leaveOut(captured, leftOut);
  if (kept.problems.length) return { ok: false, reason: kept.problems[0]!, reasons: kept.problems, mapping: [] };
  const layout = kept.layout;
  notes.push(...kept.notes);
  const { matches, problems } = matchDisks(captured, usedDisks(layout), targets, mapping, o.includeRemovable);
  const refuse = (reasons: string[]): PlanResult => ({ ok: false, reason: reasons[0]!, reasons, mapping: matches });
  if (problems.length) return refuse(problems);
  if (matches.length === 0) return refuse([`layout of ${layout.hostname} has no disk to recreate`]);

  const mins = new Minimums(layout, o.headroom ?? { share: 0.1, minBytes: 64 * MiB });
  const dev = new Map<string, string>(); // captured device path → target device path
  const sizeOf = new Map<string, number>(); // target device path → new size in bytes
  const steps: Step[] = [];
  const changedUuids: Array<[string, string]> = [];
  const newId = (old: string | null, kind: "vfat" | "upper" | "lower"): string => {
    if (!old || !o.newUuids) return old ?? "";
    const fresh = freshUuid(kind, gen);
    changedUuids.push([old, fresh]);
    return fresh;
  };

  const targetOf = (m: DiskMatch) => targets.find((t) => t.path === m.targetPath)!;
  const diskOf = (m: DiskMatch) => layout.disks.find((d) => d.path === m.capturedPath)!;
  for (const m of matches) {
    const t = targetOf(m);
    steps.push(step("check_disk", { dev: t.path, serial: t.serial ?? "", wwn: t.wwn ?? "", size_bytes: t.sizeBytes }));
    dev.set(m.capturedPath, t.path);
    sizeOf.set(t.path, t.sizeBytes);
  }
  const tableSteps: Step[] = [];
  for (const m of matches) {
    const d = diskOf(m);
    const t = targetOf(m);
    if (!d.table) {
      steps.push(step("wipe_disk", { dev: t.path, label_id: "" }));
      continue;
    }
    const r = planPartitions(d, t, { exact: o.migration === "exact", grow: o.grow, mins });
    if ("problem" in r) {
      problems.push(r.problem);
      continue;
    }
    const labelId = newId(d.table.id, d.table.label === "gpt" ? "upper" : "lower");
    const labelIdText = d.table.label === "dos" && o.newUuids ? `0x${labelId.replace(/-/g, "").slice(0, 8)}` : labelId;
    const parts = r.parts.map((p) => ({ ...p, uuid: p.uuid ? newId(p.uuid, "upper") : null }));
    for (const p of parts) {
      dev.set(p.path, p.targetPath);
      sizeOf.set(p.targetPath, p.size * d.table.sectorSize);
      const old = d.table.partitions.find((x) => x.number === p.number)!;
      if (old.size !== p.size) notes.push(`${old.path} → ${p.targetPath}: ${fmtBytes(old.size * d.table.sectorSize)} → ${fmtBytes(p.size * d.table.sectorSize)}`);
    }
    steps.push(step("wipe_disk", { dev: t.path, label_id: labelIdText }));
    tableSteps.push(step("partition", { dev: t.path, sfdisk_script: sfdiskScript(d.table, labelIdText, parts) }));
  }
  if (problems.length) return refuse(problems);
  steps.push(...tableSteps);

  // Storage stack: create whatever has all its parents, until nothing is left.
  const keys = new Set(o.luksKeys ?? []);
  const pending = {
    md: [...layout.md],
    luks: [...layout.luks],
    pvs: [...layout.lvm.pvs],
    vgs: [...layout.lvm.vgs],
    lvs: [...layout.lvm.lvs],
  };
  for (let progress = true; progress; ) {
    progress = false;
    for (const a of [...pending.md]) {
      if (!a.members.every((x) => dev.has(x))) continue;
      const members = a.members.map((x) => dev.get(x)!);
      steps.push(step("create_md", { dev: a.path, name: a.name ?? "", level: a.level, metadata: a.metadata, uuid: newId(a.uuid, "lower") }, members));
      dev.set(a.path, a.path);
      const memberSizes = members.map((x) => sizeOf.get(x) ?? 0);
      sizeOf.set(a.path, a.level === "raid0" || a.level === "linear" ? memberSizes.reduce((x, y) => x + y, 0) : Math.min(...memberSizes));
      pending.md.splice(pending.md.indexOf(a), 1);
      progress = true;
    }
    for (const c of [...pending.luks]) {
      if (!dev.has(c.path)) continue;
      if (!keys.has(c.uuid)) {
        problems.push(`LUKS container ${c.uuid} on ${c.path} (${c.name}): no key supplied for this job (the plan never holds keys; add one to the job)`);
        pending.luks.splice(pending.luks.indexOf(c), 1);
        continue;
      }
      steps.push(step("create_luks", { dev: dev.get(c.path)!, uuid: newId(c.uuid, "lower"), name: c.name, key_id: c.uuid }));
      const mapped = `/dev/mapper/${c.name}`;
      dev.set(mapped, mapped);
      sizeOf.set(mapped, (sizeOf.get(dev.get(c.path)!) ?? 0) - LUKS2_HEADER);
      pending.luks.splice(pending.luks.indexOf(c), 1);
      progress = true;
    }
    for (const pv of [...pending.pvs]) {
      if (!dev.has(pv.path)) continue;
      steps.push(step("create_pv", { dev: dev.get(pv.path)!, uuid: newId(pv.uuid, "lower") }));
      pending.pvs.splice(pending.pvs.indexOf(pv), 1);
      progress = true;
    }
    for (const vg of [...pending.vgs]) {
      const pvs = layout.lvm.pvs.filter((p) => p.vg === vg.name);
      if (pvs.some((p) => pending.pvs.includes(p) || !dev.has(p.path))) continue;
      steps.push(step("create_vg", { vg: vg.name, extent_bytes: vg.extentBytes }, pvs.map((p) => dev.get(p.path)!)));
      pending.vgs.splice(pending.vgs.indexOf(vg), 1);
      progress = true;
      // LVs keep their size when the VG still holds them, else shrink like partitions do.
      const lvs = layout.lvm.lvs.filter((l) => l.vg === vg.name);
      const capacity = pvs.reduce((a, p) => a + roundDown((sizeOf.get(dev.get(p.path)!) ?? 0) - LVM_METADATA, vg.extentBytes), 0);
      const wanted = lvs.reduce((a, l) => a + l.sizeBytes, 0);
      let sizes = lvs.map((l) => l.sizeBytes);
      if (wanted > capacity) {
        const fit = fitSizes(sizes, lvs.map((l) => mins.of(l.path) ?? l.sizeBytes), capacity, vg.extentBytes);
        if (!fit) {
          problems.push(`volume group ${vg.name}: its logical volumes need ${fmtBytes(wanted - capacity)} more than the new PVs hold`);
          continue;
        }
        sizes = fit;
        notes.push(`volume group ${vg.name}: logical volumes shrunk to fit ${fmtBytes(capacity)}`);
      }
      lvs.forEach((l, i) => {
        steps.push(step("create_lv", { vg: l.vg, lv: l.name, size_bytes: roundDown(sizes[i]!, vg.extentBytes) }));
        dev.set(l.path, l.path);
        sizeOf.set(l.path, sizes[i]!);
        pending.lvs.splice(pending.lvs.indexOf(l), 1);
      });
    }
  }
  for (const [what, left] of Object.entries(pending))
    for (const x of left as Array<{ path?: string; name?: string }>)
      problems.push(`cannot recreate ${what.replace(/s$/, "")} ${x.path ?? x.name}: what it is built on is not in the plan (a disk left out of the mapping?)`);
  if (problems.length) return refuse(problems);

  for (const f of layout.filesystems) {
    const target = dev.get(f.dev);
    if (!target) return refuse([`filesystem ${f.uuid ?? f.dev} on ${f.dev}: its device is not recreated by the plan`]);
    const size = sizeOf.get(target);
    const floor = FS_MIN_BYTES[f.type];
    if (size !== undefined && floor && size < floor)
      return refuse([`filesystem ${f.type} on ${f.dev} → ${target}: ${fmtBytes(size)} is below mkfs.${f.type}'s minimum ${fmtBytes(floor)}`]);
    steps.push(step("make_fs", { fstype: f.type, dev: target, uuid: newId(f.uuid, f.type === "vfat" ? "vfat" : "lower"), label: f.label ?? "" }, f.mkfsOptions));
    for (const sv of f.subvolumes) steps.push(step("create_subvol", { dev: target, path: sv }));
  }
  for (const sw of layout.swap) {
    const target = dev.get(sw.dev);
    if (!target) return refuse([`swap ${sw.uuid ?? sw.dev}: its device is not recreated by the plan`]);
    steps.push(step("make_swap", { dev: target, uuid: newId(sw.uuid, "lower"), label: sw.label ?? "" }));
  }

  const mounted = new Set<string>();
  for (const m of layout.mounts) {
    const target = dev.get(m.dev);
    if (!target) continue;
    steps.push(step("mount_fs", { dev: target, mountpoint: m.mountpoint, fstype: m.fstype, options: m.options }));
    mounted.add(m.mountpoint);
  }

  // The mount each DLE lands on, as captured: one on a disk left out is not restored.
  const landsOn = (mp: string) =>
    [...captured.mounts].sort((a, b) => b.mountpoint.length - a.mountpoint.length).find((m) => mp === m.mountpoint || mp.startsWith(m.mountpoint === "/" ? "/" : `${m.mountpoint}/`));
  for (const c of chains) {
    const on = landsOn(c.mountpoint);
    if (on && !layout.mounts.includes(on)) {
      notes.push(`DLE ${c.dle} (${c.mountpoint}) not restored: its filesystem is on a disk left out`);
      continue;
    }
    if (!isNormalMountpoint(c.mountpoint)) return refuse([`DLE ${c.dle}: mount point ${JSON.stringify(c.mountpoint)} is not an absolute path in normal form (no "..", "." or "//")`]);
    const covered = [...mounted].some((mp) => mp === "/" || c.mountpoint === mp || c.mountpoint.startsWith(`${mp}/`));
    if (!covered) return refuse([`DLE ${c.dle}: mount point ${c.mountpoint} is on no filesystem the plan mounts`]);
    if (c.dumps.length === 0 || c.dumps[0]!.level !== 0) return refuse([`DLE ${c.dle}: the restore chain must start with a level 0 dump`]);
    for (const d of c.dumps)
      steps.push(
        step("restore_dump", {
          mountpoint: c.mountpoint,
          program: c.program,
          level: d.level,
          compression: d.compression,
          size_bytes: d.sizeBytes ?? "",
          url: `/api/v1/dumps/${encodeURIComponent(d.id)}/stream`,
        }),
      );
  }

  const rootMounted = mounted.has("/");
  if (rootMounted) for (const [oldU, newU] of changedUuids) steps.push(step("fix_fstab", { old_uuid: oldU, new_uuid: newU }));
  if (o.identity) {
    if (!rootMounted) return refuse([`identity ${o.identity.hostname}: the plan mounts no / to write it into`]);
    if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(o.identity.hostname))
      return refuse([`identity: ${JSON.stringify(o.identity.hostname)} is not a host name (letters, digits, '-' and '.')`]);
    steps.push(step("set_identity", { hostname: o.identity.hostname }));
  }

  const firmware = o.firmware ?? layout.boot.firmware;
  if (layout.boot.loader && o.bootloader !== "none") {
    if (!rootMounted) notes.push("boot loader not installed: the plan mounts no / to install it from");
    else {
      const espMount = layout.mounts.find((m) => m.mountpoint === (layout.boot.efiDir ?? "/boot/efi"));
      if (firmware === "uefi" && !espMount) return refuse(["uefi boot: the layout has no mounted EFI system partition to install the boot loader into"]);
      const bootSource = firmware === "uefi" ? espMount!.dev : (layout.mounts.find((m) => m.mountpoint === "/boot") ?? layout.mounts.find((m) => m.mountpoint === "/"))!.dev;
      const capturedDisk =
        (firmware === "bios" && layout.boot.firmware === "bios" ? layout.boot.disk : null) ??
        layout.disks.find((d) => d.table?.partitions.some((p) => p.path === bootSource))?.path ??
        layout.md.find((a) => a.path === bootSource)?.members.map((x) => layout.disks.find((d) => d.table?.partitions.some((p) => p.path === x))?.path)[0];
      const disk = capturedDisk ? dev.get(capturedDisk) : undefined;
      if (!disk) return refuse([`boot loader: cannot tell which disk holds ${bootSource}; use --bootloader none or fix the layout`]);
      steps.push(
        step("install_bootloader", {
          firmware,
          loader: layout.boot.loader,
          disk,
          efi_dir: firmware === "uefi" ? espMount!.mountpoint : "",
          bootloader_id: firmware === "uefi" ? (layout.boot.bootloaderId ?? layout.system.os?.id ?? "linux") : "",
        }),
      );
    }
  }
  const transportChanged = matches.some((m) => {
    const c = diskOf(m);
    const t = targetOf(m);
    return c.transport !== null && t.bus !== null && c.transport !== t.bus;
  });
  // bootloader "none": the restore is not made bootable here, so its initramfs is left alone too.
  if (rootMounted && layout.system.initramfsTool && o.bootloader !== "none" && (changedUuids.length || transportChanged || firmware !== layout.boot.firmware))
    steps.push(step("regen_initramfs", { tool: layout.system.initramfsTool }));

  steps.push(step("unmount_all", {}), step("plan_done", {}));
  steps.unshift(step("plan_begin", { contract: CONTRACT_VERSION, host: layout.hostname, steps: steps.length + 1 }));
  return { ok: true, steps, script: renderPlan(steps), mapping: matches, notes };
}

/** The dry run a person reads before arming: the mapping, what each disk holds now, the script. */
export function describePlan(r: PlanResult): string {
  const lines = ["disk mapping (captured → target):"];
  for (const m of r.mapping)
    lines.push(
      `  ${m.captured} ${fmtBytes(m.capturedSizeBytes)} → ${m.targetPath} ${fmtBytes(m.targetSizeBytes)}  [${m.matchedBy}]  now holds: ${m.signatures.length ? m.signatures.join(", ") : "nothing recognised"}`,
    );
  if (!r.ok) {
    lines.push("", "REFUSED, nothing will be written:", ...r.reasons.map((x) => `  - ${x}`));
    return lines.join("\n");
  }
  if (r.notes.length) lines.push("", "notes:", ...r.notes.map((x) => `  - ${x}`));
  lines.push("", `plan (${r.steps.length} steps):`, r.script.trimEnd());
  return lines.join("\n");
}
