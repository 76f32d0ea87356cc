import { readFileSync } from "node:fs";
import Fastify, { type FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ServerContext } from "../../../server/context.ts";
import { API_BASE } from "../../../server/http/app.ts";
import { answerErrors } from "../../../server/http/errors.ts";
import { captureRoutes } from "../../../server/http/routes/capture.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { LAYOUT_LIMITS, layoutProblem } from "../../../server/layout/layout-validate.ts";
import { layoutFromRear } from "../../../server/layout/rear-import.ts";
import { createLogger } from "../../../server/log.ts";
import { buildPlan } from "../../../server/plan/plan.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { hashToken } from "../../../server/tokens.ts";
import { FIXTURES, fixtureLayout } from "./fixtures.ts";

/**
 * Item 4 of issue 15: a layout cannot steer writes past the disk gate. Each hostile layout
 * below is refused with one line naming where it is wrong, by the check itself, through the
 * real upload route (app.inject, the admin token for a layout document, the host's token for
 * a capture), and by the plan builder (for layouts stored before the check existed).
 */

const fixtureDoc = (name: string) => JSON.parse(readFileSync(new URL(`../../fixtures/layouts/${name}.capture.json`, import.meta.url), "utf8")) as Record<string, unknown>;

/** A valid LUKS container on the gpt-uefi fixture's second partition, formatted as a LUKS1 /boot would be. */
const LUKS = { path: "/dev/sda2", uuid: "2c1e4b7a-6d5f-4e3a-9b8c-7d6e5f4a3b2c", name: "cryptboot", type: "luks1", cipher: "aes-xts-plain64", keySizeBits: 512, hash: "sha256" } as const;

