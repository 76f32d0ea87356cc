import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { extFromDumpe2fs, layoutFromCapture, parseBlkidExport, parseCapture, parseFstab, xfsFromInfo } from "../../../server/layout/layout-capture.ts";
import { diffLayouts, describeLayout } from "../../../server/layout/layout-text.ts";
import { type DiskLayout, parseLayout, partitionPath } from "../../../server/layout/layout.ts";
import { layoutFromRear } from "../../../server/layout/rear-import.ts";
import { layoutProblem } from "../../../server/layout/layout-validate.ts";
import { FIXTURES, fixtureLayout } from "./fixtures.ts";

const GiB = 1024 ** 3;

/** The one-line refusal of a ReaR file, or "imported". */
const err = (text: string) => {
  try {
    layoutFromRear(text, "h");
  } catch (e) {
    return (e as Error).message;
  }
  return "imported";
};

describe("capture documents → DiskLayout", () => {
  for (const name of FIXTURES)
    it(`${name}: parses into a valid layout`, () => {
      const l = fixtureLayout(name);
      expect(() => parseLayout(JSON.parse(JSON.stringify(l)))).not.toThrow();
      expect(describeLayout(l)).toContain(l.disks[0]!.path);
    });

  it("single disk MBR: ext4 root with used bytes from findmnt, swap in an extended partition, bootable flag", () => {
    const l = fixtureLayout("mbr-ext4");
    expect(l.disks).toHaveLength(1);
    const t = l.disks[0]!.table!;
    expect(t.label).toBe("dos");
    expect(t.id).toMatch(/^0x[0-9a-f]{8}$/);
    expect(t.partitions.map((p) => [p.path, p.type, p.bootable])).toEqual([
      ["/dev/sda1", "83", true],
      ["/dev/sda2", "5", false],
      ["/dev/sda5", "82", false],
    ]);
    expect(l.filesystems).toHaveLength(1);
    expect(l.filesystems[0]).toMatchObject({ dev: "/dev/sda1", type: "ext4", label: "root" });
    expect(l.filesystems[0]!.usedBytes).toBeGreaterThan(3 * 1024 * 1024);
    expect(l.filesystems[0]!.mkfsOptions).toEqual(expect.arrayContaining(["-O", "-b", "-I"]));
    expect(l.swap.map((s) => s.dev)).toEqual(["/dev/sda5"]);
    expect(l.mounts).toEqual([{ dev: "/dev/sda1", mountpoint: "/", fstype: "ext4", options: "" }]);
    expect(l.disks[0]!.serial).toBe("QM00001");
  });

  it("GPT UEFI: ESP, root, swap; EFI loader id from the EFI directories", () => {
    const l = fixtureLayout("gpt-uefi");
    expect(l.boot).toMatchObject({ firmware: "uefi", loader: "grub", disk: "/dev/sda", efiDir: "/boot/efi", bootloaderId: "debian" });
    expect(l.disks[0]!.table!.partitions.map((p) => p.name)).toEqual(["EFI System Partition", "root", "swap"]);
    expect(l.filesystems.map((f) => [f.type, f.mkfsOptions.slice(0, 2)])).toEqual([
      ["vfat", ["-F", "32"]],
      ["ext4", ["-O", expect.stringContaining("has_journal")]],
    ]);
    expect(l.filesystems[1]!.uuid).toBe("5f1e6a52-4a0a-4f8e-9c1b-6c3f1f2d7a10");
    expect(l.mounts.map((m) => m.mountpoint)).toEqual(["/", "/boot/efi"]);
  });

  it("MD RAID1 + LVM: array members, PV on the array, LVs as /dev/VG/LV, filesystems on LVs", () => {
    const l = fixtureLayout("md-raid1-lvm");
    expect(l.md).toEqual([
      { path: "/dev/md0", name: "fixture:0", level: "raid1", metadata: "1.2", uuid: "3f5c1a2b:9d8e7f60:12345678:abcdef01", members: ["/dev/sda2", "/dev/sdb2"], sizeBytes: 20952064 * 1024, table: null },
    ]);
    expect(l.lvm.pvs).toEqual([{ path: "/dev/md0", uuid: "Hj3kLm-nOpQ-rStU-vWxY-z012-3456-789abc", vg: "vg0", sizeBytes: 21449670656 }]);
    expect(l.lvm.lvs.map((x) => x.path)).toEqual(["/dev/vg0/root", "/dev/vg0/swap", "/dev/vg0/home"]);
    expect(l.filesystems.map((f) => f.dev)).toEqual(["/dev/vg0/root", "/dev/vg0/home"]);
    expect(l.swap.map((s) => s.dev)).toEqual(["/dev/vg0/swap"]);
    expect(l.mounts.map((m) => [m.dev, m.mountpoint])).toEqual([
      ["/dev/vg0/root", "/"],
      ["/dev/vg0/home", "/home"],
    ]);
    expect(l.disks[0]!.byId).toContain("/dev/disk/by-id/wwn-0x50014ee2b0000001");
  });

  it("LUKS + LVM: header UUID and dm name only (never keys), PV on the opened mapping", () => {
    const l = fixtureLayout("luks-lvm");
    const luks = { path: "/dev/nvme0n1p3", uuid: "2c1e4b7a-6d5f-4e3a-9b8c-7d6e5f4a3b2c", name: "luks-2c1e4b7a-6d5f-4e3a-9b8c-7d6e5f4a3b2c" };
    // blkid -p says the header's version (a LUKS1 header is recreated LUKS1); cryptsetup's defaults for the rest.
    expect(l.luks).toEqual([{ ...luks, type: "luks2", cipher: null, keySizeBits: null, hash: null }]);
    const v1 = readFileSync(fileURLToPath(new URL("../../fixtures/layouts/luks-lvm.capture.json", import.meta.url)), "utf8").replace("VERSION=2\\nTYPE=crypto_LUKS", "VERSION=1\\nTYPE=crypto_LUKS");
    expect(layoutFromCapture(parseCapture(JSON.parse(v1))).luks).toEqual([{ ...luks, type: "luks1", cipher: null, keySizeBits: null, hash: null }]);
    expect(l.lvm.pvs[0]!.path).toBe("/dev/mapper/luks-2c1e4b7a-6d5f-4e3a-9b8c-7d6e5f4a3b2c");
    expect(l.system).toMatchObject({ initramfsTool: "dracut", os: { id: "fedora" } });
    expect(l.mounts.map((m) => m.mountpoint)).toEqual(["/", "/boot", "/home", "/boot/efi"]);
    expect(JSON.stringify(l)).not.toMatch(/passphrase|keyfile/i);
  });

  it("btrfs: subvolumes from `btrfs subvolume list`, subvol= mount options", () => {
    const l = fixtureLayout("btrfs-subvols");
    const fs = l.filesystems.find((f) => f.type === "btrfs")!;
    expect(fs.subvolumes).toEqual(["@", "@home"]);
    expect(l.mounts.filter((m) => m.fstype === "btrfs")).toEqual([
      { dev: "/dev/nvme0n1p2", mountpoint: "/", fstype: "btrfs", options: "subvol=@" },
      { dev: "/dev/nvme0n1p2", mountpoint: "/home", fstype: "btrfs", options: "subvol=@home" },
    ]);
  });

  describe("btrfs default subvolume and NOCOW subvolumes from capture.sh (issue 26 item 4)", () => {
    const doc = () => JSON.parse(readFileSync(fileURLToPath(new URL("../../fixtures/layouts/btrfs-subvols.capture.json", import.meta.url)), "utf8"));
    const subvolumes = "ID 256 gen 7 top level 5 path <FS_TREE>/@\nID 257 gen 7 top level 5 path <FS_TREE>/@home\nID 258 gen 9 top level 256 path <FS_TREE>/@/.snapshots/1/snapshot\n";
    /** The btrfs filesystem of the fixture, its two mounts (/@ and /@home) given these tool outputs. */
    const btrfsOf = (getDefault: string | null, lsattr: [string | null, string | null], fsroots: [string | null, string | null] = ["/@\n", "/@home\n"]) => {
      const d = doc();
      d.btrfs = d.btrfs.map((b: object, i: number) => ({ ...b, subvolumes, getDefault, fsroot: fsroots[i], lsattr: lsattr[i] }));
      return layoutFromCapture(parseCapture(d)).filesystems.find((f) => f.type === "btrfs")!;
    };
    const plain = "---------------------- /mnt\n";
    const nocow = "---------------C------ /mnt\n";

    it("get-default with a path is the default subvolume, in the normal form of `subvolumes`", () => {
      const fs = btrfsOf("ID 258 gen 10 top level 256 path @/.snapshots/1/snapshot\n", [plain, plain]);
      expect([fs.subvolumes, fs.defaultSubvolume, fs.nocow]).toEqual([["@", "@/.snapshots/1/snapshot", "@home"], "@/.snapshots/1/snapshot", []]);
      expect(btrfsOf("ID 256 gen 10 top level 5 path <FS_TREE>/@\n", [plain, plain]).defaultSubvolume).toBe("@");
    });

    it("ID 5 (the top level), garbage, nothing: no default subvolume", () => {
      for (const text of ["ID 5 (FS_TREE)\n", "ID 5 gen 10 top level 0 path <FS_TREE>\n", "garbage path @\n", "ID x gen 1 top level 5 path @\n", "", null])
        expect(btrfsOf(text, [plain, plain]).defaultSubvolume, JSON.stringify(text)).toBeNull();
    });

    it("a default that is none of the listed subvolumes is a one-line refusal of the upload, not a crash", () => {
      const d = doc();
      d.btrfs = d.btrfs.map((b: object) => ({ ...b, getDefault: "ID 300 gen 10 top level 5 path ../etc\n" }));
      expect(layoutProblem(layoutFromCapture(parseCapture(d)))).toMatch(/^filesystems\.\d+\.defaultSubvolume: "\.\.\/etc" is not one of the filesystem's subvolumes$/);
    });

    it("NOCOW: the subvolumes mounted with the C flag, sorted; mounts of no subvolume and odd text ignored", () => {
      expect(btrfsOf(null, [nocow, nocow]).nocow).toEqual(["@", "@home"]);
      expect(btrfsOf(null, [plain, nocow]).nocow).toEqual(["@home"]);
      expect(btrfsOf(null, [null, "C"]).nocow).toEqual(["@home"]);
      // The C flag on a mount of a directory (a bind mount), of the top level, or of nothing known.
      expect(btrfsOf(null, [nocow, nocow], ["/@/var/lib\n", "/\n"]).nocow).toEqual([]);
      expect(btrfsOf(null, [nocow, nocow], [null, "/../@home/../x\n"]).nocow).toEqual([]);
      for (const odd of ["lsattr: Operation not supported", "\nC", "", " C /mnt"]) expect(btrfsOf(null, [odd, odd]).nocow, JSON.stringify(odd)).toEqual([]);
    });
  });

  it("xfs: mkfs options from xfs_info (crc, reflink, inode size, block size)", () => {
    const l = fixtureLayout("xfs");
    for (const f of l.filesystems) {
      expect(f.type).toBe("xfs");
      expect(f.mkfsOptions.join(" ")).toMatch(/-m crc=1,finobt=1,.*reflink=1/);
      expect(f.mkfsOptions.join(" ")).toContain("-i size=512");
      expect(f.mkfsOptions.join(" ")).toContain("-b size=4096");
    }
    expect(l.disks[0]!.table!.partitions[0]!.type).toBe("21686148-6449-6E6F-744E-656564454649");
  });

  it("multiple disks: both disks, each with its own table and filesystem", () => {
    const l = fixtureLayout("multi-disk");
    expect(l.disks.map((d) => [d.path, d.table?.label, d.serial])).toEqual([
      ["/dev/sda", "gpt", "QM00005"],
      ["/dev/sdb", "dos", "QM00006"],
    ]);
    expect(l.mounts.map((m) => [m.dev, m.mountpoint])).toEqual([
      ["/dev/sda2", "/"],
      ["/dev/sdb1", "/var/lib/data"],
    ]);
  });

  it("a bad capture is one line naming the key", () => {
    const doc = JSON.parse(readFileSync(fileURLToPath(new URL("../../fixtures/layouts/mbr-ext4.capture.json", import.meta.url)), "utf8"));
    doc.partitionTables[0].sfdisk.partitiontable.partitions[0].start = "x";
    expect(() => parseCapture(doc)).toThrow(/^capture document: partitionTables\.0\.sfdisk\.partitiontable\.partitions\.0\.start: /);
    expect(() => parseCapture({ format: "something else" })).toThrow(/^capture document: format/);
  });
});

describe("tool output parsers", () => {
  it("blkid export values lose their backslash escapes", () => {
    expect(parseBlkidExport('LABEL=a\\ b\\"c\\$d\nUUID=1234\n')).toEqual({ LABEL: 'a b"c$d', UUID: "1234" });
  });

  it("dumpe2fs: features pinned both ways, used = blocks − free − overhead", () => {
    const text = ["Filesystem features:      has_journal ext_attr extent 64bit flex_bg metadata_csum", "Block count:              1000", "Free blocks:              600", "Overhead clusters:        100", "Block size:               4096", "Inode count:              256", "Inode size:\t          256"].join("\n");
    const r = extFromDumpe2fs(text);
    expect(r.usedBytes).toBe(300 * 4096);
    expect(r.options[1]).toBe("has_journal,extent,64bit,metadata_csum,flex_bg,^huge_file,^dir_nlink,^extra_isize");
    expect(r.options.slice(2)).toEqual(["-b", "4096", "-I", "256", "-i", "16000"]);
  });

  it("xfs_info: crc=0 keeps only crc=0 (the other features need crc)", () => {
    const info = "meta-data=/dev/sdb1 isize=256 agcount=4, agsize=1 blks\n         =  sectsz=512 attr=2, projid32bit=1\n         =  crc=0 finobt=0, sparse=0, rmapbt=0\ndata     =  bsize=4096 blocks=1000, imaxpct=25\n";
    expect(xfsFromInfo(info)).toEqual({ options: ["-m", "crc=0", "-i", "size=256", "-b", "size=4096"], sizeBytes: 4096000 });
  });

  it("fstab: comments, spaces as \\040, noauto kept for the caller to judge", () => {
    expect(parseFstab("# c\n\nUUID=1 /my\\040disk ext4 defaults,noauto 0 2\n")).toEqual([{ spec: "UUID=1", file: "/my disk", type: "ext4", options: "defaults,noauto" }]);
  });

  it("partition device names follow the kernel's rule", () => {
    expect(partitionPath("/dev/sda", 2)).toBe("/dev/sda2");
    expect(partitionPath("/dev/nvme0n1", 2)).toBe("/dev/nvme0n1p2");
    expect(partitionPath("/dev/loop7", 1)).toBe("/dev/loop7p1");
    expect(partitionPath("/dev/mmcblk0", 1)).toBe("/dev/mmcblk0p1");
  });
});

describe("ReaR disklayout.conf import", () => {
  const text = readFileSync(fileURLToPath(new URL("../../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url)), "utf8");

  it("reads disks, partitions (bytes → sectors, flags → types), LVM, filesystems, swap; skips commented lines", () => {
    const l = layoutFromRear(text, "oldbox", "2024-01-15T10:30:00Z");
    expect(l.source).toBe("rear");
    const t = l.disks[0]!.table!;
    expect(t.partitions.map((p) => [p.path, p.start, p.size, p.type, p.name])).toEqual([
      ["/dev/sda1", 2048, 2048, "21686148-6449-6E6F-744E-656564454649", null],
      ["/dev/sda2", 4096, 1048576, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "boot part"],
      ["/dev/sda3", 1052672, 40890334, "E6D6D379-F507-44C2-A23C-238F2A3DF928", null],
    ]);
    expect(l.lvm.vgs).toEqual([{ name: "system", uuid: "", extentBytes: 4 * 1024 * 1024, sizeBytes: 4991 * 4 * 1024 * 1024 }]);
    expect(l.lvm.lvs.map((x) => [x.path, x.sizeBytes])).toEqual([
      ["/dev/system/root", 15 * GiB],
      ["/dev/system/swap", 2 * GiB],
    ]);
    expect(l.filesystems.map((f) => [f.dev, f.type, f.uuid, f.label, f.mkfsOptions])).toEqual([
      ["/dev/system/root", "xfs", "4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809", null, []],
      ["/dev/sda2", "ext4", "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a", "boot", ["-b", "4096", "-i", "16384"]],
    ]);
    expect(l.swap[0]).toMatchObject({ dev: "/dev/system/swap", uuid: "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b" });
    expect(l.mounts.map((m) => m.mountpoint)).toEqual(["/", "/boot"]);
    expect(JSON.stringify(l)).not.toContain("excluded");
    expect(l.disks[0]!.serial).toBeNull();
  });

  it("a broken line names its line number", () => {
    expect(() => layoutFromRear("disk /dev/sda 100 gpt\npart /dev/sdz 1 2 x none /dev/sdz1\n", "h")).toThrow(/line 2/);
  });

  it.each([
    ["lvmvol /dev/vg lv", 'disklayout.conf line 2: expected "lvmvol /dev/VG NAME SIZE[b] [LAYOUT]"'],
    ["crypt", 'disklayout.conf line 2: expected "crypt /dev/mapper/NAME DEV key=value..."'],
    ["lvmdev", 'disklayout.conf line 2: expected "lvmdev /dev/VG PVDEV [UUID]"'],
    ["lvmdev /dev/vg", 'disklayout.conf line 2: expected "lvmdev /dev/VG PVDEV [UUID]"'],
    ["lvmgrp", 'disklayout.conf line 2: expected "lvmgrp /dev/VG EXTENTSIZE_KIB [EXTENTS]"'],
    ["raid", 'disklayout.conf line 2: expected "raid DEV key=value..."'],
    ["fs /dev/sda1 /", 'disklayout.conf line 2: expected "fs DEV MOUNTPOINT TYPE key=value..."'],
    ["swap", 'disklayout.conf line 2: expected "swap DEV key=value..."'],
    ["btrfsmountedsubvol /dev/sda1", 'disklayout.conf line 2: expected "btrfsmountedsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"'],
    ["btrfsnormalsubvol", 'disklayout.conf line 2: expected "btrfsnormalsubvol DEV MOUNTPOINT OPTIONS SUBVOLPATH"'],
  ])("a short line %j is a one-line error naming its line (lvmvol, crypt, lvmdev were raw TypeErrors)", (line, message) => {
    expect(() => layoutFromRear(`disk /dev/sda 100 gpt\n${line}\n`, "h")).toThrow(new Error(message));
  });
});

describe("ReaR files as written in the field (issue 26)", () => {
  const two = "disk /dev/sda 10737418240 gpt\ndisk /dev/sdb 10737418240 gpt\n";
  const raidParts = "part /dev/sda 10736369664 1048576 rear-noname raid /dev/sda1\npart /dev/sdb 10736369664 1048576 rear-noname raid /dev/sdb1\n";

  it("raidarray (ReaR 2.7+) is read like raid: the array, its members, the filesystem on it", () => {
    const l = layoutFromRear(
      `${two}${raidParts}raidarray /dev/md0 metadata=1.2 level=raid1 raid-devices=2 uuid=8d05eb84:2de831d1:dfed54b2:ad592118 name=any:root devices=/dev/sda1,/dev/sdb1\nfs /dev/md0 / ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n`,
      "h",
    );
    expect(l.md.map((m) => [m.path, m.level, m.metadata, m.uuid, m.members])).toEqual([["/dev/md0", "raid1", "1.2", "8d05eb84:2de831d1:dfed54b2:ad592118", ["/dev/sda1", "/dev/sdb1"]]]);
    expect(l.filesystems.map((f) => f.dev)).toEqual(["/dev/md0"]);
  });

  it.each([
    ["an IMSM container", `${two}raidarray /dev/md127 metadata=imsm level=container raid-devices=2 uuid=4d5cf215:80024c95:e19fdff4:2fba35a8 devices=/dev/sda,/dev/sdb\n`, "disklayout.conf line 3: /dev/md127 is a firmware RAID container (imsm metadata): Lifeboat recreates Linux MD arrays only"],
    ["an array in a container", `${two}raidarray /dev/md126 level=raid1 raid-devices=2 container=/dev/md127 devices=/dev/sda,/dev/sdb\n`, "disklayout.conf line 3: /dev/md126 is an array inside the container /dev/md127 (imsm/ddf metadata): Lifeboat recreates Linux MD arrays only"],
    ["partitions on an MD array with no raiddisk line for it", `${two}raidarray /dev/md127 metadata=1.2 level=raid1 raid-devices=2 devices=/dev/sda,/dev/sdb\npart /dev/md127 1048576 1048576 rear-noname none /dev/md127p1\n`, "disklayout.conf line 4: /dev/md127 is an MD array with partitions, but no raiddisk line before them says its partition table (gpt or msdos)"],
    ["a raiddisk line before its raidarray line", `${two}raiddisk /dev/md127 10733223936 gpt\n`, "disklayout.conf line 3: /dev/md127 is made by no raidarray line before it"],
    ["a raiddisk line with a field too many", `${two}raidarray /dev/md127 metadata=1.2 level=raid1 raid-devices=2 devices=/dev/sda,/dev/sdb\nraiddisk /dev/md127 10733223936 gpt extra\n`, 'disklayout.conf line 4: expected "raiddisk /dev/mdN SIZE [LABEL]"'],
    ["a raiddisk size that is no number", `${two}raidarray /dev/md127 metadata=1.2 level=raid1 raid-devices=2 devices=/dev/sda,/dev/sdb\nraiddisk /dev/md127 10G gpt\n`, 'disklayout.conf line 4: raiddisk /dev/md127: "10G" is not a size in bytes'],
    ["a default subvolume on no btrfs", "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nbtrfsdefaultsubvol /dev/sda1 / 268 @/.snapshots/1/snapshot\n", 'disklayout.conf line 3: the default subvolume @/.snapshots/1/snapshot is on /dev/sda1, which no "fs ... btrfs" line before it makes'],
    ["NOCOW on a subvolume no line makes", "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / btrfs uuid=1 label=\nbtrfsnocopyonwrite @/var/lib/mysql\n", "disklayout.conf line 4: btrfsnocopyonwrite @/var/lib/mysql: no btrfs filesystem of the file has that subvolume"],
    ["a thin pool", "disk /dev/sda 10737418240 gpt\nlvmvol /dev/vg pool 5368709120b thin,pool chunksize:65536\n", "disklayout.conf line 2: the LV vg/pool is thin,pool: Lifeboat creates linear LVs only"],
    ["a thin LV", "disk /dev/sda 10737418240 gpt\nlvmvol /dev/vg data 5368709120b thin,sparse thinpool:pool\n", "disklayout.conf line 2: the LV vg/data is thin,sparse thinpool:pool: Lifeboat creates linear LVs only"],
    ["a striped LV", "disk /dev/sda 10737418240 gpt\nlvmvol /dev/vg data 5368709120b striped stripes:2 stripesize:65536\n", "disklayout.conf line 2: the LV vg/data is striped stripes:2: Lifeboat creates linear LVs only"],
    ["an unknown keyword", "disk /dev/sda 10737418240 gpt\nfrobnicate /dev/sda\n", 'disklayout.conf line 2: unknown keyword "frobnicate"'],
    ["a comments-only file", "# Disk layout dated 20240115103000\n# disk /dev/sda 10737418240 gpt\n", "disklayout.conf: no disk or multipath line: not a ReaR disk layout (or every disk is excluded)"],
    ["a wrapped paste", "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / ext4\nuuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n", 'disklayout.conf line 4: "uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a" alone on a line: the end of a wrapped line? (each entry is one line)'],
    ["a PV on an undeclared partition", "disk /dev/sda 10737418240 gpt\nlvmdev /dev/vg /dev/sda3 uuid 1000\n", "disklayout.conf line 2: /dev/sda3 (a PV of vg) is made by no line of the file"],
    ["a filesystem on an undeclared device", "disk /dev/sda 10737418240 gpt\nfs /dev/sdc1 /data xfs uuid=1 label=\n", "disklayout.conf line 2: /dev/sdc1 (the xfs filesystem on /data) is made by no line of the file"],
    ["a subvolume mount with no filesystem", "disk /dev/sda 10737418240 gpt\nbtrfsmountedsubvol /dev/sda1 /home rw @/home\n", 'disklayout.conf line 2: /home mounts a subvolume of /dev/sda1, which no "fs ... btrfs" line before it makes'],
    ["the msdos flag hidden", "disk /dev/sda 10737418240 msdos\npart /dev/sda 1048576 1048576 primary hidden /dev/sda1\n", 'disklayout.conf line 2: the msdos flag "hidden" does not say the partition\'s type; give the layout with its type (capture.sh)'],
  ])("refuses %s with its line and why", (_what, text, message) => {
    expect(err(text)).toBe(message);
  });

  const luksBoot = (options: string) =>
    `disk /dev/sda 10737418240 gpt\npart /dev/sda 1073741824 1048576 rear-noname none /dev/sda1\ncrypt /dev/mapper/cr_boot /dev/sda1 ${options}\nfs /dev/mapper/cr_boot /boot ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n`;
  const luksOf = (options: string) => {
    const [c] = layoutFromRear(luksBoot(options), "h").luks;
    return [c!.type, c!.cipher, c!.keySizeBits, c!.hash, c!.uuid];
  };

  it("crypt keeps how the header was made: type, cipher, key size, hash (ReaR 2.6+), and the old cipher= mode= form as LUKS1", () => {
    expect(luksOf("type=luks1 cipher=aes-xts-plain64 key_size=512 hash=sha256 uuid=1b4198c9-d9b0-4c57-b9a3-3433e391e706 keyfile=/etc/keys/boot.key")).toEqual(["luks1", "aes-xts-plain64", 512, "sha256", "1b4198c9-d9b0-4c57-b9a3-3433e391e706"]);
    expect(luksOf("type=luks2 cipher=aes-xts-plain64 key_size=256 hash=sha256 uuid=3e874a28-7415-4f8c-9757-b3f28a96c4d2")).toEqual(["luks2", "aes-xts-plain64", 256, "sha256", "3e874a28-7415-4f8c-9757-b3f28a96c4d2"]);
    expect(luksOf("cipher=aes mode=cbc-essiv:sha256 hash=sha1 uuid=3e874a28-7415-4f8c-9757-b3f28a96c4d2")).toEqual(["luks1", "aes-cbc-essiv:sha256", null, "sha1", "3e874a28-7415-4f8c-9757-b3f28a96c4d2"]);
    // ReaR writes empty values when luksDump did not say: cryptsetup's defaults then.
    expect(luksOf("type=luks2 cipher= key_size= hash= uuid=3e874a28-7415-4f8c-9757-b3f28a96c4d2")).toEqual(["luks2", null, null, null, "3e874a28-7415-4f8c-9757-b3f28a96c4d2"]);
  });

  it.each([
    ["a LUKS version cryptsetup has not", "type=luks9 uuid=1", 'disklayout.conf line 3: crypt cr_boot: type=: "luks9" is not a LUKS version (luks1, luks2)'],
    ["an option in the cipher", "type=luks1 cipher=aes-xts-plain64,--header=/dev/sdb uuid=1", /^disklayout\.conf line 3: crypt cr_boot: cipher=: "aes-xts-plain64,--header=\/dev\/sdb" is not a cipher Lifeboat formats LUKS with/],
    ["a key size that is no number", "type=luks1 key_size=256;reboot uuid=1", "disklayout.conf line 3: crypt cr_boot: key_size=256;reboot is not a key size in bits"],
    ["a key size LUKS has not", "type=luks1 key_size=1000 uuid=1", "disklayout.conf line 3: crypt cr_boot: key_size=: 1000 is not a LUKS key size in bits (128, 192, 256, 384, 512)"],
    ["a hash that is a path", "type=luks1 hash=../../x uuid=1", /^disklayout\.conf line 3: crypt cr_boot: hash=: "\.\.\/\.\.\/x" is not a hash Lifeboat formats LUKS with/],
  ])("refuses %s in a crypt line, with its line", (_what, options, message) => {
    expect(err(luksBoot(options))).toMatch(message);
  });

  it("SUSE with snapper: the default subvolume and NOCOW subvolumes are kept on their filesystem", () => {
    const text =
      "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / btrfs uuid=4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809 label=\n" +
      "btrfsdefaultsubvol /dev/sda1 / 268 @/.snapshots/1/snapshot\n" +
      "btrfsnormalsubvol /dev/sda1 / 256 @\nbtrfsnormalsubvol /dev/sda1 / 257 @/.snapshots\nbtrfsnormalsubvol /dev/sda1 / 259 @/var/lib/mariadb\n" +
      "btrfsmountedsubvol /dev/sda1 /var/lib/mariadb rw,relatime @/var/lib/mariadb\nbtrfsnocopyonwrite @/var/lib/mariadb\n";
    const [fs] = layoutFromRear(text, "h").filesystems;
    expect([fs!.subvolumes, fs!.defaultSubvolume, fs!.nocow]).toEqual([["@", "@/.snapshots", "@/.snapshots/1/snapshot", "@/var/lib/mariadb"], "@/.snapshots/1/snapshot", ["@/var/lib/mariadb"]]);
  });

  it("btrfsdefaultsubvol of the top level is what mkfs leaves: imported", () => {
    const text = "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / btrfs uuid=1 label=\nbtrfsdefaultsubvol /dev/sda1 / 5 /\n";
    expect(layoutFromRear(text, "h").filesystems.map((f) => f.type)).toEqual(["btrfs"]);
  });

  it("old lvmvol VG LV EXTENTS SECTORS: the size from the sectors, a linear LV (the sectors were read as its segment type)", () => {
    const text = "disk /dev/sda 10737418240 msdos\npart /dev/sda 10736369664 1048576 primary lvm /dev/sda1\nlvmdev /dev/vg /dev/sda1 uuid 20969472\nlvmgrp /dev/vg 4096 2559\nlvmvol /dev/vg root 1280 10485760\nlvmvol /dev/vg swap 256\n";
    expect(layoutFromRear(text, "h").lvm.lvs.map((l) => [l.path, l.sizeBytes, l.segtype])).toEqual([
      ["/dev/vg/root", 10485760 * 512, "linear"],
      ["/dev/vg/swap", 256 * 4 * 1024 * 1024, "linear"],
    ]);
  });

  it("partition types: msdos prep and lba, GPT prep/msftdata/msftres/diag; ReaR master's 8th field is the partition UUID", () => {
    const msdos = layoutFromRear("disk /dev/sda 10737418240 msdos\npart /dev/sda 8388608 1048576 primary boot,prep /dev/sda1\npart /dev/sda 104857600 9437184 primary lba /dev/sda2\n", "h");
    expect(msdos.disks[0]!.table!.partitions.map((p) => [p.type, p.bootable])).toEqual([["41", true], ["C", false]]);
    const gpt = layoutFromRear(
      "disk /dev/sda 10737418240 gpt\n" +
        ["prep", "msftdata", "msftres", "diag"].map((f, i) => `part /dev/sda 1048576 ${(i + 1) * 1048576} rear-noname ${f} /dev/sda${i + 1}${i === 1 ? " 5d4c3b2a-1f0e-4d9c-8b7a-695847362514" : ""}`).join("\n"),
      "h",
    );
    expect(gpt.disks[0]!.table!.partitions.map((p) => [p.type, p.uuid])).toEqual([
      ["9E1A2D38-C612-4316-AA26-8B49521E5A8B", null],
      ["EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", "5D4C3B2A-1F0E-4D9C-8B7A-695847362514"],
      ["E3C9E316-0B5C-4DB8-817D-F92DF00215AE", null],
      ["DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", null],
    ]);
  });
});

/** ReaR 2.7 and later on an MD RAID1 of two whole disks, partitioned: an ESP on its first partition, LVM on its second. */
const MD_WHOLE_DISKS = readFileSync(fileURLToPath(new URL("../../fixtures/rear/md-whole-disks.disklayout.conf", import.meta.url)), "utf8");

describe("ReaR MD arrays of whole disks, partitioned (issue 26 item 2)", () => {
  it("raiddisk gives the array its size and partition table; its partitions carry the ESP and the PV", () => {
    const l = layoutFromRear(MD_WHOLE_DISKS, "h");
    expect(layoutProblem(l)).toBeNull();
    expect(l.disks.map((d) => [d.path, d.table])).toEqual([["/dev/sda", null], ["/dev/sdb", null]]);
    const [array] = l.md;
    expect([array!.path, array!.members, array!.sizeBytes, array!.table?.label]).toEqual(["/dev/md127", ["/dev/sda", "/dev/sdb"], 10733223936, "gpt"]);
    expect(array!.table!.partitions.map((p) => [p.number, p.path, p.start, p.size, p.type])).toEqual([
      [1, "/dev/md127p1", 2048, 1048576, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"],
      [2, "/dev/md127p2", 1050624, 19910656, "E6D6D379-F507-44C2-A23C-238F2A3DF928"],
    ]);
    expect(l.lvm.pvs.map((p) => p.path)).toEqual(["/dev/md127p2"]);
    expect(describeLayout(l)).toContain("md /dev/md127 raid1 (/dev/sda, /dev/sdb) uuid 8d05eb84:2de831d1:dfed54b2:ad592118  10.0 GiB (10733223936 bytes)  gpt \n  /dev/md127p1  start 2048");
    expect(l.filesystems.map((f) => [f.dev, f.sizeBytes])).toEqual([
      ["/dev/md127p1", 536870912],
      ["/dev/system/root", 8589934592],
    ]);
  });

  it("an array with a filesystem of its own: raiddisk's loop (or no) label is no table; a disk line for an array reads like raiddisk", () => {
    const raid = "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname raid /dev/sda1\ndisk /dev/sdb 10737418240 gpt\npart /dev/sdb 10736369664 1048576 rear-noname raid /dev/sdb1\nraidarray /dev/md0 metadata=1.2 level=raid1 raid-devices=2 devices=/dev/sda1,/dev/sdb1\n";
    const fs = "fs /dev/md0 / ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n";
    for (const line of ["raiddisk /dev/md0 10732175360 loop", "raiddisk /dev/md0 10732175360"]) {
      const l = layoutFromRear(`${raid}${line}\n${fs}`, "h");
      expect([l.md[0]!.sizeBytes, l.md[0]!.table, l.filesystems[0]!.dev], line).toEqual([10732175360, null, "/dev/md0"]);
    }
    const asDisk = layoutFromRear(MD_WHOLE_DISKS.replace("raiddisk /dev/md127", "disk /dev/md127"), "h");
    expect(asDisk.md[0]!.table!.partitions.map((p) => p.path)).toEqual(["/dev/md127p1", "/dev/md127p2"]);
    expect(asDisk.disks.map((d) => d.path)).toEqual(["/dev/sda", "/dev/sdb"]);
  });

  it("a capture keeps an array's own table (capture.sh dumps arrays with sfdisk -J too)", () => {
    const doc = JSON.parse(readFileSync(fileURLToPath(new URL("../../fixtures/layouts/md-raid1-lvm.capture.json", import.meta.url)), "utf8"));
    doc.partitionTables.push({
      disk: "/dev/md0",
      sfdisk: { partitiontable: { label: "gpt", id: "5A1D2C3B-4A5E-4F60-8A7B-9C0D1E2F3A40", device: "/dev/md0", unit: "sectors", sectorsize: 512, partitions: [{ node: "/dev/md0p1", start: 2048, size: 4096, type: "0fc63daf-8483-4772-8e79-3d69d8477de4" }] } },
    });
    const [array] = layoutFromCapture(parseCapture(doc)).md;
    expect([array!.path, array!.table?.label, array!.table?.partitions.map((p) => [p.number, p.path, p.start, p.size, p.type])]).toEqual([
      "/dev/md0",
      "gpt",
      [[1, "/dev/md0p1", 2048, 4096, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"]],
    ]);
    expect(fixtureLayout("md-raid1-lvm").md[0]!.table).toBeNull();
  });

  it("the layout check: only a /dev/mdN array with its size may hold a table, and its partitions are /dev/mdNpK", () => {
    const good = layoutFromRear(MD_WHOLE_DISKS, "h");
    const broken = (change: (l: DiskLayout) => void) => {
      const l = structuredClone(good);
      change(l);
      return layoutProblem(l);
    };
    expect(broken((l) => void (l.md[0]!.path = "/dev/md/root"))).toBe('md.0.table: only an array named /dev/mdN may have a partition table, not "/dev/md/root"');
    expect(broken((l) => void (l.md[0]!.sizeBytes = 0))).toBe("md.0.sizeBytes: an array with a partition table needs its size");
    expect(broken((l) => void (l.md[0]!.table!.partitions[1]!.path = "/dev/md1272"))).toBe('md.0.table.partitions.1.path: "/dev/md1272" is not partition 2 of /dev/md127');
    expect(broken((l) => void (l.md[0]!.table!.partitions[1]!.size = 30000000))).toMatch(/^md\.0\.table\.partitions\.1: sectors 1050624\+30000000 end past the disk's 20963328 sectors$/);
  });
});

describe("ReaR multipath disks (issue 26 item 3)", () => {
  // As ReaR 2.6 and later write it: a comment, the multipath line (no disk line), then its partitions.
  const sanHost = (name: string, suffix: (n: number) => string) =>
    `# Multipath /dev/mapper/${name}\n# Format: multipath <devname> <size(bytes)> <partition label type> <slaves>\n` +
    `multipath /dev/mapper/${name} 21474836480 gpt /dev/sdc,/dev/sdd\n` +
    `part /dev/mapper/${name} 536870912 1048576 rear-noname boot /dev/mapper/${name}${suffix(1)}\n` +
    `part /dev/mapper/${name} 20936916992 537919488 rear-noname lvm /dev/mapper/${name}${suffix(2)}\n` +
    `fs /dev/mapper/${name}${suffix(1)} /boot/efi vfat uuid=1A2B-3C4D label=\n` +
    `lvmdev /dev/system /dev/mapper/${name}${suffix(2)} cUVZZK-5Yb1-Kv3V-EF0b-ZZ3Y-4ZxQ-lr7PJm 40892416\n` +
    "lvmgrp /dev/system 4096 4991 20443037696\n" +
    "lvmvol /dev/system root 16106127360b linear\n" +
    "fs /dev/mapper/system-root / xfs uuid=4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809 label=\n";

  it.each([
    ["NAME-part1 (SUSE)", (n: number) => `-part${n}`],
    ["NAMEp1", (n: number) => `p${n}`],
    ["NAME_part1", (n: number) => `_part${n}`],
    ["NAME1 (RHEL 7)", (n: number) => `${n}`],
  ])("a multipath disk with partitions spelled %s, LVM on the second: a disk /dev/mapper/NAME with its paths, the PV on its partition", (_spelling, suffix) => {
    const l = layoutFromRear(sanHost("mpatha", suffix), "h");
    expect(layoutProblem(l)).toBeNull();
    const [disk] = l.disks;
    expect([disk!.path, disk!.name, disk!.multipath, disk!.sizeBytes]).toEqual(["/dev/mapper/mpatha", "mapper/mpatha", { wwid: null, paths: ["/dev/sdc", "/dev/sdd"] }, 21474836480]);
    expect(disk!.table!.partitions.map((p) => [p.number, p.path, p.type])).toEqual([
      [1, `/dev/mapper/mpatha${suffix(1)}`, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"],
      [2, `/dev/mapper/mpatha${suffix(2)}`, "E6D6D379-F507-44C2-A23C-238F2A3DF928"],
    ]);
    expect(l.lvm.pvs.map((p) => [p.path, p.vg])).toEqual([[`/dev/mapper/mpatha${suffix(2)}`, "system"]]);
    expect(l.filesystems.map((f) => [f.dev, f.type, f.sizeBytes])).toEqual([
      [`/dev/mapper/mpatha${suffix(1)}`, "vfat", 536870912],
      ["/dev/system/root", "xfs", 16106127360],
    ]);
    expect(describeLayout(l)).toContain("disk /dev/mapper/mpatha  20.0 GiB (21474836480 bytes)  multipath via /dev/sdc,/dev/sdd  gpt");
  });

  it("a map named by its WWID keeps it as the disk's identity, also when the name ends in digits (…0000p1 is partition 1)", () => {
    const wwid = "3600508b4000156d700012000000b0000";
    const l = layoutFromRear(sanHost(wwid, (n) => `p${n}`), "h");
    expect(layoutProblem(l)).toBeNull();
    expect(l.disks[0]!.multipath).toEqual({ wwid, paths: ["/dev/sdc", "/dev/sdd"] });
    expect(l.disks[0]!.table!.partitions.map((p) => p.number)).toEqual([1, 2]);
    // IBM XIV's EUI-64 WWID, with SUSE's -part spelling.
    expect(layoutFromRear(sanHost("20017380033e7012f", (n) => `-part${n}`), "h").disks[0]!.multipath!.wwid).toBe("20017380033e7012f");
    // An alias names no WWID.
    expect(layoutFromRear(sanHost("BACKUP_ORACLE", (n) => `-part${n}`), "h").disks[0]!.multipath!.wwid).toBeNull();
  });

  it("next to a local disk, and with a PV on the whole multipath disk (no partition table)", () => {
    const l = layoutFromRear(
      "disk /dev/sda 10737418240 gpt\npart /dev/sda 10736369664 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n" +
        "multipath /dev/mapper/BACKUP_ORACLE 107374182400 unknown /dev/sdy,/dev/sdz\nlvmdev /dev/vgoracle /dev/mapper/BACKUP_ORACLE uuid 209715200\nlvmgrp /dev/vgoracle 4096 25599\nlvmvol /dev/vgoracle lvoracle 107369988096b linear\nfs /dev/mapper/vgoracle-lvoracle /app xfs uuid=4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809 label=\n",
      "h",
    );
    expect(layoutProblem(l)).toBeNull();
    expect(l.disks.map((d) => [d.path, d.table?.label ?? null, d.multipath?.paths ?? null])).toEqual([
      ["/dev/sda", "gpt", null],
      ["/dev/mapper/BACKUP_ORACLE", null, ["/dev/sdy", "/dev/sdz"]],
    ]);
    expect(l.lvm.pvs.map((p) => p.path)).toEqual(["/dev/mapper/BACKUP_ORACLE"]);
  });

  const form = 'expected "multipath /dev/mapper/NAME SIZE LABEL SLAVES (as ReaR 2.6 and later write it)"';
  it.each([
    ["ReaR 2.1 to 2.5's form (no label)", "multipath /dev/mapper/mpatha 21474836480 /dev/sdc,/dev/sdd", `disklayout.conf line 2: ${form}`],
    ["ReaR 2.0's form (no size, no label)", "multipath /dev/mapper/mpatha /dev/sdc,/dev/sdd", `disklayout.conf line 2: ${form}`],
    ["a field too many", "multipath /dev/mapper/mpatha 21474836480 gpt /dev/sdc,/dev/sdd extra", `disklayout.conf line 2: ${form}`],
    ["a keyword alone", "multipath", `disklayout.conf line 2: ${form}`],
    ["a device outside /dev/mapper", "multipath /dev/sdc 21474836480 gpt /dev/sdc,/dev/sdd", "disklayout.conf line 2: /dev/sdc is not a multipath device (/dev/mapper/NAME)"],
    ["a size that is no number", "multipath /dev/mapper/mpatha 20G gpt /dev/sdc,/dev/sdd", 'disklayout.conf line 2: multipath /dev/mapper/mpatha: "20G" is not a size in bytes'],
  ])("refuses %s with its line number", (_what, line, message) => {
    expect(err(`disk /dev/sda 10737418240 gpt\n${line}\n`)).toBe(message);
  });

  it("refuses a partition spelled as no kpartx or udev spelling of the disk, with its line", () => {
    expect(err("multipath /dev/mapper/mpatha 21474836480 gpt /dev/sdc,/dev/sdd\npart /dev/mapper/mpatha 536870912 1048576 rear-noname none /dev/mapper/mpatha-p1\n")).toBe(
      "disklayout.conf line 2: /dev/mapper/mpatha-p1 is not a partition of the multipath disk /dev/mapper/mpatha (/dev/mapper/mpatha-part1, /dev/mapper/mpathap1, /dev/mapper/mpatha_part1 or /dev/mapper/mpatha1)",
    );
  });

  it("the layout check: a multipath disk's path, paths and partition spellings; /dev/mapper is a disk only as a multipath one", () => {
    const good = layoutFromRear(sanHost("mpatha", (n) => `-part${n}`), "h");
    const broken = (change: (l: DiskLayout) => void) => {
      const l = structuredClone(good);
      change(l);
      return layoutProblem(l);
    };
    expect(broken((l) => void (l.disks[0]!.multipath!.paths = ["/dev/sdc", "/dev/mapper/other"]))).toBe('disks.0.multipath.paths.1: "/dev/mapper/other" is not a whole disk of a kind capture.sh reports');
    expect(broken((l) => void (l.disks[0]!.multipath!.wwid = "36005;reboot"))).toBe('disks.0.multipath.wwid: "36005;reboot" is not a multipath WWID');
    expect(broken((l) => void (l.disks[0]!.table!.partitions[0]!.path = "/dev/mapper/mpathb-part1"))).toBe('disks.0.table.partitions.0.path: "/dev/mapper/mpathb-part1" is not partition 1 of /dev/mapper/mpatha');
    expect(broken((l) => void (l.disks[0]!.multipath = null))).toMatch(/^disks\.0\.path: "\/dev\/mapper\/mpatha" is not a whole disk/);
  });
});

describe("layout diff", () => {
  it("names what changed, follows elements by identity, summarises packages", () => {
    const a = fixtureLayout("gpt-uefi");
    const b = structuredClone(a);
    b.filesystems[1]!.label = "newroot";
    b.disks[0]!.table!.partitions[2]!.size += 2048;
    b.system.packages!.list.push(["htop", "3.2.2-2"]);
    b.capturedAt = "2030-01-01T00:00:00Z";
    const lines = diffLayouts(a, b);
    expect(lines).toContain('~ filesystems[/dev/sda2].label: "root" → "newroot"');
    expect(lines.some((l) => l.startsWith("~ disks[/dev/sda].table.partitions[/dev/sda3].size:"))).toBe(true);
    expect(lines).toContain("+ packages: htop");
    expect(lines).toHaveLength(3);
    expect(diffLayouts(a, a)).toEqual([]);
  });
});

describe("sfdisk script names", () => {
  it("are escaped byte for byte as sfdisk --dump writes them", async () => {
    const { sfdiskString } = await import("../../../server/plan/plan.ts");
    expect(sfdiskString('a "b" $c `d` \\ ü\n')).toBe('"a \\x22b\\x22 \\x24c \\x60d\\x60 \\x5c \\xc3\\xbc\\x0a"');
    expect(sfdiskString("EFI System Partition")).toBe('"EFI System Partition"');
  });
});

describe("DLEs from Amanda's GNU tar state files", () => {
  it("recognises DLEs named by a mount point, and only those", async () => {
    const { dlesFromGnutarLists } = await import("../../../server/layout/layout-capture.ts");
    const files = "web1.example.com__0\nweb1.example.com__1\nweb1_home_0\nweb1_srv_home_0\nweb1_var__log_2\n";
    expect(dlesFromGnutarLists(files, ["/", "/home", "/var_log", "/boot", "/srv"])).toEqual({ "/": "/", "/home": "/home", "/var_log": "/var_log" });
    expect(dlesFromGnutarLists(null, ["/"])).toEqual({});
  });

  it("land in the layout next to what the host was told (--dle)", () => {
    const doc = JSON.parse(readFileSync(fileURLToPath(new URL("../../fixtures/layouts/mbr-ext4.capture.json", import.meta.url)), "utf8"));
    doc.amandaGnutarLists = "fixture__0\nfixture__1\n";
    doc.dles = "www=/var/www\n";
    expect(layoutFromCapture(parseCapture(doc)).dles).toEqual({ "/": "/", www: "/var/www" });
    expect(fixtureLayout("gpt-uefi").dles).toEqual({});
  });
});

describe("removable and USB disks in a capture (issue 15 item 5)", () => {
  const doc = () => JSON.parse(readFileSync(new URL("../../fixtures/layouts/multi-disk.capture.json", import.meta.url), "utf8")) as { lsblk: { blockdevices: Array<Record<string, unknown>> }; includeRemovable?: boolean };

  for (const [what, flags] of [
    ["on USB", { tran: "usb" }],
    ["removable (lsblk -J)", { rm: true }],
    ["removable (older lsblk: \"1\")", { rm: "1" }],
  ] as const)
    it(`a disk ${what} is left out with everything on it, unless captured on purpose`, () => {
      const d = doc();
      Object.assign(d.lsblk.blockdevices.find((n) => n.name === "sdb")!, flags);
      const l = layoutFromCapture(parseCapture(d));
      expect(l.disks.map((x) => x.name)).toEqual(["sda"]);
      expect(l.filesystems.map((f) => f.dev)).toEqual(["/dev/sda2"]);
      expect(l.mounts.map((m) => m.mountpoint)).toEqual(["/"]);
      const kept = layoutFromCapture(parseCapture({ ...d, includeRemovable: true }));
      expect(kept.disks.map((x) => [x.name, x.removable])).toEqual([
        ["sda", false],
        ["sdb", "rm" in flags],
      ]);
      expect(kept.mounts.map((m) => m.mountpoint)).toEqual(["/", "/var/lib/data"]);
    });
});
