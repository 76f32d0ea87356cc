import type { Disk, DiskLayout, Filesystem, Luks, Lvm, MdArray, Mount, Partition, Swap } from "./layout.ts";
import { byMountOrder, GPT_TYPES, lvMapperPath, parseLayout } from "./layout.ts";

/**
 * Imports a ReaR `disklayout.conf` (/var/lib/rear/layout/disklayout.conf) as a layout.
 * ReaR records no disk serials, partition GUIDs or ext features, so an imported layout
 * always needs an explicit disk mapping and keeps partition sizes (used bytes unknown).
 * Lines ReaR commented out (excluded components) stay out.
 */

/** `key=value` words after the positional fields. */
function kv(words: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const w of words) {
    const i = w.indexOf("=");
    if (i > 0) out[w.slice(0, i)] = w.slice(i + 1);
  }
  return out;
}

/** ReaR writes spaces in names as %20 (and other bytes the same way). */
const unescape = (s: string) => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/**
 * The positional fields each keyword needs (the keyword counted), with the form named in the
 * one-line error a shorter line gets. Keywords not listed are skipped or check their own.
 */
const NEEDS: Record<string, [number, string]> = {
  disk: [3, "disk DEV SIZE LABEL"],
  raid: [2, "raid DEV key=value..."],
  crypt: [3, "crypt /dev/mapper/NAME DEV key=value..."],
  lvmdev: [3, "lvmdev /dev/VG PVDEV [UUID]"],
  lvmgrp: [3, "lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS]"],
  lvmvol: [4, "lvmvol /dev/VG NAME SIZE[b] [LAYOUT]"],
  fs: [4, "fs DEV MOUNTPOINT TYPE key=value..."],
  swap: [2, "swap DEV key=value..."],
  btrfsmountedsubvol: [3, "btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
  btrfsnormalsubvol: [2, "btrfsnormalsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
};

export function layoutFromRear(text: string, hostname: string, capturedAt = new Date().toISOString()): DiskLayout {
  const disks: Disk[] = [];
  const md: MdArray[] = [];
  const lvm: Lvm = { pvs: [], vgs: [], lvs: [] };
  const luks: Luks[] = [];
  const filesystems: Filesystem[] = [];
  const swap: Swap[] = [];
  const mounts: Mount[] = [];
  const subvols = new Map<string, string[]>();
  const problems: string[] = [];

  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const w = line.split(/\s+/);
    const where = `disklayout.conf line ${i + 1}`;
    const needs = Object.hasOwn(NEEDS, w[0]!) ? NEEDS[w[0]!] : undefined;
    if (needs && w.length < needs[0]) return void problems.push(`${where}: expected "${needs[1]}"`);
    switch (w[0]) {
      case "disk": {
        const [, path, size, label] = w as [string, string, string, string?];
        disks.push({
          name: path.replace(/^\/dev\//, ""),
          path,
          sizeBytes: Number(size),
          model: null,
          serial: null,
          wwn: null,
          transport: null,
          logicalSectorSize: 512,
          physicalSectorSize: 512,
          byId: [],
          removable: false,
          table: label === "gpt" || label === "msdos" ? { label: label === "gpt" ? "gpt" : "dos", id: "", sectorSize: 512, firstLba: null, lastLba: null, partitions: [] } : null,
        });
        return;
      }
      case "part": {
        // part DISK SIZE START NAME|TYPE FLAGS PARTDEV
        const [, diskPath, size, start, nameOrType, flagsWord, partDev] = w;
        const disk = disks.find((d) => d.path === diskPath);
        if (!disk?.table || !size || !start || !partDev) return void problems.push(`${where}: partition of an unknown disk or missing fields`);
        const flags = (flagsWord ?? "none").split(",");
        const gpt = disk.table.label === "gpt";
        const number = Number(/(\d+)$/.exec(partDev)?.[1]);
        let type: string;
        if (gpt) {
          type = flags.includes("esp") || (flags.includes("boot") && !flags.includes("legacy_boot")) ? GPT_TYPES.esp : flags.includes("bios_grub") ? GPT_TYPES.biosBoot : flags.includes("lvm") ? GPT_TYPES.lvm : flags.includes("raid") ? GPT_TYPES.raid : flags.includes("swap") ? GPT_TYPES.swap : GPT_TYPES.linux;
        } else {
          type = nameOrType === "extended" ? "5" : flags.includes("esp") ? "EF" : flags.includes("lvm") ? "8E" : flags.includes("raid") ? "FD" : flags.includes("swap") ? "82" : "83";
        }
        const p: Partition = {
          number,
          path: partDev,
          start: Math.round(Number(start) / 512),
          size: Math.round(Number(size) / 512),
          type,
          uuid: null,
          name: gpt && nameOrType && nameOrType !== "rear-noname" ? unescape(nameOrType) : null,
          attrs: gpt && flags.includes("legacy_boot") ? "LegacyBIOSBootable" : null,
          bootable: !gpt && flags.includes("boot"),
        };
        disk.table.partitions.push(p);
        return;
      }
      case "raid": {
        const o = kv(w.slice(2));
        md.push({
          path: w[1]!,
          name: o.name ?? null,
          level: o.level ?? "raid1",
          metadata: o.metadata ?? "1.2",
          uuid: o.uuid ?? "",
          members: (o.devices ?? "").split(",").filter(Boolean),
          sizeBytes: Number(o.size ?? 0) * 1024,
        });
        return;
      }
      case "crypt": {
        const o = kv(w.slice(3));
        luks.push({ path: w[2]!, uuid: o.uuid ?? "", name: w[1]!.replace(/^\/dev\/mapper\//, "") });
        return;
      }
      case "lvmdev": {
        const vg = w[1]!.replace(/^\/dev\//, "");
        lvm.pvs.push({ path: w[2]!, uuid: w[3] ?? "", vg, sizeBytes: 0 });
        return;
      }
      case "lvmgrp": {
        // lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS] [SIZE]
        const vg = w[1]!.replace(/^\/dev\//, "");
        const ext = Number(w[2]) * 1024;
        lvm.vgs.push({ name: vg, uuid: "", extentBytes: ext, sizeBytes: Number(w[3] ?? 0) * ext });
        return;
      }
      case "lvmvol": {
        // lvmvol /dev/VG NAME SIZE[b] LAYOUT (old ReaR: size in extents without "b")
        const vg = w[1]!.replace(/^\/dev\//, "");
        const ext = lvm.vgs.find((v) => v.name === vg)?.extentBytes ?? 4 * 1024 * 1024;
        const size = w[3]!.endsWith("b") ? Number(w[3]!.slice(0, -1)) : Number(w[3]) * ext;
        lvm.lvs.push({ vg, name: w[2]!, uuid: "", sizeBytes: size, path: `/dev/${vg}/${w[2]}`, segtype: w[4] ?? "linear" });
        return;
      }
      case "fs": {
        // fs DEV MOUNTPOINT TYPE key=value...
        const [, dev, mountpoint, type] = w;
        const o = kv(w.slice(4));
        const opts: string[] = [];
        if (/^ext[234]$/.test(type!)) {
          if (o.blocksize) opts.push("-b", o.blocksize);
          if (o.bytes_per_inode) opts.push("-i", o.bytes_per_inode);
        }
        filesystems.push({ dev: dev!, type: type!, uuid: o.uuid || null, label: o.label ? unescape(o.label) : null, sizeBytes: 0, usedBytes: null, mkfsOptions: opts, subvolumes: [] });
        mounts.push({ dev: dev!, mountpoint: mountpoint!, fstype: type!, options: "" });
        return;
      }
      case "swap": {
        const o = kv(w.slice(2));
        swap.push({ dev: w[1]!, uuid: o.uuid || null, label: o.label || null, sizeBytes: 0 });
        return;
      }
      case "btrfsmountedsubvol": {
        // btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH
        const [, dev, mountpoint, , path] = w;
        if (!path || path === "/") return;
        subvols.set(dev!, [...(subvols.get(dev!) ?? []), path]);
        if (mountpoint !== "/" || !mounts.some((m) => m.mountpoint === "/"))
          mounts.push({ dev: dev!, mountpoint: mountpoint!, fstype: "btrfs", options: `subvol=${path}` });
        else mounts.find((m) => m.mountpoint === "/")!.options = `subvol=${path}`;
        return;
      }
      case "btrfsnormalsubvol": {
        const [, dev, , , path] = w;
        if (path && path !== "/") subvols.set(dev!, [...(subvols.get(dev!) ?? []), path]);
        return;
      }
      default:
        // Other keywords (opaldisk, multipath, btrfsdefaultsubvol…) are not needed to recreate.
        return;
    }
  });
  if (problems.length) throw new Error(problems[0]);

  // ReaR names LVs /dev/mapper/VG-LV; layouts use /dev/VG/LV.
  const canon = new Map(lvm.lvs.map((l) => [lvMapperPath(l.vg, l.name), l.path]));
  const c = (p: string) => canon.get(p) ?? p;
  for (const f of filesystems) {
    f.dev = c(f.dev);
    f.subvolumes = [...new Set(subvols.get(f.dev) ?? [])].sort();
  }
  for (const s of swap) s.dev = c(s.dev);
  for (const m of mounts) m.dev = c(m.dev);
  for (const x of luks) x.path = c(x.path);
  for (const d of disks) d.table?.partitions.sort((a, b) => a.number - b.number);
  mounts.sort(byMountOrder);
  // Sizes ReaR does not state: the device's size.
  const sizeOf = (dev: string) =>
    disks.flatMap((d) => d.table?.partitions ?? []).find((p) => p.path === dev)?.size ?? 0;
  for (const f of filesystems) f.sizeBytes = sizeOf(f.dev) * 512 || (lvm.lvs.find((l) => l.path === f.dev)?.sizeBytes ?? 0);
  for (const s of swap) s.sizeBytes = sizeOf(s.dev) * 512 || (lvm.lvs.find((l) => l.path === s.dev)?.sizeBytes ?? 0);

  const esp = mounts.find((m) => m.mountpoint === "/boot/efi");
  return parseLayout(
    {
      format: "lifeboat-layout/1",
      source: "rear",
      hostname,
      capturedAt,
      disks,
      md,
      lvm,
      luks,
      filesystems,
      swap,
      mounts,
      boot: { firmware: esp ? "uefi" : "bios", loader: "grub", disk: null, efiDir: esp?.mountpoint ?? null, bootloaderId: null, efiEntries: null },
      files: { fstab: null, crypttab: null },
      system: { kernel: null, initramfsTool: null, os: null, packages: null, nics: [] },
      dles: {},
    } satisfies DiskLayout,
    "disklayout.conf",
  );
}
