/**
 * A capture with `count` ext4 partitions on one disk, each mounted and in fstab: the shape of
 * a hostile (or absurd) upload that made parsing quadratic (issue 16 item 2).
 */
export function hugeCapture(count: number): Record<string, unknown> {
  const part = (i: number) => `/dev/sda${i + 1}`;
  const uuid = (i: number) => `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`;
  const indexes = Array.from({ length: count }, (_, i) => i);
  return {
    format: "lifeboat-capture/1",
    capturedAt: "2026-12-01T00:00:00Z",
    hostname: "huge",
    lsblk: {
      blockdevices: [
        { name: "sda", path: "/dev/sda", type: "disk", size: 2 ** 40, children: indexes.map((i) => ({ name: `sda${i + 1}`, path: part(i), type: "part", size: 1048576 })) },
      ],
    },
    partitionTables: [
      {
        disk: "/dev/sda",
        sfdisk: {
          partitiontable: {
            label: "gpt", id: "0F0F0F0F-0000-4000-8000-000000000000", device: "/dev/sda", unit: "sectors", sectorsize: 512,
            partitions: indexes.map((i) => ({ node: part(i), start: 2048 + i * 2048, size: 2048, type: "0FC63DAF-8483-4772-8E79-3D69D8477DE4" })),
          },
        },
      },
    ],
    probes: indexes.map((i) => ({ dev: part(i), blkid: `UUID=${uuid(i)}\nTYPE=ext4\nUSAGE=filesystem\n`, sizeBytes: 1048576 })),
    mounts: { filesystems: [{ source: part(0), target: "/", fstype: "ext4", children: indexes.slice(1).map((i) => ({ source: part(i), target: `/srv/p${i}`, fstype: "ext4" })) }] },
    files: { "/etc/fstab": indexes.map((i) => `UUID=${uuid(i)} ${i ? `/srv/p${i}` : "/"} ext4 defaults 0 2`).join("\n") },
    firmware: "bios",
  };
}

/** A small capture whose lsblk lists `count` bare disks: many nodes in few bytes. */
export function manyBlockDevices(count: number): Record<string, unknown> {
  return { ...hugeCapture(1), lsblk: { blockdevices: Array.from({ length: count }, (_, i) => ({ name: `d${i}`, type: "disk", size: 1 })) } };
}
