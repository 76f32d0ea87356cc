import { normalizeMac } from "../mac.ts";
import { type FindmntNode, type LsblkNode, type Capture } from "./capture-schema.ts";
import { dlesFromGnutarLists, extFromDumpe2fs, mdFromDetail, num, parseBlkidExport, parseFstab, parseOsRelease, xfsFromInfo } from "./capture-tools.ts";
import { type DiskLayout, type Disk, type Filesystem, type Luks, type Lvm, type Mount, type Partition, type Swap, SHIM_PACKAGES, byMountOrder, lvMapperPath, parseLayout, removableOrUsb } from "./layout.ts";

/**
 * A capture (capture-schema.ts) becomes a DiskLayout: one reader per tool's output (LVM
 * reports, lsblk with sfdisk and by-id, blkid probes with dumpe2fs/xfs_info, findmnt with
 * fstab, the boot facts, the system), then assembly. Pure: everything comes from the
 * document. Lookups go through Maps: a capture may name thousands of devices (issue 16).
 */

export { CAPTURE_LIMITS, type Capture, captureSchema, captureSizeProblem, captureTextProblem, parseCapture } from "./capture-schema.ts";
export { dlesFromGnutarLists, extFromDumpe2fs, mdFromDetail, parseBlkidExport, parseFstab, parseOsRelease, xfsFromInfo } from "./capture-tools.ts";

/** capture.sh, beside its parser: served at GET /capture.sh and printed by `lifeboat capture script`. */
export const captureScriptPath = new URL("./capture.sh", import.meta.url);

function flatten<T extends { children?: T[] }>(nodes: T[]): T[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children ?? [])]);
}

const isRemovable = (node: LsblkNode) => node.rm === true || node.rm === 1 || node.rm === "1";
const devicePath = (node: LsblkNode) => node.path ?? (node.name.startsWith("/") ? node.name : `/dev/${node.name}`);
type Probe = Capture["probes"][number] & { id: Record<string, string> };

/** What the readers share: the captured lsblk nodes, probes by device, LV mapper names made canonical. */
interface CaptureView {
  capture: Capture;
  /** Whole-disk nodes captured (removable and USB ones only on purpose), and all nodes below them. */
  captured: LsblkNode[];
  nodes: LsblkNode[];
  probes: Map<string, Probe>;
  /** /dev/mapper/VG-LV → /dev/VG/LV; anything else unchanged. */
  canonical: (path: string) => string;
}

/** LVM's JSON reports; only PVs on captured devices, and the VGs and LVs built on them. */
function lvmFromReports(capture: Capture, nodes: LsblkNode[]): { lvm: Lvm; canonical: (path: string) => string } {
  const rows = <T>(report: { report: Array<Record<string, T[]>> } | null, key: string): T[] => report?.report.flatMap((x) => x[key] ?? []) ?? [];
  const lvs = rows(capture.lvm.lvs, "lv").map((lv) => ({
    vg: lv.vg_name,
    name: lv.lv_name,
    uuid: lv.lv_uuid,
    sizeBytes: Number(lv.lv_size),
    path: `/dev/${lv.vg_name}/${lv.lv_name}`,
    segtype: lv.segtype,
  }));
  const mapperToLv = new Map(lvs.map((lv) => [lvMapperPath(lv.vg, lv.name), lv.path]));
  const canonical = (path: string) => mapperToLv.get(path) ?? path;
  // Only the captured devices count (capture --devices limits them).
  const known = new Set(nodes.map((n) => canonical(devicePath(n))));
  const pvs = rows(capture.lvm.pvs, "pv")
    .filter((pv) => pv.vg_name && known.has(pv.pv_name))
    .map((pv) => ({ path: pv.pv_name, uuid: pv.pv_uuid, vg: pv.vg_name, sizeBytes: Number(pv.pv_size) }));
  const vgNames = new Set(pvs.map((pv) => pv.vg));
  const vgs = rows(capture.lvm.vgs, "vg")
    .filter((vg) => vgNames.has(vg.vg_name))
    .map((vg) => ({ name: vg.vg_name, uuid: vg.vg_uuid, extentBytes: Number(vg.vg_extent_size), sizeBytes: Number(vg.vg_size) }));
  return { lvm: { pvs, vgs, lvs: lvs.filter((lv) => vgNames.has(lv.vg)) }, canonical };
}

