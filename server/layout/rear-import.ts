import type { Disk, DiskLayout, Filesystem, Luks, Lvm, MdArray, Mount, Partition, Swap } from "./layout.ts";
import { byMountOrder, GPT_TYPES, lvMapperPath, parseLayout } from "./layout.ts";

/**
 * Imports a ReaR `disklayout.conf` (/var/lib/rear/layout/disklayout.conf) as a layout.
 * ReaR records no disk serials, partition GUIDs or ext features, so an imported layout
 * always needs an explicit disk mapping and keeps partition sizes (used bytes unknown).
 * Lines ReaR commented out (excluded components) stay out. What Lifeboat cannot recreate
 * (REFUSED below) and unknown keywords are refused with the line number, never dropped: a
 * layout that imports is one the plan can rebuild whole.
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
  raidarray: [2, "raidarray DEV key=value..."],
  crypt: [3, "crypt /dev/mapper/NAME DEV key=value..."],
  lvmdev: [3, "lvmdev /dev/VG PVDEV [UUID]"],
  lvmgrp: [3, "lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS]"],
  lvmvol: [4, "lvmvol /dev/VG NAME SIZE[b] [LAYOUT]"],
  fs: [4, "fs DEV MOUNTPOINT TYPE key=value..."],
  swap: [2, "swap DEV key=value..."],
  btrfsmountedsubvol: [3, "btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
  btrfsnormalsubvol: [2, "btrfsnormalsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"],
};

/** Keywords ReaR writes that Lifeboat does not recreate, and why (the import refuses them by line). */
const REFUSED: Record<string, string> = {
  multipath: "multipath disks are not imported yet (their identity is the multipath WWID)",
  raiddisk: "raiddisk lines are not read yet",
  opaldisk: "self-encrypting (OPAL) disks are not set up by Lifeboat",
  btrfsnocopyonwrite: "btrfs no-copy-on-write attributes are not set by the plan yet",
  drbd: "DRBD devices are not recreated by Lifeboat",
  logicaldrive: "HP SmartArray logical drives are not recreated by Lifeboat",
  smartarray: "HP SmartArray controllers are not set up by Lifeboat",
  dasd_format: "s390 DASDs are not set up by Lifeboat",
  dasd: "s390 DASDs are not set up by Lifeboat",
  zfs: "ZFS is not recreated by Lifeboat",
};

/** Keywords read below (the switch), with those of REFUSED: anything else is an unknown keyword. */
const READ = new Set(["disk", "part", "raid", "raidarray", "crypt", "lvmdev", "lvmgrp", "lvmvol", "fs", "swap", "btrfsmountedsubvol", "btrfsnormalsubvol", "btrfsdefaultsubvol"]);

