import { z } from "zod";
import { formatZodIssue } from "./layout.ts";
import { isMac } from "../mac.ts";
import { NIC_NAME } from "../plan/nics.ts";

/**
 * The document capture.sh uploads: raw tool output (lsblk -J, sfdisk -J, blkid -p -o export,
 * findmnt -J, LVM JSON reports, dumpe2fs/xfs_info/mdadm text), parsed here into a
 * DiskLayout. Unknown keys are ignored so an older server accepts a newer script.
 */

const text = z.string().nullable().default(null);

export interface LsblkNode {
  name: string;
  kname?: string;
  path?: string;
  type: string;
  size: number | string | null;
  model?: string | null;
  serial?: string | null;
  wwn?: string | null;
  tran?: string | null;
  rm?: boolean | number | string | null;
  "log-sec"?: number | string | null;
  "phy-sec"?: number | string | null;
  children?: LsblkNode[];
}
const lsblkNode: z.ZodType<LsblkNode> = z.lazy(() =>
  z.looseObject({
    name: z.string(),
    kname: z.string().optional(),
    path: z.string().optional(),
    type: z.string(),
    size: z.union([z.number(), z.string()]).nullable(),
    model: z.string().nullable().optional(),
    serial: z.string().nullable().optional(),
    wwn: z.string().nullable().optional(),
    tran: z.string().nullable().optional(),
    // lsblk -J: true/false; older util-linux: "0"/"1".
    rm: z.union([z.boolean(), z.number(), z.string()]).nullable().optional(),
    "log-sec": z.union([z.number(), z.string()]).nullable().optional(),
    "phy-sec": z.union([z.number(), z.string()]).nullable().optional(),
    children: z.array(lsblkNode).optional(),
  }),
);

const sfdiskPartition = z.looseObject({
  node: z.string(),
  start: z.number().int(),
  size: z.number().int(),
  type: z.string(),
  uuid: z.string().optional(),
  name: z.string().optional(),
  attrs: z.string().optional(),
  bootable: z.boolean().optional(),
});
const sfdiskTable = z.object({
  partitiontable: z.looseObject({
    label: z.string(),
    id: z.string(),
    device: z.string(),
    unit: z.string(),
    firstlba: z.number().int().optional(),
    lastlba: z.number().int().optional(),
    sectorsize: z.number().int().optional(),
    partitions: z.array(sfdiskPartition).default([]),
  }),
});

export interface FindmntNode {
  source: string;
  target: string;
  fstype: string;
  options?: string;
  used?: number | string | null;
  size?: number | string | null;
  fsroot?: string | null;
  children?: FindmntNode[];
}
const findmntNode: z.ZodType<FindmntNode> = z.lazy(() =>
  z.looseObject({
    source: z.string(),
    target: z.string(),
    fstype: z.string(),
    options: z.string().optional(),
    used: z.union([z.number(), z.string()]).nullable().optional(),
    size: z.union([z.number(), z.string()]).nullable().optional(),
    fsroot: z.string().nullable().optional(),
    children: z.array(findmntNode).optional(),
  }),
);

const lvmReport = <T extends z.ZodRawShape>(key: "pv" | "vg" | "lv", row: T) =>
  z.object({ report: z.array(z.object({ [key]: z.array(z.looseObject(row)) })) }).nullable().default(null);