/** `ls -l /dev/disk/by-id` as `link target` lines, by target. */
function byIdLinks(text: string | null): Map<string, string[]> {
  const links = new Map<string, string[]>();
  for (const line of (text ?? "").split("\n")) {
    const fields = line.trim().split(" ");
    if (fields.length === 2) links.set(fields[1]!, [...(links.get(fields[1]!) ?? []), fields[0]!]);
  }
  return links;
}

type SfdiskTable = NonNullable<Capture["partitionTables"][number]["sfdisk"]>["partitiontable"];

/** `sfdisk -J`: a GPT or MBR table (other labels are not recreated). */
function tableFromSfdisk(table: SfdiskTable | null): Disk["table"] {
  if (!table || (table.label !== "gpt" && table.label !== "dos")) return null;
  return {
    label: table.label,
    id: table.id,
    sectorSize: table.sectorsize ?? 512,
    firstLba: table.firstlba ?? null,
    lastLba: table.lastlba ?? null,
    partitions: table.partitions.map(
      (p, i): Partition => ({
        number: Number(/(\d+)$/.exec(p.node)?.[1] ?? i + 1),
        path: p.node,
        start: p.start,
        size: p.size,
        type: p.type.toUpperCase(),
        uuid: p.uuid ?? null,
        name: p.name ?? null,
        attrs: p.attrs ?? null,
        bootable: p.bootable === true,
      }),
    ),
  };
}

