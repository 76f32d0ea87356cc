import type { Decryption } from "../amanda/decrypt.ts";
import type { TargetDisk } from "./agent-api.ts";
import type { StaticAddress } from "../store/types.ts";
import { type Disk, type DiskLayout, removableOrUsb } from "../layout/layout.ts";
import { fmtBytes } from "../layout/layout-text.ts";
import { layoutProblem } from "../layout/layout-validate.ts";
import { CONTRACT_VERSION, DEFAULT_END_STATE, type EndState, type Step, renderPlan, step } from "./steps.ts";
import { type DiskIdentity, type DiskMatch, LEAVE_OUT, mappingOf, matchDisks } from "./disks.ts";
import { type PlanStage, bootLoader, filesystems, fixFstab, gateDisks, identity, initramfs, mounts, networkNames, partitionTables, staticAddress, planState, restores, storageStack } from "./plan-stages.ts";

/**
 * The plan builder (pure): layout + the target's disks + restore chains + options →
 * ordered steps, or a refusal before any step. Disks are matched by identity (serial,
 * WWN, by-id), never by size or order; anything else needs an explicit mapping. The
 * steps come from named stages (plan-stages.ts), sizes from plan-sizes.ts.
 */

export interface RestoreDump {
  id: string;
  level: number;
  datestamp: string;
  sizeBytes: number | null;
  /** What the stream carries: none, gzip, bzip2, xz, zstd. */
  compression: string;
  /** An encrypted dump: the server decrypts its stream with this Amanda config's escrowed key. */
  decrypt?: Decryption;
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
  /** The new machine's NICs as it reported them (its MACs), and the admin's NIC mapping (captured name → MAC): map_nic (nics.ts). */
  nics?: { current: string[]; admin?: Record<string, string> };
  /** For tests and clones: where new UUIDs come from. */
  uuid?: () => string;
  /** What the machine does once the job is done (plan_done's argument); default reboot. */
  endState?: EndState;
  /** Dump id → its stream's full URL on another server of the store (jobs/servers.ts remoteDumpUrls); others: a path on this one. */
  dumpUrls?: Record<string, string>;
  /** The restored system's own static address on its captured default-route NIC (set_address). */
  address?: StaticAddress;
}

export interface PlanInput {
  layout: DiskLayout;
  targets: TargetDisk[];
  chains?: RestoreChain[];
  options?: PlanOptions;
}

/** What the builder returns: the steps and their script with the dump ids they stream, or why not. */
export type PlanResult =
  | { ok: true; steps: Step[]; script: string; dumps: string[]; mapping: DiskMatch[]; notes: string[]; network: string[] }
  | { ok: false; reason: string; reasons: string[]; mapping: DiskMatch[] };

/**
 * A plan as a job keeps it once served to its agent (JobRecord.plan), and as the job planner
 * returns it: the script, its step count and bytes, the dump ids the job's boot token may
 * stream (those and no others), and what the admin's views show of how it was made.
 */
export interface ServedPlan {
  script: string;
  steps: number;
  bytesTotal: number;
  dumps: string[];
  /** What the machine does once the job is done (the script's plan_done says the same). */
  endState: EndState;
  /**
   * `network`: the rescue network and the NIC mapping, as lines for people (older served plans: none).
   * `waits`: a dry run's lines on what the real plan will wait for once the machine reports its disks.
   * `decrypt`: the encrypted dumps the server decrypts on their stream, with which Amanda config's key.
   */
  detail: { mapping: DiskMatch[]; notes: string[]; layoutVersion: number; network?: string[]; waits?: string[]; decrypt?: string[] };
}

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
 * Why the plan does not recreate a multipath disk: the rescue image has no multipath tools
 * (multipathd, kpartx), so the LUN shows as one disk per path sharing its WWN, and a table,
 * PV or filesystem written through one path leaves the others' view stale (LVM then sees
 * duplicate PVs). Left out, the plan goes on without it: a SAN LUN keeps its data.
 */