/** GPT partition types for parted flags beyond Linux's own (parted's gpt.c). */
const GPT_FLAG_TYPES: Record<string, string> = {
  prep: "9E1A2D38-C612-4316-AA26-8B49521E5A8B",
  msftdata: "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
  msftres: "E3C9E316-0B5C-4DB8-817D-F92DF00215AE",
  diag: "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
};
/** MBR types for parted msdos flags (parted's dos.c): PReP boot 0x41, FAT32 with LBA 0x0C. */
const MSDOS_FLAG_TYPES: Record<string, string> = { prep: "41", lba: "C" };
/** Flags whose MBR type depends on what parted saw before (hidden, diag): refused rather than guessed. */
const MSDOS_GUESSES = ["hidden", "diag"];
/** LV layouts the plan creates; ReaR writes thin, striped, raid and mirror ones as their layout word. */
const LV_LAYOUTS = new Set(["linear"]);

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
  /** Devices each line uses, checked once every line is read: each must be made by some line. */
  const uses: Array<{ where: string; dev: string; what: string }> = [];

  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith("#")) return;
    const w = line.split(/\s+/);
    const where = `disklayout.conf line ${i + 1}`;
    if (/^[\w-]+=/.test(w[0]!)) return void problems.push(`${where}: "${w[0]!.slice(0, 60)}" alone on a line: the end of a wrapped line? (each entry is one line)`);
    if (Object.hasOwn(REFUSED, w[0]!)) return void problems.push(`${where}: ${w[0]}: ${REFUSED[w[0]!]}`);
    if (!READ.has(w[0]!)) return void problems.push(`${where}: unknown keyword "${w[0]!.slice(0, 40)}"`);
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
        if (md.some((m) => m.path === diskPath)) return void problems.push(`${where}: partitions on the MD array ${diskPath} are not recreated by Lifeboat yet`);
        const disk = disks.find((d) => d.path === diskPath);
        if (!disk?.table || !size || !start || !partDev) return void problems.push(`${where}: partition of an unknown disk or missing fields`);
        const flags = (flagsWord ?? "none").split(",");
        const gpt = disk.table.label === "gpt";
        const number = Number(/(\d+)$/.exec(partDev)?.[1]);
        let type: string;
        const special = (table: Record<string, string>) => flags.map((f) => (Object.hasOwn(table, f) ? table[f] : undefined)).find(Boolean);
        if (gpt) {
          type = flags.includes("esp") || (flags.includes("boot") && !flags.includes("legacy_boot")) ? GPT_TYPES.esp : flags.includes("bios_grub") ? GPT_TYPES.biosBoot : flags.includes("lvm") ? GPT_TYPES.lvm : flags.includes("raid") ? GPT_TYPES.raid : flags.includes("swap") ? GPT_TYPES.swap : special(GPT_FLAG_TYPES) ?? GPT_TYPES.linux;
        } else {
          const guess = flags.find((f) => MSDOS_GUESSES.includes(f));
          if (guess) return void problems.push(`${where}: the msdos flag "${guess}" does not say the partition's type; give the layout with its type (capture.sh)`);
          type = nameOrType === "extended" ? "5" : flags.includes("esp") ? "EF" : flags.includes("lvm") ? "8E" : flags.includes("raid") ? "FD" : flags.includes("swap") ? "82" : special(MSDOS_FLAG_TYPES) ?? "83";
        }
        // ReaR master adds the partition's UUID as an 8th field.
        const partUuid = w[7] && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(w[7]) ? w[7].toUpperCase() : null;
        const p: Partition = {
          number,
          path: partDev,
          start: Math.round(Number(start) / 512),
          size: Math.round(Number(size) / 512),
          type,
          uuid: partUuid,
          name: gpt && nameOrType && nameOrType !== "rear-noname" ? unescape(nameOrType) : null,
          attrs: gpt && flags.includes("legacy_boot") ? "LegacyBIOSBootable" : null,
          bootable: !gpt && flags.includes("boot"),
        };
        disk.table.partitions.push(p);
        return;
      }
      // ReaR 2.7 and later write "raidarray"; the options are those of "raid".
      case "raid":
      case "raidarray": {
        const o = kv(w.slice(2));
        if (o.level === "container" || o.container)
          return void problems.push(`${where}: ${w[1]} is ${o.level === "container" ? "a firmware RAID container" : `an array inside the container ${o.container}`} (${o.metadata ?? "imsm/ddf"} metadata): Lifeboat recreates Linux MD arrays only`);
        for (const dev of (o.devices ?? "").split(",").filter(Boolean)) uses.push({ where, dev, what: `member of ${w[1]}` });
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
        uses.push({ where, dev: w[2]!, what: `the LUKS device ${w[1]}` });
        luks.push({ path: w[2]!, uuid: o.uuid ?? "", name: w[1]!.replace(/^\/dev\/mapper\//, "") });
        return;
      }
      case "lvmdev": {
        const vg = w[1]!.replace(/^\/dev\//, "");
        uses.push({ where, dev: w[2]!, what: `a PV of ${vg}` });
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
        // lvmvol /dev/VG NAME SIZEb LAYOUT [key:value...]; old ReaR: lvmvol /dev/VG NAME EXTENTS SECTORS.
        const vg = w[1]!.replace(/^\/dev\//, "");
        const ext = lvm.vgs.find((v) => v.name === vg)?.extentBytes ?? 4 * 1024 * 1024;
        const old = !w[3]!.endsWith("b") && (w[4] === undefined || /^\d+$/.test(w[4]));
        const size = old ? (w[4] ? Number(w[4]) * 512 : Number(w[3]) * ext) : Number(w[3]!.slice(0, -1));
        const layout = old ? "linear" : (w[4] ?? "linear");
        const extra = w.slice(5).filter((x) => /^(thinpool|stripes|mirrors|origin):/.test(x) && !/^(stripes:1|mirrors:0)$/.test(x));
        if (!LV_LAYOUTS.has(layout) || extra.length)
          return void problems.push(`${where}: the LV ${vg}/${w[2]} is ${[layout, ...extra].join(" ")}: Lifeboat creates linear LVs only`);
        if (!Number.isSafeInteger(size) || size <= 0) return void problems.push(`${where}: bad LV size "${w[3]}"`);
        lvm.lvs.push({ vg, name: w[2]!, uuid: "", sizeBytes: size, path: `/dev/${vg}/${w[2]}`, segtype: "linear" });
        return;
      }
      case "fs": {
        // fs DEV MOUNTPOINT TYPE key=value...
        const [, dev, mountpoint, type] = w;
        uses.push({ where, dev: dev!, what: `the ${type} filesystem on ${mountpoint}` });
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
        uses.push({ where, dev: w[1]!, what: "swap" });
        swap.push({ dev: w[1]!, uuid: o.uuid || null, label: o.label || null, sizeBytes: 0 });
        return;
      }
      case "btrfsmountedsubvol": {
        // btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH
        const [, dev, mountpoint, , path] = w;
        if (!filesystems.some((f) => f.dev === dev && f.type === "btrfs")) return void problems.push(`${where}: ${mountpoint} mounts a subvolume of ${dev}, which no "fs ... btrfs" line before it makes`);
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
      case "btrfsdefaultsubvol": {
        // btrfsdefaultsubvol DEV MOUNTPOINT ID PATH: only the top level (id 5, "/") is what mkfs.btrfs leaves as the default.
        const [, dev, , id, path] = w;
        if (id !== "5" && path !== "/" && path !== undefined)
          return void problems.push(`${where}: the default subvolume of ${dev} is ${path} (id ${id}); the plan does not set a default subvolume yet, so the restored system would boot the wrong tree`);
        return;
      }
    }
  });
  if (!problems.length && disks.length === 0) problems.push("disklayout.conf: no disk line: not a ReaR disk layout (or every disk is excluded)");
  // What each line uses must be made by some line (a disk, partition, MD array, LUKS mapping or LV).
  const made = new Set<string>([
    ...disks.map((d) => d.path),
    ...disks.flatMap((d) => d.table?.partitions.map((p) => p.path) ?? []),
    ...md.map((m) => m.path),
    ...luks.map((l) => `/dev/mapper/${l.name}`),
    ...lvm.lvs.flatMap((l) => [l.path, lvMapperPath(l.vg, l.name)]),
  ]);
  for (const u of uses) if (!made.has(u.dev)) problems.push(`${u.where}: ${u.dev} (${u.what}) is made by no line of the file`);
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