/** `lsblk -J` whole disks, with their sfdisk table and by-id links. */
function disksFromLsblk(view: CaptureView): Disk[] {
  const { capture } = view;
  const links = byIdLinks(capture.byId);
  const tables = new Map(capture.partitionTables.map((t) => [t.disk, t.sfdisk?.partitiontable ?? null]));
  const wholeDisks = view.captured.filter((n) => n.type === "disk" || (n.type === "loop" && capture.devicesFilter?.includes(devicePath(n))));
  return wholeDisks.map((node) => {
    const path = devicePath(node);
    const table = tables.get(path) ?? null;
    return {
      name: node.kname ?? node.name.replace(/^\/dev\//, ""),
      path,
      sizeBytes: num(node.size) ?? view.probes.get(path)?.sizeBytes ?? 0,
      model: node.model?.trim() || null,
      serial: node.serial?.trim() || null,
      wwn: node.wwn?.trim() || null,
      transport: node.tran ?? null,
      logicalSectorSize: num(node["log-sec"]) ?? table?.sectorsize ?? 512,
      physicalSectorSize: num(node["phy-sec"]) ?? 512,
      byId: links.get(path) ?? [],
      removable: isRemovable(node),
      table: tableFromSfdisk(table),
      multipath: null,
    };
  });
}

/** Sizes and mkfs options of one filesystem: dumpe2fs (ext*), xfs_info, the FAT size from blkid. */
function mkfsFacts(probe: Probe, type: string, mounted: FindmntNode | undefined, size: number): { options: string[]; usedBytes: number | null; sizeBytes: number } {
  let usedBytes = num(mounted?.used);
  const sizeBytes = num(mounted?.size) ?? size;
  if (/^ext[234]$/.test(type) && probe.dumpe2fs) {
    const ext = extFromDumpe2fs(probe.dumpe2fs);
    usedBytes ??= ext.usedBytes;
    return { options: ext.options, usedBytes, sizeBytes: ext.sizeBytes ?? sizeBytes };
  }
  if (type === "xfs" && probe.xfsInfo) {
    const xfs = xfsFromInfo(probe.xfsInfo);
    return { options: xfs.options, usedBytes, sizeBytes: xfs.sizeBytes ?? sizeBytes };
  }
  if (type === "vfat" && /^FAT(12|16|32)$/.test(probe.id.VERSION ?? "")) return { options: ["-F", probe.id.VERSION!.slice(3)], usedBytes, sizeBytes };
  return { options: [], usedBytes, sizeBytes };
}

/** A subvolume path as btrfs prints it (`<FS_TREE>/@`, `/@home`), relative to the top level: `@`, `@home`. */
const subvolumeName = (path: string) => path.replace(/^(?:<FS_TREE>)?\/*/, "");

/** `btrfs subvolume list` lines: the subvolume paths, sorted. */
const subvolumePaths = (text: string | null | undefined): string[] =>
  (text ?? "")
    .split("\n")
    .map((line) => subvolumeName(/\bpath (.+)$/.exec(line)?.[1] ?? ""))
    .filter(Boolean)
    .sort();

/**
 * `btrfs subvolume get-default`: "ID 268 gen 10 top level 5 path @/.snapshots/1/snapshot", or
 * "ID 5 (FS_TREE)" when none was set. The top level (ID 5) and text that says neither are null.
 */
function defaultSubvolumeFrom(text: string | null | undefined): string | null {
  const m = /^ID (\d+) .*? path (.+)$/.exec((text ?? "").split("\n")[0]!);
  return m && m[1] !== "5" ? subvolumeName(m[2]!) || null : null;
}

/** The subvolumes of one filesystem mounted with the C flag (`lsattr -d` of the mount point; FSROOT names the subvolume). */
function nocowSubvolumes(mounts: Capture["btrfs"], subvolumes: string[]): string[] {
  const known = new Set(subvolumes);
  const flagged = mounts
    .filter((m) => /^\S+/.exec(m.lsattr ?? "")?.[0].includes("C"))
    .map((m) => subvolumeName((m.fsroot ?? "").split("\n")[0]!))
    .filter((path) => known.has(path));
  return [...new Set(flagged)].sort();
}

/** The first crypttab line naming a LUKS device by UUID=… or by its path. */
function crypttabName(crypttab: Map<string, { spec: string; line: number }>, uuid: string, path: string): string | undefined {
  const [byUuid, byPath] = [crypttab.get(`UUID=${uuid}`), crypttab.get(path)];
  return (byUuid && byPath ? (byUuid.line < byPath.line ? byUuid : byPath) : (byUuid ?? byPath))?.spec;
}

/** `blkid -p` per device: LUKS containers, swap and filesystems (first probe of a device wins). */
function storageFromProbes(view: CaptureView, live: FindmntNode[]): { luks: Luks[]; swap: Swap[]; filesystems: Filesystem[] } {
  const { capture, canonical } = view;
  const liveBySource = new Map<string, FindmntNode>();
  for (const m of live) if (!liveBySource.has(canonical(m.source.replace(/\[.*$/, "")))) liveBySource.set(canonical(m.source.replace(/\[.*$/, "")), m);
  const btrfsBySource = new Map<string, Capture["btrfs"]>();
  for (const b of capture.btrfs) {
    const source = canonical(b.source);
    const same = btrfsBySource.get(source) ?? [];
    same.push(b);
    btrfsBySource.set(source, same);
  }
  const crypttab = new Map<string, { spec: string; line: number }>();
  for (const [line, entry] of parseFstab(capture.files["/etc/crypttab"] ?? null).entries()) if (!crypttab.has(entry.file)) crypttab.set(entry.file, { spec: entry.spec, line });

  const out = { luks: [] as Luks[], swap: [] as Swap[], filesystems: [] as Filesystem[] };
  const described = new Set<string>();
  for (const node of view.nodes) {
    const path = canonical(devicePath(node));
    const probe = view.probes.get(devicePath(node));
    if (!probe || described.has(path)) continue;
    const { TYPE: type, UUID: uuid, LABEL: label } = probe.id;
    const size = probe.sizeBytes ?? num(node.size) ?? 0;
    if (type === "crypto_LUKS" && uuid) {
      const opened = node.children?.find((c) => c.type === "crypt");
      const name = opened ? devicePath(opened).replace(/^\/dev\/mapper\//, "") : (crypttabName(crypttab, uuid, path) ?? `luks-${uuid}`);
      // blkid -p says the header's version (VERSION=1|2); the rest of how it was made is left to cryptsetup's defaults.
      const type = probe.id.VERSION === "1" ? "luks1" : probe.id.VERSION === "2" ? "luks2" : null;
      out.luks.push({ path, uuid, name, type, cipher: null, keySizeBits: null, hash: null });
    } else if (type === "swap") {
      out.swap.push({ dev: path, uuid: uuid ?? null, label: label ?? null, sizeBytes: size });
    } else if (probe.id.USAGE === "filesystem" && type) {
      const facts = mkfsFacts(probe, type, liveBySource.get(path), size);
      // Each mount of a btrfs lists the same subvolumes and default: the first mount's are used.
      const mounted = type === "btrfs" ? (btrfsBySource.get(path) ?? []) : [];
      const subvolumes = subvolumePaths(mounted[0]?.subvolumes);
      const btrfs = { subvolumes, defaultSubvolume: defaultSubvolumeFrom(mounted[0]?.getDefault), nocow: nocowSubvolumes(mounted, subvolumes) };
      out.filesystems.push({ dev: path, type, uuid: uuid ?? null, label: label ?? null, sizeBytes: facts.sizeBytes, usedBytes: facts.usedBytes, mkfsOptions: facts.options, ...btrfs });
    } else continue;
    described.add(path);
  }
  return out;
}

/** The subvol= option of a btrfs mount, in normal form (subvol=/x → subvol=x). */
const subvolOption = (options: string) =>
  options
    .split(",")
    .filter((o) => o.startsWith("subvol="))
    .map((o) => o.replace(/^subvol=\/?/, "subvol="))
    .join(",");

/** Mounts: the live ones (findmnt), then fstab entries for filesystems not mounted now; one per mount point. */
function mountsFrom(view: CaptureView, live: FindmntNode[], filesystems: Filesystem[]): Mount[] {
  const { canonical } = view;
  // By device, UUID and label (the first of each wins, as a scan in order would find it).
  const fsBy = { dev: new Map<string, Filesystem>(), UUID: new Map<string, Filesystem>(), LABEL: new Map<string, Filesystem>() };
  for (const fs of filesystems)
    for (const [index, key] of [[fsBy.dev, fs.dev], [fsBy.UUID, fs.uuid], [fsBy.LABEL, fs.label]] as const) if (key !== null && !index.has(key)) index.set(key, fs);
  const bySpec = (spec: string): Filesystem | undefined => {
    const eq = spec.indexOf("=");
    if (eq < 0) return fsBy.dev.get(canonical(spec));
    const key = spec.slice(0, eq);
    return key === "UUID" || key === "LABEL" ? fsBy[key].get(spec.slice(eq + 1)) : undefined;
  };
  const mounts = new Map<string, Mount>();
  const add = (fs: Filesystem | undefined, mountpoint: string, options: string) => {
    if (fs && !mounts.has(mountpoint)) mounts.set(mountpoint, { dev: fs.dev, mountpoint, fstype: fs.type, options: fs.type === "btrfs" ? subvolOption(options) : "" });
  };
  for (const m of live) add(fsBy.dev.get(canonical(m.source.replace(/\[.*$/, ""))), m.target, m.options ?? "");
  for (const entry of parseFstab(view.capture.files["/etc/fstab"] ?? null))
    if (entry.file.startsWith("/") && !entry.options.split(",").includes("noauto")) add(bySpec(entry.spec), entry.file, entry.options);
  return [...mounts.values()].sort(byMountOrder);
}

/** Boot: the loader on the EFI system partition (uefi) or in a disk's first sector (bios). */
function bootFrom(capture: Capture, disks: Disk[], mounts: Mount[], os: Record<string, string>): DiskLayout["boot"] {
  const loaders = (capture.bootloaders ?? "").split("\n").filter(Boolean);
  const efiDirs = (capture.efiDirs ?? "").split("\n").filter(Boolean);
  const uefi = capture.firmware === "uefi";
  const espMount = mounts.find((m) => m.mountpoint === "/boot/efi" || m.mountpoint === "/efi");
  const diskOf = (dev: string) => disks.find((d) => d.table?.partitions.some((p) => p.path === dev))?.path ?? null;
  return {
    firmware: capture.firmware,
    loader: loaders.some((l) => l.startsWith("grub")) ? "grub" : loaders.includes("bootctl") && uefi ? "systemd-boot" : null,
    disk: uefi ? (espMount ? diskOf(espMount.dev) : null) : (capture.bootCode.find((b) => b.grub)?.disk ?? null),
    efiDir: uefi ? (espMount?.mountpoint ?? null) : null,
    bootloaderId: uefi ? (efiDirs.map((d) => d.split("/").pop()!).find((d) => d.toUpperCase() !== "BOOT" && d !== "Linux") ?? os.ID ?? null) : null,
    efiEntries: capture.efibootmgr,
    shim: uefi && bootsThroughShim(capture),
    secureBoot: secureBootOn(capture),
  };
}

/** Secure Boot as `mokutil --sb-state` (or the SecureBoot variable) reported it; null: not known. Pure. */
function secureBootOn(capture: Pick<Capture, "secureBoot">): boolean | null {
  const said = capture.secureBoot ?? "";
  return /SecureBoot enabled/i.test(said) ? true : /SecureBoot disabled/i.test(said) ? false : null;
}

/**
 * Did the captured system start through shim? The shim and signed GRUB packages are installed
 * and either Secure Boot was on (a Debian system that booted verified came through shim, also
 * when the entry in use is the firmware's own for a disk's removable path, which names no file),
 * or the boot entry in use (efibootmgr's BootCurrent) names a shim*.efi; without efibootmgr's
 * output, the packages alone. Pure.
 */
export function bootsThroughShim(capture: Pick<Capture, "efibootmgr" | "packages" | "secureBoot">): boolean {
  const installed = new Set((capture.packages?.list ?? "").split("\n").map((l) => l.split("\t")[0]));
  if (!SHIM_PACKAGES.every((p) => installed.has(p))) return false;
  if (secureBootOn(capture)) return true;
  const nvram = capture.efibootmgr;
  if (!nvram) return true;
  const current = /^BootCurrent:\s*([0-9A-Fa-f]{4})/m.exec(nvram)?.[1];
  const entry = current ? new RegExp(`^Boot${current}\\*?\\s.*$`, "mi").exec(nvram)?.[0] : undefined;
  return entry !== undefined && /\\shim\w*\.efi/i.test(entry);
}

/** Kernel, initramfs tool, os-release, packages (`name\tversion` lines) and physical NICs. */
function systemFrom(capture: Capture, os: Record<string, string>): DiskLayout["system"] {
  const packages = capture.packages;
  return {
    kernel: capture.kernel,
    initramfsTool: capture.initramfsTool,
    os: Object.keys(os).length ? { id: os.ID ?? null, versionId: os.VERSION_ID ?? null, prettyName: os.PRETTY_NAME ?? null } : null,
    packages: packages
      ? {
          manager: packages.manager,
          list: (packages.list ?? "")
            .split("\n")
            .filter(Boolean)
            .map((line) => {
              const [name, version] = line.split("\t");
              return [name!, version ?? ""] as [string, string];
            }),
        }
      : null,
    nics: capture.nics.filter((n) => n.physical).map((n) => ({ name: n.name, mac: normalizeMac(n.mac), driver: n.driver, defaultRoute: n.defaultRoute })),
  };
}

/** DLEs: Amanda's own state files first, then what the host was told (--dle), then the admin's map. */
function dlesFrom(capture: Capture, mounts: Mount[], dleHint: Record<string, string>): Record<string, string> {
  const dles: Record<string, string> = { ...dlesFromGnutarLists(capture.amandaGnutarLists, mounts.map((m) => m.mountpoint)), ...dleHint };
  for (const line of (capture.dles ?? "").split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) dles[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return dles;
}

/** `mdadm --detail` per array, with the array's own partition table (an array of whole disks, partitioned). */
function mdArrays(capture: Capture): DiskLayout["md"] {
  const tables = new Map(capture.partitionTables.map((t) => [t.disk, t.sfdisk?.partitiontable ?? null]));
  return capture.probes.filter((p) => p.mdadm).map((p) => ({ ...mdFromDetail(p.dev, p.mdadm!), table: tableFromSfdisk(tables.get(p.dev) ?? null) }));
}

/** Turns a capture into the typed layout. Pure: everything comes from the document. */
export function layoutFromCapture(capture: Capture, dleHint: Record<string, string> = {}): DiskLayout {
  // Removable and USB disks (a backup disk, a stick) and all on them are left out unless captured on purpose.
  const captured = capture.lsblk.blockdevices.filter((n) => capture.includeRemovable || !removableOrUsb(isRemovable(n), n.tran ?? null));
  const nodes = flatten(captured);
  // LVM first: LV device names in lsblk/findmnt (/dev/mapper/vg-lv) become /dev/VG/LV.
  const { lvm, canonical } = lvmFromReports(capture, nodes);
  const probes = new Map(capture.probes.map((p) => [p.dev, { ...p, id: parseBlkidExport(p.blkid) }]));
  const view: CaptureView = { capture, captured, nodes, probes, canonical };
  const live = flatten(capture.mounts?.filesystems ?? []);
  const disks = disksFromLsblk(view);
  const storage = storageFromProbes(view, live);
  const mounts = mountsFrom(view, live, storage.filesystems);
  const os = parseOsRelease(capture.files["/etc/os-release"] ?? null);
  return parseLayout(
    {
      format: "lifeboat-layout/1",
      source: "capture",
      hostname: capture.hostname,
      capturedAt: capture.capturedAt,
      disks,
      md: mdArrays(capture),
      lvm,
      ...storage,
      mounts,
      boot: bootFrom(capture, disks, mounts, os),
      files: { fstab: capture.files["/etc/fstab"] ?? null, crypttab: capture.files["/etc/crypttab"] ?? null },
      system: systemFrom(capture, os),
      dles: dlesFrom(capture, mounts, dleHint),
    } satisfies DiskLayout,
    `capture of ${capture.hostname}`,
  );
}