export const captureSchema = z.looseObject({
  format: z.literal("lifeboat-capture/1"),
  capturedAt: z.string(),
  hostname: z.string(),
  devicesFilter: z.array(z.string()).nullable().default(null),
  /** capture.sh --include-removable: removable and USB disks were captured on purpose. */
  includeRemovable: z.boolean().default(false),
  lsblk: z.object({ blockdevices: z.array(lsblkNode) }),
  byId: text,
  partitionTables: z.array(z.object({ disk: z.string(), sfdisk: sfdiskTable.nullable() })),
  probes: z.array(
    z.looseObject({
      dev: z.string(),
      blkid: text,
      sizeBytes: z.number().int().nullable().default(null),
      dumpe2fs: text.optional(),
      xfsInfo: text.optional(),
      mdadm: text.optional(),
    }),
  ),
  mounts: z.object({ filesystems: z.array(findmntNode) }).nullable().default(null),
  /** Per mounted btrfs: `btrfs subvolume list -a` and `get-default`, the mount's FSROOT (findmnt) and `lsattr -d` of the mount point. */
  btrfs: z.array(z.object({ mountpoint: z.string(), source: z.string(), subvolumes: text, getDefault: text, fsroot: text, lsattr: text })).default([]),
  lvm: z
    .object({
      pvs: lvmReport("pv", { pv_name: z.string(), pv_uuid: z.string(), vg_name: z.string(), pv_size: z.string() }),
      vgs: lvmReport("vg", { vg_name: z.string(), vg_uuid: z.string(), vg_extent_size: z.string(), vg_size: z.string() }),
      lvs: lvmReport("lv", { lv_name: z.string(), vg_name: z.string(), lv_uuid: z.string(), lv_size: z.string(), segtype: z.string() }),
    })
    .default({ pvs: null, vgs: null, lvs: null }),
  files: z.record(z.string(), z.string().nullable()).default({}),
  firmware: z.enum(["bios", "uefi"]),
  efibootmgr: text,
  /** `mokutil --sb-state` ("SecureBoot enabled"), or the same words read from the SecureBoot variable. */
  secureBoot: text,
  efiDirs: text,
  bootCode: z.array(z.object({ disk: z.string(), grub: z.boolean() })).default([]),
  bootloaders: text,
  kernel: text,
  initramfsTool: z.enum(["update-initramfs", "dracut", "mkinitcpio"]).nullable().default(null),
  packages: z.object({ manager: z.enum(["dpkg", "rpm"]), list: text }).nullable().default(null),
  /** /sys/class/net: name, MAC, a device behind it (physical), its driver, and whether the IPv4 default route (the lowest metric) went out of it. */
  nics: z
    .array(
      z
        .object({ name: z.string(), mac: z.string(), physical: z.boolean().default(true), driver: text, defaultRoute: z.boolean().default(false) })
        // Hostile until checked: what the finish stage writes into file names and configs (server/plan/nics.ts).
        .refine((n) => !n.physical || NIC_NAME.test(n.name), "expected a NIC name (1-15 letters, digits, '_', '.', '-')")
        .refine((n) => !n.physical || isMac(n.mac), "expected a MAC address")
        .refine((n) => n.driver === null || /^[A-Za-z0-9_-]{1,64}$/.test(n.driver), "expected a driver name"),
    )
    .default([]),
  dles: text,
  /** `ls /var/lib/amanda/gnutar-lists`: Amanda's GNU tar listed-incremental files, one per DLE and level. */
  amandaGnutarLists: text,
});
export type Capture = z.infer<typeof captureSchema>;

/**
 * How much one capture may hold: far above a real machine (a container host with thousands of
 * mounts included), low enough that a hostile upload is refused before it costs the event loop
 * that serves DHCP, TFTP and the dump streams more than a few milliseconds (issue 16).
 */
export const CAPTURE_LIMITS = {
  /** Bytes of the uploaded JSON (the upload route's body limit). */
  bytes: 2 * 1024 * 1024,
  /** JSON objects and arrays in the upload, counted before it is parsed (parsing costs per object). */
  containers: 16384,
  /** lsblk nodes, children included. */
  blockDevices: 4096,
  /** Levels of children in the lsblk and findmnt trees. */
  nesting: 16,
  probes: 4096,
  partitionTables: 256,
  /** Partitions in one sfdisk table. */
  partitions: 256,
  /** findmnt nodes, children included (a container host has thousands). */
  mounts: 4096,
  btrfs: 1024,
  /** Rows in each LVM report. */
  lvmRows: 4096,
  nics: 4096,
  bootCode: 256,
  files: 64,
} as const;

