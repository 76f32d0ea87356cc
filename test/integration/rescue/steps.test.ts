/**
 * The agent's step functions, one by one, with the real tools on loop devices (root; CI
 * runs as root): the disk-write gate, partition/mkfs/swap/subvolume/mount/fstab/unmount,
 * their resume guards, and a failing mkfs. MD/LVM and opening LUKS need dm/md, which this
 * kernel lacks: they run inside the booted rescue image (image.test.ts). LUKS formatting runs
 * here (cryptsetup luksFormat needs no device-mapper).
 */
import { execSync } from "node:child_process";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { expect, it } from "vitest";
import { loopUnavailable, makeLoop } from "../recovery/loopdev.ts";
import { stepHarness } from "./step-harness.ts";
import { describeNeeding, itNeeding } from "../../helpers/needs.ts";
import { layoutFromRear } from "../../../server/layout/rear-import.ts";
import { AGENT_BASE, targetDiskSchema } from "../../../server/plan/agent-api.ts";
import { buildPlan } from "../../../server/plan/plan.ts";

const MiB = 1024 * 1024;
const why = loopUnavailable();
/** The real cryptsetup (Debian cryptsetup-bin), or null. */
const cryptsetup = (() => {
  try {
    return execSync("command -v cryptsetup", { encoding: "utf8", shell: "/bin/sh" }).trim() || null;
  } catch {
    return null;
  }
})();

/** sha256 of a device's first `bytes` (its whole size when it was made). */
function sha(dev: string, bytes = 64 * MiB): string {
  return createHash("sha256").update(readFileSync(dev).subarray(0, bytes)).digest("hex");
}
const blkid = async (dev: string, tag: string) => (await execa("blkid", ["-o", "value", "-s", tag, dev], { reject: false })).stdout.trim();

