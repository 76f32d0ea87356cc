import { createHash } from "node:crypto";
import { z } from "zod";
import { fmtBytes } from "../layout/layout-text.ts";
import { type Disk, type DiskLayout, removableOrUsb } from "../layout/layout.ts";
import type { TargetDisk } from "./agent-api.ts";

/**
 * Which target disk each captured disk becomes. Automatically only by an identity both sides
 * have and that names one disk (a serial, WWN or /dev/disk/by-id link that is neither a known
 * placeholder nor shared), with every identifier both sides have agreeing; otherwise only by
 * the admin's mapping. A mapping the admin made is kept as the target's identity, with a
 * fingerprint of the disks the machine reported then: kernel names (sda, vdb) change between
 * boots, and a machine whose disks changed since needs a new look. Removable and USB disks
 * are never targets unless asked for.
 */

/** Serials that name no particular disk: emulator defaults and placeholders (USB bridges: by bus). */
const WEAK_SERIALS: Array<[RegExp, string]> = [
  [/^QM\d{5}$/, "QEMU's default ATA serial"],
  [/^(.)\1*$/, "one character repeated"],
  [/^(?:0123456789ABCDEF|1234567890(?:ABCDEF)?|123456789012|To be filled by O\.E\.M\.|Default string|None|N\/A|Not Specified|Unknown)$/i, "a placeholder"],
];

/** Why a serial identifies no disk, or null when it may. A USB bridge reports its own serial. */
function weakSerial(serial: string, bus: string | null): string | null {
  if (bus === "usb") return "a USB bridge's serial";
  for (const [re, why] of WEAK_SERIALS) if (re.test(serial)) return why;
  return null;
}

/** Two sizes of the same disk: equal within 1% (the same disk reports the same size; a 500 GB disk never passes for 1 TB). */
function sameSizeClass(a: number, b: number): boolean {
  return Math.abs(a - b) <= 0.01 * Math.max(a, b);
}

