import { fmtBytes } from "../layout/layout-text.ts";
import type { TargetDisk } from "./agent-api.ts";
import { type Disk, type DiskLayout, type Partition, isPartType, partitionPath } from "../layout/layout.ts";

/**
 * Sizes on the target (pure): what each storage object needs at least, how sizes shrink to
 * fit (water-filling), new partition starts and sizes per disk, and the sfdisk script that
 * writes them.
 */

export const MiB = 1024 * 1024;
/** Smallest filesystem each mkfs accepts (xfsprogs ≥ 5.19 refuses below 300 MB). */
export const FS_MIN_BYTES: Record<string, number> = { xfs: 300 * MiB, btrfs: 128 * MiB, vfat: 34 * MiB, ext4: 8 * MiB };
export const LUKS2_HEADER = 16 * MiB;
export const LVM_METADATA = 4 * MiB;
export const SWAP_MIN = 256 * MiB;
/** What a shrunk filesystem keeps free: a share of its used bytes plus a floor. */
export const HEADROOM = { share: 0.1, minBytes: 64 * MiB };

/** Sizes (bytes) a storage object needs at least, or null when it cannot shrink (unknown use). */
export class Minimums {
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

export const roundUp = (n: number, m: number) => Math.ceil(n / m) * m;
export const roundDown = (n: number, m: number) => Math.floor(n / m) * m;

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

export interface PlannedPartition extends Partition {
  targetPath: string;
}

/** Gaps before each partition (alignment, EBRs), kept as captured. */
function gapsBefore(sorted: Partition[], extended: Partition | undefined): Map<Partition, number> {
  const gaps = new Map<Partition, number>();
  let previousEnd = 0;
  for (const p of sorted) {
    gaps.set(p, Math.max(0, p.start - previousEnd));
    // Logical partitions follow their extended container's start, not its end.
    previousEnd = p === extended ? p.start : p.start + p.size;
  }
  return gaps;
}

/** What placing a table's partitions on the target needs: the captured order, gaps and new sizes. */
interface TableShape {
  sorted: Partition[];
  gaps: Map<Partition, number>;
  extended: Partition | undefined;
  align: number;
  isLogical: (p: Partition) => boolean;
  newSize: Map<Partition, number>;
  growPart: Partition | undefined;
  toTarget: (p: Partition) => PlannedPartition;
}

/** Starts and sizes one after the other, `extra` sectors added to the growing partition; `end` is the last sector used. */
function placePartitions(shape: TableShape, extra: number): { out: PlannedPartition[]; end: number } {
  const { sorted, gaps, extended, align } = shape;
  const out: PlannedPartition[] = [];
  let cursor = 0;
  let extendedStart = 0;
  for (const p of sorted) {
    let start = cursor + gaps.get(p)!;
    if (p.start % align === 0) start = roundUp(start, align);
    if (p === extended) {
      extendedStart = start;
      cursor = start;
      continue;
    }
    const size = (shape.newSize.get(p) ?? p.size) + (p === shape.growPart ? extra : 0);
    out.push({ ...shape.toTarget(p), start, size });
    cursor = start + size;
  }
  if (extended) {
    const logicals = out.filter(shape.isLogical);
    const end = logicals.length ? Math.max(...logicals.map((p) => p.start + p.size)) : extendedStart + 1;
    out.push({ ...shape.toTarget(extended), start: extendedStart, size: end - extendedStart });
    out.sort((a, b) => a.number - b.number);
  }
  return { out, end: Math.max(0, ...out.map((p) => p.start + p.size - 1)) };
}

/** New partition starts and sizes on one target disk, or a refusal. */
export function planPartitions(
  disk: Disk,
  target: TargetDisk,
  opts: { exact: boolean; grow?: string; mins: Minimums },
): { parts: PlannedPartition[] } | { problem: string } {
  const table = disk.table!;
  const sectorSize = table.sectorSize;
  if (target.logicalSectorSize !== sectorSize)
    return { problem: `disk ${disk.name}: captured with ${sectorSize}-byte sectors, target ${target.name} has ${target.logicalSectorSize}: not supported` };
  const targetSectors = Math.floor(target.sizeBytes / sectorSize);
  // GPT keeps 33 sectors for the backup header and entries at the end; MBR needs none.
  const lastUsable = table.label === "gpt" ? targetSectors - 34 : targetSectors - 1;
  const sorted = [...table.partitions].sort((a, b) => a.start - b.start);
  const toTarget = (p: Partition) => ({ ...p, targetPath: partitionPath(target.path, p.number) });

  if (opts.exact || target.sizeBytes === disk.sizeBytes) {
    const last = sorted.at(-1);
    if (last && last.start + last.size - 1 > lastUsable)
      return {
        problem: `disk ${disk.name} → ${target.name}: partition ${last.number} ends at sector ${last.start + last.size - 1}, the target's last usable is ${lastUsable}: ${fmtBytes((last.start + last.size - 1 - lastUsable) * sectorSize)} short`,
      };
    return { parts: sorted.map(toTarget) };
  }

  const align = Math.max(1, MiB / sectorSize);
  const isLogical = (p: Partition) => table.label === "dos" && p.number >= 5;
  const extended = sorted.find((p) => table.label === "dos" && isPartType(p, "extended"));
  const fixed = (p: Partition) => isPartType(p, "esp") || isPartType(p, "biosBoot");
  const real = sorted.filter((p) => p !== extended);
  const flexible = real.filter((p) => !fixed(p));
  const gaps = gapsBefore(sorted, extended);
  const gapSum = [...gaps.values()].reduce((a, b) => a + b, 0) + sorted.length * align; // alignment slack
  const fixedSum = real.filter(fixed).reduce((a, p) => a + p.size, 0);
  const available = lastUsable + 1 - gapSum - fixedSum;
  const minSectors = flexible.map((p) => {
    const m = opts.mins.of(p.path);
    return m === null ? p.size : Math.ceil(m / sectorSize);
  });
  const sizes = fitSizes(
    flexible.map((p) => p.size),
    minSectors,
    available,
    align,
  );
  if (!sizes) {
    const need = (minSectors.reduce((a, m) => a + roundUp(m, align), 0) - available) * sectorSize;
    return {
      problem: `disk ${disk.name} → ${target.name} (${fmtBytes(target.sizeBytes)}): the data does not fit, ${fmtBytes(need)} more needed (used bytes plus headroom on each partition)`,
    };
  }
  const newSize = new Map(flexible.map((p, i) => [p, sizes[i]!]));
  const growPart = flexible.find((p) => p.path === opts.grow) ?? flexible.at(-1);

  const shape: TableShape = { sorted, gaps, extended, align, isLogical, newSize, growPart, toTarget };
  const layoutOnce = (extra: number) => placePartitions(shape, extra);
  let { out, end } = layoutOnce(0);
  if (growPart && end < lastUsable) {
    const slack = lastUsable - end;
    const isLast = growPart === real.at(-1);
    ({ out, end } = layoutOnce(isLast ? slack : roundDown(slack, align)));
  }
  if (end > lastUsable) return { problem: `disk ${disk.name} → ${target.name}: the partitions do not fit (${fmtBytes((end - lastUsable) * sectorSize)} short)` };
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
