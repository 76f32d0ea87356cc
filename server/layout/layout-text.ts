import type { DiskLayout } from "./layout.ts";

/** A layout as a person reads it: disks, partitions, storage stack, filesystems, boot. */
export function describeLayout(l: DiskLayout): string {
  const out = [`host ${l.hostname}, captured ${l.capturedAt} (${l.source}), firmware ${l.boot.firmware}`];
  const partitionLines = (table: NonNullable<DiskLayout["disks"][number]["table"]>) =>
    table.partitions.map((p) => `  ${p.path}  start ${p.start}  ${fmtBytes(p.size * table.sectorSize)}  type ${p.type}${p.name ? `  name ${JSON.stringify(p.name)}` : ""}${p.bootable ? "  boot" : ""}`);
  for (const d of l.disks) {
    const multipath = d.multipath && `multipath${d.multipath.wwid ? ` wwid ${d.multipath.wwid}` : ""} via ${d.multipath.paths.join(",") || "?"}`;
    const id = [d.model, d.serial && `serial ${d.serial}`, d.wwn && `wwn ${d.wwn}`, d.transport, multipath].filter(Boolean).join(", ");
    out.push(`disk ${d.path}  ${fmtBytes(d.sizeBytes)}${id ? `  ${id}` : ""}  ${d.table ? `${d.table.label} ${d.table.id}` : "no partition table"}`);
    if (d.table) out.push(...partitionLines(d.table));
  }
  for (const m of l.md) {
    out.push(`md ${m.path} ${m.level} (${m.members.join(", ")}) uuid ${m.uuid}${m.table ? `  ${fmtBytes(m.sizeBytes)}  ${m.table.label} ${m.table.id}` : ""}`);
    if (m.table) out.push(...partitionLines(m.table));
  }
  for (const c of l.luks) out.push(`luks ${c.path} → /dev/mapper/${c.name} uuid ${c.uuid}`);
  for (const v of l.lvm.vgs) out.push(`vg ${v.name} on ${l.lvm.pvs.filter((p) => p.vg === v.name).map((p) => p.path).join(", ")}  ${fmtBytes(v.sizeBytes)}`);
  for (const v of l.lvm.lvs) out.push(`  lv ${v.path}  ${fmtBytes(v.sizeBytes)}`);
  for (const f of l.filesystems) {
    const mps = l.mounts.filter((m) => m.dev === f.dev).map((m) => m.mountpoint + (m.options ? ` (${m.options})` : ""));
    out.push(
      `fs ${f.type} on ${f.dev}  uuid ${f.uuid ?? "-"}  label ${f.label === null ? "-" : JSON.stringify(f.label)}  ${fmtBytes(f.sizeBytes)}, used ${f.usedBytes === null ? "unknown" : fmtBytes(f.usedBytes)}${mps.length ? `  mounted ${mps.join(", ")}` : ""}`,
    );
    if (f.subvolumes.length) out.push(`  subvolumes ${f.subvolumes.join(", ")}`);
  }
  for (const s of l.swap) out.push(`swap on ${s.dev}  uuid ${s.uuid ?? "-"}  ${fmtBytes(s.sizeBytes)}`);
  const sb = l.boot.secureBoot === null ? "" : `, Secure Boot ${l.boot.secureBoot ? "on" : "off"}`;
  out.push(`boot loader ${l.boot.loader ?? "unknown"}${l.boot.shim ? " via shim" : ""}${l.boot.disk ? ` on ${l.boot.disk}` : ""}${l.boot.efiDir ? `, ESP ${l.boot.efiDir}` : ""}${sb}`);
  const os = l.system.os?.prettyName ?? "unknown OS";
  out.push(`system ${os}, kernel ${l.system.kernel ?? "?"}, initramfs ${l.system.initramfsTool ?? "?"}, ${l.system.packages?.list.length ?? 0} packages`);
  const dles = Object.entries(l.dles);
  out.push(`DLEs ${dles.length ? dles.map(([k, v]) => `${k}→${v}`).join(", ") : "none mapped"}`);
  return out.join("\n");
}

/** Keys that identify an element of a layout array, so diffs follow it when order changes. */
const ID_KEYS = ["path", "dev", "mountpoint", "number", "name"];

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (Array.isArray(v)) {
    v.forEach((item, i) => {
      const obj = item as Record<string, unknown>;
      const key = item && typeof item === "object" ? ID_KEYS.find((k) => k in obj && obj[k] !== null) : undefined;
      flatten(item, `${prefix}[${key ? String(obj[key]) : i}]`, out);
    });
  } else if (v && typeof v === "object") {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, JSON.stringify(v));
}

/**
 * What changed from layout `a` to layout `b`, one line per fact ("+", "-", "~"); packages are
 * summarised by name. Capture times and free-form files are left out (they always differ).
 */
export function diffLayouts(a: DiskLayout, b: DiskLayout): string[] {
  const strip = (l: DiskLayout) => ({ ...l, capturedAt: undefined, files: undefined, boot: { ...l.boot, efiEntries: undefined }, system: { ...l.system, packages: undefined } });
  const fa = new Map<string, string>();
  const fb = new Map<string, string>();
  flatten(strip(a), "", fa);
  flatten(strip(b), "", fb);
  const lines: string[] = [];
  for (const [k, v] of fa) {
    if (!fb.has(k)) lines.push(`- ${k} = ${v}`);
    else if (fb.get(k) !== v) lines.push(`~ ${k}: ${v} → ${fb.get(k)}`);
  }
  for (const [k, v] of fb) if (!fa.has(k)) lines.push(`+ ${k} = ${v}`);
  for (const [label, x] of [
    ["fstab", [a.files.fstab, b.files.fstab]],
    ["crypttab", [a.files.crypttab, b.files.crypttab]],
  ] as const)
    if (x[0] !== x[1]) lines.push(`~ /etc/${label} changed`);
  const pa = new Map(a.system.packages?.list ?? []);
  const pb = new Map(b.system.packages?.list ?? []);
  const added = [...pb.keys()].filter((p) => !pa.has(p));
  const removed = [...pa.keys()].filter((p) => !pb.has(p));
  const upgraded = [...pb.keys()].filter((p) => pa.has(p) && pa.get(p) !== pb.get(p));
  if (added.length) lines.push(`+ packages: ${added.join(", ")}`);
  if (removed.length) lines.push(`- packages: ${removed.join(", ")}`);
  if (upgraded.length) lines.push(`~ packages: ${upgraded.map((p) => `${p} ${pa.get(p)} → ${pb.get(p)}`).join(", ")}`);
  return lines;
}

export function fmtBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = Math.abs(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${n < 0 ? "-" : ""}${i ? v.toFixed(1) : v} ${units[i]} (${n} bytes)`;
}