/** What a disk can be told by, on either side. */
interface Ids {
  serial: string | null;
  wwn: string | null;
  /** /dev/disk/by-id link names without the directory. */
  byId: string[];
  sizeBytes: number;
  bus: string | null;
}
const byIdName = (s: string) => s.replace(/^\/dev\/disk\/by-id\//, "");
const capturedIds = (d: Disk): Ids => ({ serial: d.serial, wwn: d.wwn, byId: d.byId.map(byIdName), sizeBytes: d.sizeBytes, bus: d.transport });
const targetIds = (t: TargetDisk): Ids => ({ serial: t.serial, wwn: t.wwn, byId: t.byId.map(byIdName), sizeBytes: t.sizeBytes, bus: t.bus });

/** The identifiers of `d` that name it alone among `peers` (its own machine's disks), and why the others do not. */
function strongIds(d: Ids, peers: Ids[]): { serial: string | null; wwn: string | null; byId: string[]; weak: string[] } {
  const others = peers.filter((p) => p !== d);
  const weak: string[] = [];
  let serial = d.serial;
  if (serial) {
    const why = weakSerial(serial, d.bus) ?? (others.some((o) => o.serial === serial) ? "shared by two disks" : null);
    if (why) {
      weak.push(`serial ${serial} is ${why}`);
      serial = null;
    }
  }
  let wwn = d.wwn;
  if (wwn) {
    const why = /^(?:0x)?0+$/i.test(wwn) ? "all zero" : others.some((o) => o.wwn === wwn) ? "shared by two disks" : null;
    if (why) {
      weak.push(`WWN ${wwn} is ${why}`);
      wwn = null;
    }
  }
  // A by-id link made from a weak serial or WWN, or by a USB bridge, is as weak as they are.
  const weakParts = [d.serial, d.wwn].filter((x): x is string => !!x && x !== serial && x !== wwn).map((x) => x.toLowerCase());
  const byId = d.byId.filter((l) => !l.startsWith("usb-") && !weakParts.some((w) => l.toLowerCase().includes(w)) && !others.some((o) => o.byId.includes(l)));
  return { serial, wwn, byId, weak };
}

type Shared = "serial" | "wwn" | "by-id";
function shared(a: ReturnType<typeof strongIds>, b: ReturnType<typeof strongIds>): Shared[] {
  const out: Shared[] = [];
  if (a.serial && a.serial === b.serial) out.push("serial");
  if (a.wwn && a.wwn === b.wwn) out.push("wwn");
  if (a.byId.some((l) => b.byId.includes(l))) out.push("by-id");
  return out;
}

/** The first identifier both sides have that differs ("WWN 0x5… here, 0x6… there"), or null when all agree. */
function disagreement(a: { serial: string | null; wwn: string | null; sizeBytes: number | null }, b: Ids): string | null {
  if (a.serial && b.serial && a.serial !== b.serial) return `serial (${a.serial} captured, ${b.serial} now)`;
  if (a.wwn && b.wwn && a.wwn !== b.wwn) return `WWN (${a.wwn} captured, ${b.wwn} now)`;
  if (a.sizeBytes !== null && !sameSizeClass(a.sizeBytes, b.sizeBytes)) return `size (${fmtBytes(a.sizeBytes)} captured, ${fmtBytes(b.sizeBytes)} now)`;
  return null;
}

/** The target disk the admin chose, by identity, as the mapping stores it. */
export const diskIdentitySchema = z.object({
  /** Its kernel name when chosen: shown; matched only when the disk has no serial, WWN or by-id. */
  name: z.string().nullable(),
  serial: z.string().nullable(),
  wwn: z.string().nullable(),
  byId: z.array(z.string()),
  sizeBytes: z.number().int().nonnegative().nullable(),
  /** disksFingerprint of the disks the machine reported when the admin chose; null: named by serial:, wwn: or by-id: without a look. */
  seen: z.string().nullable(),
});
export type DiskIdentity = z.infer<typeof diskIdentitySchema>;

/** A stored mapping: captured disk name → the target's identity, or null: the captured disk is left out. */
export const storedMappingSchema = z.record(z.string(), diskIdentitySchema.nullable());
export type StoredMapping = z.infer<typeof storedMappingSchema>;

/** The value of CAPTURED=none: the captured disk is left out of the plan. */
export const LEAVE_OUT = "none";

/** Fingerprint of the disks a machine reports (their names, sizes, identifiers, bus, removable): what the admin looked at. */
export function disksFingerprint(disks: TargetDisk[]): string {
  const canon = disks
    .map((t) => [t.path, t.name, t.sizeBytes, t.serial, t.wwn, [...t.byId].sort(), t.bus, t.removable])
    .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
  return createHash("sha256").update(JSON.stringify(canon)).digest("hex").slice(0, 16);
}

export function describeIdentity(id: DiskIdentity | null): string {
  if (id === null) return LEAVE_OUT;
  const parts = [id.serial && `serial ${id.serial}`, id.wwn && `wwn ${id.wwn}`, !id.serial && !id.wwn && id.byId[0] && `by-id ${id.byId[0]}`].filter(Boolean);
  return `${id.name ?? "disk"}${parts.length ? ` (${parts.join(", ")})` : ""}`;
}

/** A stored mapping in one line: "sda=vdb (serial S3Z…) sdb=none". */
export function describeMapping(m: StoredMapping | null): string {
  return Object.entries(m ?? {}).map(([captured, id]) => `${captured}=${describeIdentity(id)}`).join(" ");
}

/** The targets a mapping value names: serial:X, wwn:X, by-id:X or /dev/disk/by-id/X, a kernel name or /dev path, or a bare serial, WWN or by-id. */
function targetsNamed(value: string, targets: TargetDisk[]): TargetDisk[] {
  const [kind, rest] = /^(serial|wwn|by-id):(.+)$/.exec(value)?.slice(1) ?? [];
  if (kind === "serial") return targets.filter((t) => t.serial === rest);
  if (kind === "wwn") return targets.filter((t) => t.wwn === rest);
  const link = kind === "by-id" ? rest! : value.startsWith("/dev/disk/by-id/") ? byIdName(value) : null;
  if (link !== null) return targets.filter((t) => t.byId.some((b) => byIdName(b) === link));
  return targets.filter((t) => t.name === value || t.path === value || t.serial === value || t.wwn === value || t.byId.some((b) => byIdName(b) === value));
}

const identityOf = (t: TargetDisk, seen: string): DiskIdentity => ({ name: t.name, serial: t.serial, wwn: t.wwn, byId: t.byId.map(byIdName), sizeBytes: t.sizeBytes, seen });

/**
 * The admin's CAPTURED=TARGET pairs as stored identities: against the disks the machine
 * reported (`disks`), any spelling that names one of them; with no disks reported yet (an
 * armed job, a profile), only serial:X, wwn:X, by-id:X or none, never a kernel name.
 * Throws one line naming the pair.
 */
export function resolveMapping(pairs: Record<string, string>, disks: TargetDisk[] | null): StoredMapping {
  const out: StoredMapping = {};
  for (const [captured, value] of Object.entries(pairs)) {
    if (value === LEAVE_OUT) {
      out[captured] = null;
      continue;
    }
    if (disks) {
      const found = targetsNamed(value, disks);
      if (found.length !== 1)
        throw new Error(
          found.length
            ? `${captured}=${value}: ${found.map((t) => t.name).join(" and ")} all match; name one by kernel name, serial: or wwn:`
            : `${captured}=${value}: the machine reports no disk ${value} (it has ${disks.map((t) => t.name).join(", ") || "none"})`,
        );
      out[captured] = identityOf(found[0]!, disksFingerprint(disks));
      continue;
    }
    const [kind, rest] = /^(serial|wwn|by-id):(.+)$/.exec(value)?.slice(1) ?? (value.startsWith("/dev/disk/by-id/") ? ["by-id", byIdName(value)] : []);
    if (!kind || !rest)
      throw new Error(
        `${captured}=${value}: a kernel name may name another disk at the next boot; map once the machine has reported its disks (lifeboat jobs plan JOB shows them), or name the target by serial:…, wwn:… or by-id:…`,
      );
    out[captured] = { name: null, serial: kind === "serial" ? rest : null, wwn: kind === "wwn" ? rest : null, byId: kind === "by-id" ? [rest] : [], sizeBytes: null, seen: null };
  }
  return out;
}

/** The target a stored identity names among `targets`, or why none. */
function targetOfIdentity(id: DiskIdentity, targets: TargetDisk[], fingerprint: string): { target: TargetDisk } | { problem: string } {
  if (id.seen !== null && id.seen !== fingerprint)
    return { problem: `the machine reports other disks than when this mapping was made (now: ${targets.map((t) => `${t.name}${removableOrUsb(t.removable, t.bus) ? " (removable/USB)" : ""}`).join(", ") || "none"}): look at them again and map again` };
  const hasIds = !!(id.serial || id.wwn || id.byId.length);
  const found = targets.filter((t) => {
    const ids = targetIds(t);
    if (!hasIds) return t.name === id.name && t.sizeBytes === id.sizeBytes;
    const agrees = (id.serial !== null && id.serial === ids.serial) || (id.wwn !== null && id.wwn === ids.wwn) || id.byId.some((l) => ids.byId.includes(l));
    return agrees && disagreement(id, ids) === null;
  });
  if (found.length === 1) return { target: found[0]! };
  return { problem: found.length ? `${found.map((t) => t.name).join(" and ")} all match it: map again by kernel name` : `no disk the machine reports has that identity now` };
}

export interface DiskMatch {
  captured: string;
  capturedPath: string;
  capturedSizeBytes: number;
  target: string;
  targetPath: string;
  targetSizeBytes: number;
  matchedBy: "serial" | "wwn" | "by-id" | "mapping";
  /** What the target disk holds now (wiped by the plan). */
  signatures: string[];
}

function describeDisk(d: Disk): string {
  const id = [d.model, d.serial && `serial ${d.serial}`, d.wwn && `wwn ${d.wwn}`].filter(Boolean).join(", ");
  return `${d.name} (${id ? `${id}, ` : ""}${fmtBytes(d.sizeBytes)})`;
}

/** What one captured disk's match is judged against: the targets and their identities. */
interface MatchContext {
  layout: DiskLayout;
  targets: TargetDisk[];
  fingerprint: string;
  eligible: (target: TargetDisk) => boolean;
  capturedPeers: Ids[];
  targetStrong: Array<ReturnType<typeof strongIds>>;
}
type Matched = { target: TargetDisk; matchedBy: DiskMatch["matchedBy"] } | { problem: string };

/** The target the admin's mapping names for a captured disk. */
function matchByMapping(disk: Disk, want: string | DiskIdentity, context: MatchContext): Matched {
  const label = `mapping ${disk.name}=${show(want)}`;
  const { targets } = context;
  let target: TargetDisk;
  if (typeof want === "string") {
    const found = targetsNamed(want, targets);
    if (found.length !== 1)
      return {
        problem: found.length
          ? `${label}: ${found.map((x) => x.name).join(" and ")} all match; name one by kernel name, serial: or wwn:`
          : `${label}: no target disk is ${want} (targets: ${targets.map((x) => x.name).join(", ") || "none"})`,
      };
    target = found[0]!;
  } else {
    const resolved = targetOfIdentity(want, targets, context.fingerprint);
    if ("problem" in resolved) return { problem: `${label}: ${resolved.problem}` };
    target = resolved.target;
  }
  if (!context.eligible(target))
    return { problem: `${label}: ${target.name} is a removable or USB disk, which plans leave alone unless removable disks are included (--include-removable)` };
  return { target, matchedBy: "mapping" };
}

/** The one eligible target sharing a strong identifier with a captured disk. */
function matchByIdentity(disk: Disk, context: MatchContext): Matched {
  const { layout, targets, eligible, capturedPeers, targetStrong } = context;
  const ids = strongIds(capturedPeers[layout.disks.indexOf(disk)]!, capturedPeers);
  const found = targets.flatMap((x, i) => (eligible(x) ? shared(ids, targetStrong[i]!).map((by) => [x, by] as const) : []));
  const candidates = [...new Set(found.map(([x]) => x))];
  if (candidates.length > 1)
    return { problem: `captured disk ${disk.name}: ambiguous, ${candidates.map((x) => x.name).join(" and ")} all match: give an explicit mapping ${disk.name}=TARGET` };
  if (candidates.length === 0) return { problem: noIdentityMatch(disk, ids, context) };
  const target = candidates[0]!;
  const matchedBy = found[0]![1];
  const differs = disagreement(disk, targetIds(target));
  if (differs)
    return {
      problem: `captured disk ${describeDisk(disk)}: ${target.name} has its ${matchedBy === "wwn" ? "WWN" : matchedBy} but another ${differs}: not the same disk; if it is the one, give an explicit mapping ${disk.name}=${target.name}`,
    };
  return { target, matchedBy };
}

/** Why no target matched: names what would have matched but may not (a weak or shared identifier on either side). */
function noIdentityMatch(disk: Disk, ids: ReturnType<typeof strongIds>, context: MatchContext): string {
  const { targets, eligible, targetStrong } = context;
  const raw = targets.filter(
    (x) => eligible(x) && ((disk.serial && x.serial === disk.serial) || (disk.wwn && x.wwn === disk.wwn) || disk.byId.some((l) => x.byId.map(byIdName).includes(byIdName(l)))),
  );
  const targetWeak = raw.flatMap((x) => targetStrong[targets.indexOf(x)]!.weak.map((w) => `on ${x.name} ${w}`));
  const explicit = `give an explicit mapping ${disk.name}=TARGET`;
  if (raw.length > 1) return `captured disk ${disk.name}: ambiguous, ${raw.map((x) => x.name).join(" and ")} all match (${(ids.weak.length ? ids.weak : targetWeak).join("; ")}): ${explicit}`;
  if (ids.weak.length && !ids.serial && !ids.wwn && !ids.byId.length) return `captured disk ${describeDisk(disk)}: ${ids.weak.join("; ")}, which identifies no disk: ${explicit}`;
  if (!disk.serial && !disk.wwn && !disk.byId.length) return `captured disk ${describeDisk(disk)} has no serial, WWN or by-id to match: ${explicit}`;
  if (raw.length === 1) return `captured disk ${describeDisk(disk)}: ${raw[0]!.name} matches only by an identifier that identifies no disk (${targetWeak.join("; ")}): ${explicit}`;
  return `captured disk ${describeDisk(disk)}: no target disk has its serial/WWN/by-id (new hardware?): ${explicit}`;
}

/** A problem for each target disk two captured disks were matched to. */
function sharedTargets(matches: DiskMatch[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const m of matches) {
    const prev = seen.get(m.targetPath);
    if (prev) problems.push(`target disk ${m.target} is matched by both ${prev} and ${m.captured}: fix the mapping`);
    seen.set(m.targetPath, m.captured);
  }
  return problems;
}

/**
 * Matches the captured disks that must be recreated (`disks`) to target disks, by identity
 * or the admin's mapping (a string is resolved against `targets` now, as `hosts plan` does;
 * a stored identity must still name one of them; null leaves the disk out and is handled
 * by the caller). Removable and USB targets only with `includeRemovable`.
 */
export function matchDisks(
  layout: DiskLayout,
  disks: Disk[],
  targets: TargetDisk[],
  mapping: Record<string, string | DiskIdentity | null> = {},
  includeRemovable = false,
): { matches: DiskMatch[]; problems: string[] } {
  const matches: DiskMatch[] = [];
  const problems: string[] = [];
  for (const key of Object.keys(mapping))
    if (!layout.disks.some((d) => d.name === key || d.path === key))
      problems.push(`mapping ${key}=${show(mapping[key] ?? null)}: the layout has no disk ${key} (it has ${layout.disks.map((d) => d.name).join(", ") || "none"})`);
  const capturedPeers = layout.disks.map(capturedIds);
  const targetPeers = targets.map(targetIds);
  const context: MatchContext = {
    layout,
    targets,
    fingerprint: disksFingerprint(targets),
    eligible: (t) => includeRemovable || !removableOrUsb(t.removable, t.bus),
    capturedPeers,
    targetStrong: targetPeers.map((x) => strongIds(x, targetPeers)),
  };
  for (const disk of disks) {
    const want = mappingOf(mapping, disk);
    const matched = want !== undefined && want !== null ? matchByMapping(disk, want, context) : matchByIdentity(disk, context);
    if ("problem" in matched) {
      problems.push(matched.problem);
      continue;
    }
    const { target, matchedBy } = matched;
    matches.push({
      captured: disk.name,
      capturedPath: disk.path,
      capturedSizeBytes: disk.sizeBytes,
      target: target.name,
      targetPath: target.path,
      targetSizeBytes: target.sizeBytes,
      matchedBy,
      signatures: target.signatures,
    });
  }
  return { matches, problems: [...problems, ...sharedTargets(matches)] };
}

/** The mapping's entry for a captured disk (by name or path); undefined: none given, null: left out. */
export function mappingOf<T>(mapping: Record<string, T>, d: Pick<Disk, "name" | "path">): T | undefined {
  return Object.hasOwn(mapping, d.name) ? mapping[d.name] : Object.hasOwn(mapping, d.path) ? mapping[d.path] : undefined;
}

const show = (v: string | DiskIdentity | null) => (typeof v === "string" ? v : describeIdentity(v));