/**
 * The upload's text before JSON.parse sees it: more objects and arrays than a capture may hold
 * is refused in one pass over the bytes, so a hostile document costs milliseconds, not the
 * parse and its garbage. Brackets inside strings are skipped.
 */
export function captureTextProblem(bytes: Uint8Array): string | null {
  const [QUOTE, BACKSLASH, BRACE, BRACKET] = [0x22, 0x5c, 0x7b, 0x5b];
  let containers = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if ((byte === BRACE || byte === BRACKET) && ++containers > CAPTURE_LIMITS.containers)
      return `capture document: more than ${CAPTURE_LIMITS.containers} JSON objects and arrays`;
  }
  return null;
}

/** A tree's node count and depth (children below children), given up on past the cap. */
function treeSize(nodes: unknown, cap: number): { count: number; depth: number } {
  let count = 0;
  let depth = 0;
  let level: unknown[] = Array.isArray(nodes) ? nodes : [];
  while (level.length && count <= cap) {
    depth++;
    count += level.length;
    level = level.flatMap((node) => {
      const children = (node as { children?: unknown } | null)?.children;
      return Array.isArray(children) ? children : [];
    });
  }
  return { count, depth };
}

/** The first count in a capture over CAPTURE_LIMITS, as one line; checked before the schema walks it. */
export function captureSizeProblem(doc: unknown): string | null {
  const d = (doc ?? {}) as Record<string, unknown>;
  const at = (value: unknown, ...keys: string[]): unknown => keys.reduce((v, k) => (v as Record<string, unknown> | null | undefined)?.[k], value);
  const length = (value: unknown) => (Array.isArray(value) ? value.length : 0);
  const L = CAPTURE_LIMITS;
  for (const [where, value, what] of [
    ["lsblk.blockdevices", at(d, "lsblk", "blockdevices"), L.blockDevices],
    ["mounts.filesystems", at(d, "mounts", "filesystems"), L.mounts],
  ] as const) {
    const tree = treeSize(value, what);
    if (tree.count > what) return `${where}: more than ${what} nodes`;
    if (tree.depth > L.nesting) return `${where}: nested ${tree.depth} levels, at most ${L.nesting}`;
  }
  const tables = at(d, "partitionTables");
  const counts: Array<[string, number, number]> = [
    ["probes", length(d.probes), L.probes],
    ["partitionTables", length(tables), L.partitionTables],
    ["btrfs", length(d.btrfs), L.btrfs],
    ...(["pvs", "vgs", "lvs"] as const).map((key): [string, number, number] => {
      const reports = at(d, "lvm", key, "report");
      const rows = Array.isArray(reports) ? reports.reduce((n: number, r) => n + length(at(r, key.slice(0, 2))), 0) : 0;
      return [`lvm.${key}`, rows, L.lvmRows];
    }),
    ["nics", length(d.nics), L.nics],
    ["bootCode", length(d.bootCode), L.bootCode],
    ["files", d.files && typeof d.files === "object" ? Object.keys(d.files).length : 0, L.files],
  ];
  for (const [where, count, max] of counts) if (count > max) return `${where}: ${count} entries, at most ${max}`;
  for (const [i, table] of (Array.isArray(tables) ? tables : []).entries()) {
    const count = length(at(table, "sfdisk", "partitiontable", "partitions"));
    if (count > L.partitions) return `partitionTables.${i}.sfdisk.partitiontable.partitions: ${count} entries, at most ${L.partitions}`;
  }
  return null;
}

/** Validates an uploaded capture; throws one line naming the first bad key or the first count over its limit. */
export function parseCapture(doc: unknown): Capture {
  const tooLarge = captureSizeProblem(doc);
  if (tooLarge) throw new Error(`capture document: ${tooLarge}`);
  const r = captureSchema.safeParse(doc);
  if (!r.success) throw new Error(`capture document: ${formatZodIssue(r.error)}`);
  return r.data;
}