/** [what, change to a valid layout (gpt-uefi unless said), the reason expected]. */
const HOSTILE: Array<[string, (l: DiskLayout) => void, RegExp]> = [
  ["a second device as an mkfs argument", (l) => void (l.filesystems[1]!.mkfsOptions = ["/dev/sdb"]), /^filesystems\.1\.mkfsOptions: mkfs option "\/dev\/sdb" is not one Lifeboat passes to mkfs\.ext4$/],
  ["a device after valid ext4 options", (l) => l.filesystems[1]!.mkfsOptions.push("/dev/sdb"), /^filesystems\.1\.mkfsOptions: mkfs option "\/dev\/sdb" is not one/],
  ["an external ext4 journal", (l) => void (l.filesystems[1]!.mkfsOptions = ["-J", "device=/dev/sdb"]), /mkfs option "-J" is not one Lifeboat passes to mkfs\.ext4/],
  ["a device as the value of an allowed flag", (l) => void (l.filesystems[1]!.mkfsOptions = ["-b", "/dev/sdb"]), /mkfs option -b "\/dev\/sdb": not an allowed value/],
  ["an unknown ext feature", (l) => void (l.filesystems[1]!.mkfsOptions = ["-O", "has_journal,journal_dev"]), /mkfs option -O "has_journal,journal_dev": not an allowed value/],
  ["a flag without its value", (l) => void (l.filesystems[0]!.mkfsOptions = ["-F"]), /^filesystems\.0\.mkfsOptions: mkfs option -F has no value$/],
  ["any mkfs option on btrfs", (l) => Object.assign(l.filesystems[1]!, { type: "btrfs", mkfsOptions: ["-d", "raid1"] }), /mkfs option "-d" is not one Lifeboat passes to mkfs\.btrfs/],
  ["a mount point climbing out of the target", (l) => void (l.mounts[1]!.mountpoint = "/../../usr/sbin"), /^mounts\.1\.mountpoint: "\/\.\.\/\.\.\/usr\/sbin" is not an absolute path in normal form/],
  ["a relative mount point", (l) => void (l.mounts[1]!.mountpoint = "boot/efi"), /^mounts\.1\.mountpoint: "boot\/efi" is not an absolute path/],
  ["a mount point with a trailing slash", (l) => void (l.mounts[1]!.mountpoint = "/boot/efi/"), /mounts\.1\.mountpoint/],
  ["a mount point with //", (l) => void (l.mounts[1]!.mountpoint = "/boot//efi"), /mounts\.1\.mountpoint/],
  ["a mount point with a . component", (l) => void (l.mounts[1]!.mountpoint = "/boot/./efi"), /mounts\.1\.mountpoint/],
  ["a mount point with a newline", (l) => void (l.mounts[1]!.mountpoint = "/boot\n/efi"), /^mounts\.1\.mountpoint: "\/boot\\n\/efi" is not/],
  ["a bind mount option", (l) => void (l.mounts[0]!.options = "bind"), /^mounts\.0\.options: "bind": a layout's mount options may only be subvol=PATH/],
  ["an xfs log device as a mount option", (l) => void (l.mounts[0]!.options = "logdev=/dev/sdb"), /mounts\.0\.options: "logdev=\/dev\/sdb"/],
  ["a subvolume climbing out", (l) => void (l.mounts[0]!.options = "subvol=../x"), /mounts\.0\.options: "subvol=\.\.\/x"/],
  ["a filesystem on a path that is no device", (l) => void (l.filesystems[1]!.dev = "/etc/passwd"), /^filesystems\.1\.dev: "\/etc\/passwd" is not a device path of a kind Lifeboat recreates$/],
  ["a device path with ..", (l) => void (l.filesystems[1]!.dev = "/dev/sda2/../sdb"), /^filesystems\.1\.dev: .* is not a device path/],
  ["a disk of no kind capture.sh reports", (l) => Object.assign(l.disks[0]!, { path: "/dev/sr0", name: "sr0" }), /^disks\.0\.path: "\/dev\/sr0" is not a whole disk of a kind capture\.sh reports/],
  ["a disk named after another", (l) => void (l.disks[0]!.name = "sdb"), /^disks\.0\.name: "sdb" is not the name of \/dev\/sda$/],
  ["a partition path of another disk", (l) => void (l.disks[0]!.table!.partitions[1]!.path = "/dev/sdb2"), /^disks\.0\.table\.partitions\.1\.path: "\/dev\/sdb2" is not partition 2 of \/dev\/sda$/],
  ["an sfdisk line smuggled in a partition type", (l) => void (l.disks[0]!.table!.partitions[1]!.type = "L\n/dev/sdb1 : start=2048"), /^disks\.0\.table\.partitions\.1\.type: .* is not a partition type$/],
  ["an sfdisk line smuggled in the label id", (l) => void (l.disks[0]!.table!.id = "x\nlabel: dos"), /^disks\.0\.table\.id: .* is not a GPT disk GUID$/],
  ["a partition past the end of its disk", (l) => void (l.disks[0]!.table!.partitions[2]!.size *= 1000), /^disks\.0\.table\.partitions\.2: sectors .* end past the disk's 2097152 sectors$/],
  ["an odd sector size", (l) => void (l.disks[0]!.logicalSectorSize = 520), /^disks\.0\.logicalSectorSize: 520 is not a sector size/],
  ["a by-id link out of /dev/disk/by-id", (l) => void (l.disks[0]!.byId = ["/dev/disk/by-id/../../sdb"]), /^disks\.0\.byId\.0: .* is not a \/dev\/disk\/by-id link$/],
  ["a sed command in a filesystem UUID (fix_fstab)", (l) => void (l.filesystems[1]!.uuid = "x/;e touch /tmp/p;s/y"), /^filesystems\.1\.uuid: .* is not a filesystem UUID$/],
  ["a filesystem type with a space", (l) => void (l.filesystems[1]!.type = "ext4 -F"), /^filesystems\.1\.type: "ext4 -F" is not a filesystem type$/],
  ["a NUL in a label", (l) => void (l.filesystems[1]!.label = "ro\0ot"), /^filesystems\.1\.label: contains a NUL byte$/],
  ["a control character in a label", (l) => void (l.filesystems[1]!.label = "ro\u001bot"), /^filesystems\.1\.label: .* no control characters$/],
  ["a string of a megabyte", (l) => void (l.hostname = "h".repeat(1 << 20)), /^hostname: 1048576 characters, at most 4096$/],
  ["a boot disk that is not in the layout", (l) => void (l.boot.disk = "/dev/sdb"), /^boot\.disk: "\/dev\/sdb" is not a disk of the layout$/],
  ["an EFI directory climbing out", (l) => void (l.boot.efiDir = "/boot/../../etc"), /^boot\.efiDir: /],
  ["an EFI loader id with a slash", (l) => void (l.boot.bootloaderId = "../../x"), /^boot\.bootloaderId: /],
  ["a DLE restoring outside the target", (l) => void (l.dles["/"] = "/../.."), /^dles\.\/: "\/\.\.\/\.\." is not an absolute path in normal form/],
  ["too many disks", (l) => void (l.disks = Array.from({ length: LAYOUT_LIMITS.disks + 1 }, () => l.disks[0]!)), /^disks: 65 entries, at most 64$/],
  ["the same disk twice", (l) => void (l.disks = [l.disks[0]!, l.disks[0]!]), /^disks: a disk is listed twice$/],
  ["a btrfs subvolume climbing out (create_subvol)", (l) => Object.assign(l.filesystems[1]!, { type: "btrfs", mkfsOptions: [], subvolumes: ["@", "../../etc"] }), /^filesystems\.1\.subvolumes\.1: "\.\.\/\.\.\/etc" is not a relative path in normal form/],
  ["an MD array over a path that is no device", (l) => void l.md.push({ path: "/dev/md0", name: null, level: "raid1", metadata: "1.2", uuid: "", members: ["/dev/sda2", "/tmp/x"], sizeBytes: 0, table: null }), /^md\.0\.members\.1: "\/tmp\/x" is not a device path/],
  ["an MD level mdadm does not have", (l) => void l.md.push({ path: "/dev/md0", name: null, level: "raid1 --force", metadata: "1.2", uuid: "", members: ["/dev/sda2"], sizeBytes: 0, table: null }), /^md\.0\.level: /],
  ["a LUKS name climbing out of /dev/mapper", (l) => void l.luks.push({ ...LUKS, name: "../sdb" }), /^luks\.0\.name: "\.\.\/sdb" is not a device-mapper name$/],
  ["an option smuggled in a LUKS cipher", (l) => void l.luks.push({ ...LUKS, cipher: "aes-xts-plain64 --header=/dev/sdb" }), /^luks\.0\.cipher: "aes-xts-plain64 --header=\/dev\/sdb" is not a cipher Lifeboat formats LUKS with \(ALGORITHM-MODE; aes, /],
  ["a LUKS cipher of no mode", (l) => void l.luks.push({ ...LUKS, cipher: "aes" }), /^luks\.0\.cipher: "aes" is not a cipher/],
  ["a LUKS key size that is no size", (l) => void l.luks.push({ ...LUKS, keySizeBits: 1000 }), /^luks\.0\.keySizeBits: 1000 is not a LUKS key size in bits \(128, 192, 256, 384, 512\)$/],
  ["a device as the LUKS hash", (l) => void l.luks.push({ ...LUKS, hash: "/dev/sdb" }), /^luks\.0\.hash: "\/dev\/sdb" is not a hash Lifeboat formats LUKS with/],
  ["an LV whose path is not /dev/VG/LV", (l) => {
    l.lvm.vgs.push({ name: "vg0", uuid: "", extentBytes: 4 << 20, sizeBytes: 0 });
    l.lvm.lvs.push({ vg: "vg0", name: "root", uuid: "", sizeBytes: 4 << 20, path: "/dev/sdb", segtype: "linear" });
  }, /^lvm\.lvs\.0\.path: "\/dev\/sdb" is not \/dev\/vg0\/root$/],
  ["a VG named after a directory of /dev", (l) => void l.lvm.vgs.push({ name: "mapper", uuid: "", extentBytes: 4 << 20, sizeBytes: 0 }), /^lvm\.vgs\.0\.name: "mapper" is not a volume group name$/],
];

describe("layoutProblem: what a layout may hold", () => {
  it("every captured fixture and the ReaR import pass", () => {
    for (const name of FIXTURES) expect(layoutProblem(fixtureLayout(name)), name).toBeNull();
    const rear = layoutFromRear(readFileSync(new URL("../../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url), "utf8"), "oldbox");
    expect(layoutProblem(rear)).toBeNull();
  });

  it("what real machines have passes: a top-level btrfs mount (subvol=), an EFI directory with a space, NTFS, a partitioned MD array", () => {
    const l = structuredClone(fixtureLayout("gpt-uefi"));
    l.mounts[0]!.options = "subvol=";
    l.boot.bootloaderId = "ASUS Tools";
    l.filesystems.push({ dev: "/dev/md127p1", type: "ntfs", uuid: "1A2B3C4D5E6F7081", label: "Data", sizeBytes: 1 << 30, usedBytes: null, mkfsOptions: [], subvolumes: [], defaultSubvolume: null, nocow: [] });
    expect(layoutProblem(l)).toBeNull();
  });

  for (const [what, change, reason] of HOSTILE)
    it(`refuses ${what}, in one line`, () => {
      const l = structuredClone(fixtureLayout("gpt-uefi"));
      change(l);
      const r = layoutProblem(l);
      expect(r).toMatch(reason);
      expect(r!.split("\n")).toHaveLength(1);
      expect(r!.length).toBeLessThan(300);
    });

  it("the plan builder refuses a hostile layout (stored before the check existed) before any step", () => {
    const l = structuredClone(fixtureLayout("gpt-uefi"));
    l.filesystems[1]!.mkfsOptions = ["-O", "has_journal", "/dev/sdb"];
    const r = buildPlan({ layout: l, targets: [], options: { mapping: { sda: "sda" } } });
    expect(r).toMatchObject({ ok: false, reason: 'layout of fixture: filesystems.1.mkfsOptions: mkfs option "/dev/sdb" is not one Lifeboat passes to mkfs.ext4' });
    expect("steps" in r).toBe(false);
  });

  it("the plan builder refuses a restore chain whose mount point climbs out", () => {
    const l = fixtureLayout("mbr-ext4");
    const chain = { dle: "evil", mountpoint: "/../../etc", program: "gtar" as const, dumps: [{ id: "d", level: 0, datestamp: "20260101", sizeBytes: 1, compression: "none" }] };
    const r = buildPlan({ layout: l, targets: [{ name: "vda", path: "/dev/vda", sizeBytes: l.disks[0]!.sizeBytes, serial: null, wwn: null, model: null, bus: null, byId: [], logicalSectorSize: 512, signatures: [], removable: false }], chains: [chain], options: { mapping: { sda: "vda" } } });
    expect(r.ok).toBe(false);
    expect(r.ok ? "" : r.reason).toBe('DLE evil: mount point "/../../etc" is not an absolute path in normal form (no "..", "." or "//")');
  });
});

describe("PUT /api/v1/hosts/:name/layout validates and needs the right token", () => {
  const ADMIN = "admin-token-for-the-test";
  const HOST_TOKEN = "host-capture-token";
  let app: FastifyInstance;
  let store: SqliteStore;
  beforeAll(async () => {
    store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: hashToken(HOST_TOKEN), smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    const ctx = { store, log: createLogger("silent", { pretty: false }), adminToken: ADMIN, metrics: new Registry() } as unknown as ServerContext;
    app = Fastify();
    answerErrors(app);
    await app.register(captureRoutes(ctx), { prefix: `${API_BASE}/hosts` });
  });
  afterAll(async () => app.close());
  const put = (body: unknown, token?: string, host = "web1") =>
    app.inject({ method: "PUT", url: `/api/v1/hosts/${host}/layout`, payload: body as object, headers: token ? { authorization: `Bearer ${token}` } : {} });

  it("a layout document needs the admin token: the host's capture token is refused", async () => {
    const doc = fixtureLayout("gpt-uefi");
    const r = await put(doc, HOST_TOKEN);
    expect(r.statusCode).toBe(401);
    expect(r.json().message).toBe("host web1: a lifeboat-layout/1 document needs the admin token (hosts upload captures: lifeboat-capture/1)");
    expect((await put(doc)).statusCode).toBe(401);
    const ok = await put(doc, ADMIN);
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await store.audit.list({ target: "host:web1" }))[0]).toMatchObject({ action: "host.layout", detail: { version: ok.json().version } });
    expect((await put(doc, ADMIN, "nohost")).statusCode).toBe(404);
  });

  it("a capture from capture.sh is accepted with the host's token", async () => {
    const r = await put(fixtureDoc("md-raid1-lvm"), HOST_TOKEN);
    expect(r.statusCode, r.body).toBe(200);
  });

  for (const [what, change, reason] of HOSTILE)
    it(`refuses ${what} (400, one line, nothing stored)`, async () => {
      const before = (await store.layouts.versions("web1")).length;
      const l = structuredClone(fixtureLayout("gpt-uefi"));
      change(l);
      const r = await put(l, ADMIN);
      expect(r.statusCode).toBe(400);
      const message = r.json().message as string;
      expect(message.startsWith("layout of web1 refused: "), message).toBe(true);
      expect(message.slice("layout of web1 refused: ".length)).toMatch(reason);
      expect(message).not.toContain("\n");
      expect((await store.layouts.versions("web1")).length).toBe(before);
    });

  it("a capture whose findmnt or lsblk output climbs out is refused too", async () => {
    const mounts = fixtureDoc("gpt-uefi");
    (mounts.mounts as { filesystems: Array<{ target: string }> }).filesystems[1]!.target = "/../../usr/sbin";
    let r = await put(mounts, HOST_TOKEN);
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/^capture of web1 refused: mounts\.\d\.mountpoint: "\/\.\.\/\.\.\/usr\/sbin" is not an absolute path in normal form/);
    const disk = fixtureDoc("mbr-ext4");
    const node = (disk.lsblk as { blockdevices: Array<Record<string, unknown>> }).blockdevices[0]!;
    node.path = "/dev/../sdb";
    r = await put(disk, HOST_TOKEN);
    expect(r.statusCode).toBe(400);
    expect(r.json().message).toMatch(/^capture of web1 refused: disks\.0\.path: "\/dev\/\.\.\/sdb" is not a whole disk/);
  });
});