describeNeeding(why, "rescue agent step functions on loop devices", () => {
  const { dir, run, target, arm, disarm, step } = stepHarness("steps");

  it("the gate: without a plan from an armed job, nothing is written", async () => {
    const a = await makeLoop(dir, "gate-armed", 64 * MiB);
    await execa("mkfs.ext4", ["-q", a]);
    const before = sha(a);
    disarm();
    expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [a])).exitCode).toBe(0);
    for (const call of [`wipe_disk "$1" x`, `partition "$1" 'label: gpt'`, `make_fs ext4 "$1" "" ""`, `make_swap "$1" "" ""`]) {
      const r = await step(call, [a]);
      expect(r.exitCode, call).toBe(1);
      expect(r.stderr).toMatch(/refused: no plan from an armed job/);
    }
    expect(sha(a)).toBe(before);
    expect(await blkid(a, "TYPE")).toBe("ext4");
  });

  it("the gate: a disk whose serial, size or identity does not match is never written", async () => {
    arm();
    const a = await makeLoop(dir, "gate-id", 64 * MiB);
    const b = await makeLoop(dir, "gate-other", 64 * MiB);
    await execa("mkfs.ext4", ["-q", a]);
    await execa("mkfs.ext4", ["-q", b]);
    const [beforeA, beforeB] = [sha(a), sha(b)];

    // Wrong serial: check_disk fails, and the writes that would follow are refused.
    let r = await step(`check_disk "$1" WRONG-SERIAL "" ${64 * MiB}`, [a]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain("the plan expects 'WRONG-SERIAL'");
    r = await step(`wipe_disk "$1" x`, [a]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refused: .* was not matched by check_disk/);
    // Wrong size.
    r = await step(`check_disk "$1" "" "" ${32 * MiB}`, [a]);
    expect(r.stderr).toContain(`is ${64 * MiB} bytes, the plan expects ${32 * MiB}`);

    // A matched disk does not make another one writable.
    expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [a])).exitCode).toBe(0);
    r = await step(`make_fs xfs "$1" "" ""`, [b]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`${b.slice(5)} (under ${b}) was not matched`);

    // The identity is read again right before each write: a disk that changed is refused.
    truncateSync(join(dir, "gate-id.img"), 80 * MiB);
    await execa("losetup", ["-c", a]);
    r = await step(`wipe_disk "$1" x`, [a]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/changed identity since check_disk/);

    expect(sha(a)).toBe(beforeA);
    expect(sha(b)).toBe(beforeB);
  });

  it("check_disk refuses a partition and a missing device", async () => {
    const a = await makeLoop(dir, "parts", 64 * MiB);
    await execa("sh", ["-c", `printf 'label: dos\\n,16M\\n' | sfdisk -q ${a}`]);
    await execa("partx", ["-u", a], { reject: false });
    let r = await step(`check_disk "$1" "" "" ${16 * MiB}`, [`${a}p1`]);
    expect(r.stderr).toContain("is a partition, not a whole disk");
    r = await step(`check_disk /dev/nonexistent-disk "" "" 1`);
    expect(r.stderr).toContain("does not exist");
  });

  it("wipe, partition, mkfs (ext4, xfs, vfat, btrfs), swap, subvolume, mount, fix_fstab, unmount, and their guards", async () => {
    arm();
    const d = await makeLoop(dir, "full", 600 * MiB);
    await execa("mkfs.ext4", ["-q", d]); // a stale signature the plan must wipe
    expect((await step(`check_disk "$1" "" "" ${600 * MiB}`, [d])).exitCode).toBe(0);

    const labelId = "0d8c5c3a-6e0b-4a43-9b8b-6c1a2d3e4f50";
    const parts: Array<[number, number, string, string]> = [
      [2048, 65536, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "11111111-1111-4111-8111-111111111111"],
      [67584, 131072, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "22222222-2222-4222-8222-222222222222"],
      [198656, 655360, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "33333333-3333-4333-8333-333333333333"],
      [854016, 262144, "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "44444444-4444-4444-8444-444444444444"],
      [1116160, 32768, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "55555555-5555-4555-8555-555555555555"],
    ];
    const script = [
      "label: gpt",
      `label-id: ${labelId.toUpperCase()}`,
      "unit: sectors",
      "first-lba: 2048",
      "sector-size: 512",
      "",
      ...parts.map(([start, size, type, uuid], i) => `${d}p${i + 1} : start=${start}, size=${size}, type=${type}, uuid=${uuid.toUpperCase()}`),
    ].join("\n");

    expect((await step(`guard_wipe_disk "$1" "$2"`, [d, labelId])).exitCode).toBe(1);
    let r = await step(`wipe_disk "$1" "$2"`, [d, labelId]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await blkid(d, "TYPE")).toBe("");
    r = await step(`partition "$1" "$2"`, [d, script]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await step(`guard_partition "$1" "$2"`, [d, script])).exitCode).toBe(0);
    expect((await step(`guard_wipe_disk "$1" "$2"`, [d, labelId])).exitCode).toBe(0);
    const changed = script.replace("size=131072", "size=131000");
    expect((await step(`guard_partition "$1" "$2"`, [d, changed])).exitCode).toBe(1);

    const fs: Array<[string, string, string, string, string[]]> = [
      ["vfat", `${d}p1`, "1234-ABCD", "EFI", []],
      ["ext4", `${d}p2`, "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "root", ["-I", "256"]],
      ["xfs", `${d}p3`, "7a1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "srv", []],
      ["btrfs", `${d}p4`, "8b1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "data", []],
    ];
    for (const [type, dev, uuid, label, opts] of fs) {
      r = await step(`make_fs "$@"`, [type, dev, uuid, label, ...opts]);
      expect(r.exitCode, `${type}: ${r.stderr}`).toBe(0);
      expect(await blkid(dev, "TYPE"), r.stdout + r.stderr).toBe(type);
      expect((await blkid(dev, "UUID")).toLowerCase()).toBe(uuid.toLowerCase());
      expect(await blkid(dev, "LABEL")).toBe(label);
      expect((await step(`guard_make_fs "$@"`, [type, dev, uuid])).exitCode, type).toBe(0);
      expect((await step(`guard_make_fs "$@"`, [type, dev, "00000000-0000-4000-8000-000000000000"])).exitCode).toBe(1);
    }
    expect((await execa("tune2fs", ["-l", `${d}p2`])).stdout).toMatch(/Inode size:\s+256/);

    r = await step(`make_swap "$1" "$2" "$3"`, [`${d}p5`, "9c1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "swap0"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await blkid(`${d}p5`, "TYPE")).toBe("swap");
    expect((await step(`guard_make_swap "$1" "$2" "$3"`, [`${d}p5`, "9c1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b", "swap0"])).exitCode).toBe(0);

    expect((await step(`guard_create_subvol "$1" @home`, [`${d}p4`])).exitCode).toBe(1);
    r = await step(`create_subvol "$1" @home`, [`${d}p4`]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await step(`guard_create_subvol "$1" @home`, [`${d}p4`])).exitCode).toBe(0);

    for (const [dev, mp, type, opts] of [
      [`${d}p2`, "/", "ext4", ""],
      [`${d}p3`, "/srv", "xfs", ""],
      [`${d}p4`, "/home", "btrfs", "subvol=@home"],
      // (vfat is not mounted here: this host kernel has no vfat; the booted image mounts it.)
    ]) {
      r = await step(`mount_fs "$@"`, [dev!, mp!, type!, opts!]);
      expect(r.exitCode, r.stderr).toBe(0);
      expect((await step(`guard_mount_fs "$@"`, [dev!, mp!, type!, opts!])).exitCode).toBe(0);
    }
    const findmnt = (await execa("findmnt", ["-rn", "-o", "TARGET,SOURCE,FSTYPE"])).stdout;
    expect(findmnt).toContain(`${target}/home ${d}p4[/@home] btrfs`);

    mkdirSync(join(target, "etc"), { recursive: true });
    writeFileSync(join(target, "etc/fstab"), "UUID=aaaa-old / ext4 defaults 0 1\nUUID=keep /srv xfs defaults 0 2\n");
    expect((await step(`guard_fix_fstab aaaa-old bbbb-new`)).exitCode).toBe(1);
    r = await step(`fix_fstab aaaa-old bbbb-new`);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(target, "etc/fstab"), "utf8")).toBe("UUID=bbbb-new / ext4 defaults 0 1\nUUID=keep /srv xfs defaults 0 2\n");
    expect((await step(`guard_fix_fstab aaaa-old bbbb-new`)).exitCode).toBe(0);

    writeFileSync(join(run, "agent.log"), "the agent's log\n");
    r = await step("unmount_all");
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await execa("findmnt", ["-rn", "-o", "TARGET"])).stdout).not.toContain(target);
    // The log was written into the restored system before it was unmounted.
    await execa("mount", [`${d}p2`, target]);
    expect(readFileSync(join(target, "var/log/lifeboat/recovery-job-steps.log"), "utf8")).toBe("the agent's log\n");
    await execa("umount", [target]);
  });

  it("lb_gate refuses an empty or missing device argument", async () => {
    arm();
    for (const call of ["lb_gate", 'lb_gate ""', 'lb_gate "" ""']) {
      const r = await step(call);
      expect(r.exitCode, call).toBe(1);
      expect(r.stderr, call).toMatch(/^refused: (no device named to check|'' is not a block device); nothing written\n$/);
    }
    // What fix_fstab, set_identity and regen_initramfs gate on when nothing is mounted at the target.
    const r = await step(`lb_gate "$(findmnt -n --mountpoint "$LB_TARGET/" -o SOURCE)"`);
    expect(r.exitCode).toBe(1);
  });

  it("no argument may name a block device other than the gated one: the other device stays byte-identical", async () => {
    arm();
    const a = await makeLoop(dir, "only-a", 160 * MiB);
    const b = await makeLoop(dir, "only-b", 64 * MiB);
    await execa("mkfs.ext4", ["-q", "-L", "other", b]);
    const link = join(dir, "looks-harmless");
    await execa("ln", ["-sf", b, link]);
    const before = sha(b);
    expect((await step(`check_disk "$1" "" "" ${160 * MiB}`, [a])).exitCode).toBe(0);
    const uuid = "5e0d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b";
    for (const [what, args] of [
      ["a second btrfs device", ["btrfs", a, uuid, "btr", b]],
      ["an external ext4 journal", ["ext4", a, uuid, "", "-J", `device=${b}`]],
      ["an xfs log device", ["xfs", a, uuid, "", "-l", `logdev=${b}`]],
      ["a symlink to the other device", ["btrfs", a, uuid, "", link]],
      ["the other device as the label", ["ext4", a, uuid, b]],
    ] as Array<[string, string[]]>) {
      const r = await step(`make_fs "$@"`, args);
      expect(r.exitCode, what).toBe(1);
      expect(r.stderr, what).toMatch(/^refused: argument '.*' names the block device .*, which is not \/dev\/loop\d+; nothing written\n$/);
    }
    const swap = await step(`make_swap "$1" "" "$2"`, [a, b]);
    expect(swap.exitCode).toBe(1);
    const mount = await step(`mount_fs "$1" / ext4 "journal_path=$2"`, [a, b]);
    expect(mount.exitCode).toBe(1);
    expect(mount.stderr).toMatch(/refused: argument 'journal_path=.*' names the block device/);
    expect(sha(b)).toBe(before);
    expect(await blkid(b, "LABEL")).toBe("other");
    expect(await blkid(a, "TYPE")).toBe("");
    // The same calls without the other device do write the gated one.
    const ok = await step(`make_fs "$@"`, ["btrfs", a, uuid, "btr"]);
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(await blkid(a, "TYPE")).toBe("btrfs");
    expect(sha(b)).toBe(before);
  });

  it("mount_fs and restore_dump: gated, mount points in normal form and inside the target", async () => {
    arm();
    const a = await makeLoop(dir, "mnt-a", 64 * MiB);
    const b = await makeLoop(dir, "mnt-b", 64 * MiB);
    await execa("mkfs.ext4", ["-q", a]);
    await execa("mkfs.ext4", ["-q", b]);
    const outside = join(dir, "outside");
    mkdirSync(outside);
    // A device check_disk never matched is not mounted.
    expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [a])).exitCode).toBe(0);
    let r = await step(`mount_fs "$1" /srv ext4 ""`, [b]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refused: .* was not matched by check_disk/);
    for (const mp of ["/../../usr/sbin", `/..${outside}`, "srv", "/srv/", "/srv//x", "/./srv", "/srv\n/x"]) {
      r = await step(`mount_fs "$1" "$2" ext4 ""`, [a, mp]);
      expect(r.exitCode, JSON.stringify(mp)).toBe(1);
      expect(r.stderr, JSON.stringify(mp)).toMatch(/^refused: mount point '[^]*' is not an absolute path in normal form/);
    }
    // A symlink on the target that leads outside it (as a restored tree could hold).
    mkdirSync(join(target, "var"), { recursive: true });
    await execa("ln", ["-sfn", outside, join(target, "var", "escape")]);
    r = await step(`mount_fs "$1" /var/escape/x ext4 ""`, [a]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refused: .*\/var\/escape\/x leads outside/);
    expect(readdirSync(outside)).toEqual([]);
    // restore_dump refuses before any stream is opened (LB_SERVER points nowhere).
    r = await step(`LB_SERVER=http://127.0.0.1:9 restore_dump "$1" gtar 0 none "" /api/v1/dumps/x/stream`, ["/../../tmp"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^refused: mount point '\/\.\.\/\.\.\/tmp' is not an absolute path in normal form/);
    r = await step(`create_subvol "$1" ../../x`, [a]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/refused: subvolume '\.\.\/\.\.\/x' is not a relative path in normal form/);
    // A normal mount point on the matched device is mounted.
    r = await step(`mount_fs "$1" /srv/data ext4 ""`, [a]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((await execa("findmnt", ["-n", "-o", "SOURCE", join(target, "srv/data")])).stdout).toBe(a);
    await execa("umount", [join(target, "srv/data")]);
  });

  it("restore_dump fails a stream that ends short (no hash in the guest: the byte count is its check)", async () => {
    arm();
    const a = await makeLoop(dir, "short", 64 * MiB);
    await execa("mkfs.ext4", ["-q", a]);
    expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [a])).exitCode).toBe(0);
    expect((await step(`mount_fs "$1" /srv ext4 ""`, [a])).exitCode).toBe(0);
    writeFileSync(join(dir, "f"), "restored\n");
    const tar = (await execa("tar", ["-cf", "-", "-C", dir, "f"], { encoding: "buffer" })).stdout as unknown as Buffer;
    // A whole tar that is shorter than the catalog's size; and one cut off mid-body, as Lifeboat
    // cuts a stream whose CRC-32C does not match (every resume is cut off too).
    const srv = createServer((req, res) => {
      if (req.url!.includes("/cut/")) {
        res.writeHead(200, { "content-length": tar.length });
        res.write(tar.subarray(0, 1024), () => res.destroy());
      } else res.end(tar);
    });
    await new Promise<void>((resolve) => srv.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      let r = await step(`LB_SERVER=${base} restore_dump /srv gtar 0 none ${tar.length + 512} /api/v1/dumps/short/stream`);
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`received ${tar.length} bytes, the catalog says ${tar.length + 512}`);
      r = await step(`LB_SERVER=${base} LB_STREAM_RETRIES=1 restore_dump /srv gtar 0 none ${tar.length} /api/v1/dumps/cut/stream`);
      expect(r.exitCode).toBe(1);
      expect(r.stdout + r.stderr).toMatch(/stream interrupted at byte 1024/);
      // Neither is recorded as restored (the guard of a re-run would skip it).
      expect(existsSync(join(run, "restored"))).toBe(false);
    } finally {
      srv.close();
      await execa("umount", [join(target, "srv")], { reject: false });
    }
  });

  it("fix_fstab and set_identity take only UUIDs and host names (they go into sed)", async () => {
    arm();
    const marker = join(dir, "pwned");
    let r = await step(`fix_fstab "$1" new-uuid`, [`x/;e touch ${marker};s/y`]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/^refused: fix_fstab takes two UUIDs/);
    r = await step(`set_identity "$1"`, ["web/;e id;s/"]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/is not a host name/);
    expect(existsSync(marker)).toBe(false);
  });

  itNeeding(cryptsetup ? null : "cryptsetup (Debian cryptsetup-bin, in scripts/apt-packages.txt)", "a LUKS1 /boot in a ReaR layout is planned and formatted LUKS1 with its cipher, key size and hash; hostile values are refused before anything is written", async () => {
    arm();
    const size = 64 * MiB;
    const d = await makeLoop(dir, "luks1", size);
    const uuid = "1b4198c9-d9b0-4c57-b9a3-3433e391e706";
    const layout = layoutFromRear(
      `disk /dev/sda ${size} gpt\npart /dev/sda ${60 * MiB} 1048576 rear-noname none /dev/sda1\n` +
        `crypt /dev/mapper/cr_boot /dev/sda1 type=luks1 cipher=aes-cbc-essiv:sha256 key_size=256 hash=sha1 uuid=${uuid}\n` +
        "fs /dev/mapper/cr_boot /boot ext4 uuid=9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a label=\n",
      "luks1box",
    );
    const name = d.slice(5);
    const plan = buildPlan({ layout, targets: [targetDiskSchema.parse({ name, path: d, sizeBytes: size })], options: { mapping: { sda: name }, luksKeys: [uuid], bootloader: "none" } });
    if (!plan.ok) throw new Error(plan.reason);
    const upToLuks = plan.steps.slice(1, plan.steps.findIndex((x) => x.fn === "create_luks") + 1);
    expect(upToLuks.map((x) => x.fn)).toEqual(["check_disk", "wipe_disk", "partition", "create_luks"]);
    expect(upToLuks.at(-1)!.args).toEqual([`${d}p1`, uuid, "cr_boot", uuid, "luks1", "aes-cbc-essiv:sha256", "256", "sha1"]);

    // The key as the job's key route serves it (a file:// stand-in for the server); opening the
    // container needs dm-crypt, which this kernel lacks: a cryptsetup on PATH records the open
    // and hands everything else to the real one.
    const keys = join(dir, "server", AGENT_BASE, "job-steps", "keys");
    mkdirSync(keys, { recursive: true });
    writeFileSync(join(keys, uuid), "boot passphrase");
    const bin = join(dir, "bin");
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, "cryptsetup"), `#!/bin/sh\nif [ "$1" = open ]; then echo "$@" >'${dir}/opened'; exit 0; fi\nexec '${cryptsetup}' "$@"\n`, { mode: 0o755 });
    const env = `PATH='${bin}':$PATH LB_SERVER='file://${join(dir, "server")}'; export PATH LB_SERVER;`;

    const luks = upToLuks.at(-1)!.args;
    for (const call of upToLuks.slice(0, -1)) expect((await step(`${call.fn} "$@"`, [...call.args])).exitCode, call.fn).toBe(0);
    // A type, cipher, key size or hash that is not a plain word never reaches luksFormat, even if a plan held one.
    for (const [i, bad] of [[5, "aes-xts-plain64 --header=/dev/sdb"], [7, "--hash=sha1"], [4, "luks9"], [6, "256k"]] as const) {
      const args = luks.map((a, k) => (k === i ? bad : a));
      const r = await step(`${env} create_luks "$@"`, [...args]);
      expect([r.exitCode, r.stderr], bad).toEqual([1, expect.stringMatching(/^refused: .*; nothing written\n$/)]);
    }
    expect(await blkid(`${d}p1`, "TYPE")).toBe("");

    const r = await step(`${env} create_luks "$@"`, [...luks]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(readFileSync(join(dir, "opened"), "utf8")).toBe(`open --key-file=${run}/luks-${uuid}.key ${d}p1 cr_boot\n`);
    expect(existsSync(join(run, `luks-${uuid}.key`))).toBe(false);
    const dump = (await execa(cryptsetup!, ["luksDump", `${d}p1`])).stdout;
    expect(dump).toMatch(/^Version:\s+1$/m);
    expect(dump).toMatch(/^Cipher name:\s+aes$/m);
    expect(dump).toMatch(/^Cipher mode:\s+cbc-essiv:sha256$/m);
    expect(dump).toMatch(/^Hash spec:\s+sha1$/m);
    expect(dump).toMatch(/^MK bits:\s+256$/m);
    expect(dump).toMatch(new RegExp(`^UUID:\\s+${uuid}$`, "m"));
  }, 120_000);

  it("a snapper btrfs layout from ReaR: the plan's steps make the subvolumes, mark NOCOW and set the default subvolume; guards hold", async () => {
    arm();
    const size = 400 * MiB;
    const d = await makeLoop(dir, "snapper", size);
    const layout = layoutFromRear(
      `disk /dev/sda ${size} gpt\npart /dev/sda ${390 * MiB} 1048576 rear-noname none /dev/sda1\nfs /dev/sda1 / btrfs uuid=4a1c2d3e-5f60-4718-92a3-b4c5d6e7f809 label=\n` +
        "btrfsdefaultsubvol /dev/sda1 / 268 @/.snapshots/1/snapshot\nbtrfsnormalsubvol /dev/sda1 / 256 @\nbtrfsnormalsubvol /dev/sda1 / 257 @/.snapshots\n" +
        "btrfsnormalsubvol /dev/sda1 / 259 @/var/lib/mariadb\nbtrfsnocopyonwrite @/var/lib/mariadb\n",
      "suse1",
    );
    const name = d.slice(5);
    const plan = buildPlan({ layout, targets: [targetDiskSchema.parse({ name, path: d, sizeBytes: size })], options: { mapping: { sda: name }, bootloader: "none" } });
    if (!plan.ok) throw new Error(plan.reason);
    const steps = plan.steps.slice(1, plan.steps.findIndex((x) => x.fn === "set_default_subvol") + 1);
    for (const call of steps) {
      const r = await step(`${call.fn} "$@"`, [...call.args]);
      expect(r.exitCode, `${call.fn}: ${r.stderr}`).toBe(0);
    }
    for (const call of steps.filter((x) => x.fn === "set_nocow" || x.fn === "set_default_subvol")) expect((await step(`guard_${call.fn} "$@"`, [...call.args])).exitCode, call.fn).toBe(0);
    expect((await step(`guard_set_default_subvol "$1" @`, [`${d}p1`])).exitCode).toBe(1);
    // What the restored system sees: a mount without subvol= opens the default; the NOCOW subvolume has C.
    const top = join(dir, "snapper-top");
    mkdirSync(top);
    await execa("mount", ["-t", "btrfs", "-o", "subvolid=5", `${d}p1`, top]);
    try {
      expect((await execa("btrfs", ["subvolume", "get-default", top])).stdout).toMatch(/ path @\/\.snapshots\/1\/snapshot$/);
      expect((await execa("lsattr", ["-d", join(top, "@/var/lib/mariadb")])).stdout.split(" ")[0]).toContain("C");
      expect((await execa("lsattr", ["-d", join(top, "@")])).stdout.split(" ")[0]).not.toContain("C");
    } finally {
      await execa("umount", [top]);
    }
  });

  it("a failing mkfs returns non-zero with the tool's own message", async () => {
    arm();
    const d = await makeLoop(dir, "mkfs-fail", 64 * MiB);
    expect((await step(`check_disk "$1" "" "" ${64 * MiB}`, [d])).exitCode).toBe(0);
    const r = await step(`make_fs ext4 "$1" "" "" -O no_such_feature`, [d]);
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toMatch(/no_such_feature/);
    expect(await blkid(d, "TYPE")).toBe("");
  });
});