function multipathRefusal(d: Disk): string {
  const seen = [d.multipath?.wwid && `WWID ${d.multipath.wwid}`, d.multipath?.paths.length && `paths ${d.multipath.paths.join(", ")}`].filter(Boolean).join("; ");
  return `captured disk ${d.name} is a multipath disk${seen ? ` (${seen})` : ""}: the rescue image has no multipath tools, and a write through one of its paths would leave the others stale; map it to none (${d.name}=none) to restore the rest and recreate it by hand`;
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
    for (const a of layout.md) if (all(a.members)) for (const dev of [a.path, ...(a.table?.partitions.map((p) => p.path) ?? [])]) gone.add(dev);
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

/** The stages in order; the plan stops after the first that finds a problem. */
const STAGES: PlanStage[] = [gateDisks, partitionTables, storageStack, filesystems, mounts, restores, fixFstab, identity, networkNames, staticAddress, bootLoader, initramfs];

export function buildPlan(input: PlanInput): PlanResult {
  const { layout: captured, targets } = input;
  const options = input.options ?? {};
  // Stored layouts are checked on upload; this also covers older versions and direct callers.
  const bad = layoutProblem(captured);
  if (bad) return { ok: false, reason: `layout of ${captured.hostname}: ${bad}`, reasons: [`layout of ${captured.hostname}: ${bad}`], mapping: [] };
  // Left out: disks mapped to none, and removable or USB ones unless included or mapped.
  const mapping = Object.fromEntries(Object.entries(options.mapping ?? {}).map(([k, v]) => [k, v === LEAVE_OUT ? null : v]));
  const leftOut = captured.disks.filter((d) => {
    const m = mappingOf(mapping, d);
    return m === null || (m === undefined && !options.includeRemovable && removableOrUsb(d.removable, d.transport));
  });
  // A grow naming no captured partition would silently grow another one.
  if (options.grow && !captured.disks.some((d) => d.table?.partitions.some((p) => p.path === options.grow))) {
    const reason = `grow ${options.grow}: layout of ${captured.hostname} has no partition by that name`;
    return { ok: false, reason, reasons: [reason], mapping: [] };
  }
  const kept = leaveOut(captured, leftOut);
  if (kept.problems.length) return { ok: false, reason: kept.problems[0]!, reasons: kept.problems, mapping: [] };
  const layout = kept.layout;
  const multipath = usedDisks(layout).filter((d) => d.multipath).map(multipathRefusal);
  if (multipath.length) return { ok: false, reason: multipath[0]!, reasons: multipath, mapping: [] };
  const { matches, problems } = matchDisks(captured, usedDisks(layout), targets, mapping, options.includeRemovable);
  const refuse = (reasons: string[]): PlanResult => ({ ok: false, reason: reasons[0]!, reasons, mapping: matches });
  if (problems.length) return refuse(problems);
  if (matches.length === 0) return refuse([`layout of ${layout.hostname} has no disk to recreate`]);

  const state = planState(captured, layout, targets, input.chains ?? [], options, matches, [...kept.notes]);
  for (const stage of STAGES) {
    stage(state);
    if (state.problems.length) return refuse(state.problems);
  }
  const steps: Step[] = [...state.steps, step("unmount_all", {}), step("plan_done", { end_state: options.endState ?? DEFAULT_END_STATE })];
  steps.unshift(step("plan_begin", { contract: CONTRACT_VERSION, host: layout.hostname, steps: steps.length + 1 }));
  return { ok: true, steps, script: renderPlan(steps), dumps: state.dumps, mapping: matches, notes: state.notes, network: state.network };
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
  if (r.network.length) lines.push("", "network after the restore:", ...r.network.map((x) => `  - ${x}`));
  lines.push("", `plan (${r.steps.length} steps):`, r.script.trimEnd());
  return lines.join("\n");
}

// Part of the plan builder's surface (tests and the agent's table comparison use them).
export { fitSizes, sfdiskString } from "./plan-sizes.ts";
