import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { expect, it } from "vitest";
import { helloSchema, targetDiskSchema } from "../../../server/plan/agent-api.ts";
import { resolveMapping } from "../../../server/plan/disks.ts";
import { type Capture, layoutFromCapture, parseCapture } from "../../../server/layout/layout-capture.ts";
import type { DiskLayout } from "../../../server/layout/layout.ts";
import { buildPlan } from "../../../server/plan/plan.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { agentSh } from "../../unit/rescue/agent-sh.ts";
import { cleanupLoopsAfterAll, loopUnavailable, makeLoop, mountTracked, rescan, trackMount } from "./loopdev.ts";
import { planCalls } from "./plan-calls.ts";
import { describeNeeding } from "../../helpers/needs.ts";

/**
 * Real tools on loop devices: real GPT and MBR tables with ext4, xfs, vfat and swap are
 * captured with capture.sh (restricted to these loop devices), a plan is built for fresh
 * loop devices, run by the rescue agent's own step functions (rescue-image/agent), and the
 * result captured again: UUIDs, labels, types and sizes must be what the plan said.
 * LVM, MD and LUKS need device-mapper/MD, which the CI kernel lacks: see the end of the file.
 */

const root = fileURLToPath(new URL("../../../", import.meta.url));
const captureSh = join(root, "server/layout/capture.sh");
const agentLib = join(root, "rescue-image/agent/lib.sh");
const agentSteps = join(root, "rescue-image/agent/steps.sh");
const MiB = 1024 * 1024;

const unavailable = loopUnavailable();

async function capture(devices: string[], shell = "sh"): Promise<Capture> {
  const cmd = shell === "busybox" ? ["busybox", "sh"] : [shell];
  const r = await execa(cmd[0]!, [...cmd.slice(1), captureSh, "--stdout", "--devices", devices.join(" ")]);
  return parseCapture(JSON.parse(r.stdout));
}

async function sfdisk(dev: string, script: string): Promise<void> {
  await execa("sfdisk", ["-q", dev], { input: script });
  await rescan(dev);
}

const HOSTILE_LABEL = 'r"o$t`x` y';
const HOSTILE_PARTNAME = 'root "disk" $HOME `id` \\ ü';

/** Two source disks: GPT (ESP vfat, ext4, xfs, swap) and MBR (ext4 boot, extended: xfs, swap). */
async function makeSources(dir: string) {
  const gpt = await makeLoop(dir, "src-gpt", 600 * MiB);
  const mbr = await makeLoop(dir, "src-mbr", 600 * MiB);
  await sfdisk(
    gpt,
    [
      "label: gpt",
      "size=40MiB, type=U, name=\"EFI system\"",
      `size=64MiB, type=L, name="${HOSTILE_PARTNAME.replace(/["\\]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`)}"`,
      "size=320MiB, type=L",
      "type=S",
    ].join("\n"),
  );
  await sfdisk(mbr, ["label: dos", "size=100MiB, type=83, bootable", "type=5", "size=320MiB, type=83", "type=82"].join("\n"));
  await execa("mkfs.vfat", ["-n", "EFI SYS", `${gpt}p1`]);
  await execa("mkfs.ext4", ["-q", "-L", HOSTILE_LABEL, `${gpt}p2`]);
  await execa("mkfs.xfs", ["-q", "-L", "data'x", `${gpt}p3`]);
  await execa("mkswap", ["-L", "sw ap", `${gpt}p4`]);
  await execa("mkfs.ext4", ["-q", "-L", "boot", "-O", "^metadata_csum", `${mbr}p1`]);
  await execa("mkfs.xfs", ["-q", `${mbr}p5`]);
  await execa("mkswap", [`${mbr}p6`]);
  // btrfs with two subvolumes, @home mounted (the subvolume list needs a mounted filesystem),
  // @ the default subvolume (snapper's root is one) and @home NOCOW (issue 26 item 4).
  const btr = await makeLoop(dir, "src-btrfs", 400 * MiB);
  await sfdisk(btr, "label: gpt\ntype=L\n");
  await execa("mkfs.btrfs", ["-q", "-L", "b tr", `${btr}p1`]);
  const top = join(dir, "src-btrfs-top");
  mkdirSync(top);
  await mountTracked(`${btr}p1`, top);
  await execa("btrfs", ["-q", "subvolume", "create", join(top, "@")]);
  await execa("btrfs", ["-q", "subvolume", "create", join(top, "@home")]);
  await execa("btrfs", ["subvolume", "set-default", join(top, "@")]);
  await execa("chattr", ["+C", join(top, "@home")]);
  await execa("umount", [top]);
  const home = join(dir, "src-home");
  mkdirSync(home);
  await execa("mount", ["-o", "subvol=@home", `${btr}p1`, home]);
  trackMount(home);
  // Some data on the mounted root, so used bytes are real.
  const mnt = join(dir, "src-root");
  mkdirSync(mnt);
  await mountTracked(`${gpt}p2`, mnt);
  await execa("dd", ["if=/dev/urandom", `of=${join(mnt, "data.bin")}`, "bs=1M", "count=6", "status=none"]);
  await execa("sync");
  return { gpt, mbr, btr, mnt, home };
}

/**
 * The original disk is gone in a real recovery; here it stays attached, and mkfs.btrfs
 * refuses a UUID the kernel already knows ("non-unique UUID"). Wipe it and make the kernel
 * forget it, as if it were gone.
 */
async function retireBtrfs(part: string): Promise<void> {
  // A mount namespace made elsewhere while it was mounted (`ip netns exec`, `unshare -m` in a
  // test running beside this one) keeps a copy of the mount, and the device busy, until its
  // process ends: those are short-lived, so wipefs is tried again for a while.
  for (let tries = 1; ; tries++) {
    const r = await execa("wipefs", ["-a", "-q", part], { reject: false });
    if (r.exitCode === 0) break;
    if (tries === 60 || !/busy/i.test(r.stderr)) throw new Error(`wipefs ${part} (try ${tries}): ${r.stderr}`);
    await new Promise((res) => setTimeout(res, 500));
  }
  await execa("btrfs", ["device", "scan", "--forget"], { reject: false });
}

async function targetDisk(path: string) {
  const size = Number((await execa("blockdev", ["--getsize64", path])).stdout);
  return targetDiskSchema.parse({ name: path.replace("/dev/", ""), path, sizeBytes: size });
}

/**
 * Runs a rendered plan with the rescue agent's real step functions (rescue-image/agent) on
 * this host: the plan's calls are read by a real sh (planCalls), then each runs in its own
 * process with lib.sh and steps.sh loaded, in order, stopping at the first failure, as the
 * agent does. Shims for vgchange/mdadm/cryptsetup/dmsetup keep its unmount_all away from
 * the host's own volumes.
 */
async function runPlan(dir: string, script: string, tag: string): Promise<{ exitCode: number; log: string }> {
  const run = join(dir, `run-${tag}`);
  const shim = join(dir, "shim");
  mkdirSync(run, { recursive: true });
  mkdirSync(shim, { recursive: true });
  for (const tool of ["vgchange", "mdadm", "cryptsetup", "dmsetup"])
    writeFileSync(join(shim, tool), `#!/bin/sh\necho "${tool} $* (not run in the host test)" >&2\nexit 1\n`, { mode: 0o755 });
  // No udev on the CI host: `partx -u` updates primaries but never adds logical partitions
  // (udev would); the shim adds them too. The rescue image runs udevd.
  const partx = (await execa("sh", ["-c", "command -v partx"])).stdout.trim();
  writeFileSync(join(shim, "partx"), `#!/bin/sh\n${partx} "$@"; rc=$?\n[ "$1" = -u ] && ${partx} -a "$2" 2>/dev/null\nexit $rc\n`, { mode: 0o755 });
  const target = join(dir, `target-${tag}`);
  trackMount(target);
  writeFileSync(join(run, "armed"), `test-${tag}\n`);
  let log = "";
  for (const [i, call] of (await planCalls(script)).entries()) {
    const r = await agentCall(dir, tag, call.fn, call.args);
    log += `step ${i + 1} ${call.fn}: exit ${r.exitCode}\n${r.all}\n`;
    if (r.exitCode !== 0) return { exitCode: r.exitCode ?? 1, log };
  }
  return { exitCode: 0, log };
}

/** Runs a whole plan with the agent's own runner (lb_run_plan: records, guards, resume). */
async function runWithAgentRunner(dir: string, tag: string, script: string, extraPath: string): Promise<{ exitCode: number; log: string }> {
  const run = join(dir, `run-${tag}`);
  mkdirSync(run, { recursive: true });
  writeFileSync(join(run, "plan.sh"), script);
  trackMount(join(dir, `target-${tag}`));
  const env = {
    AGENT_LIB: agentLib,
    AGENT_STEPS: agentSteps,
    LB_RUN: run,
    LB_TARGET: join(dir, `target-${tag}`),
    LB_JOB: `test-${tag}`,
    PATH: `${extraPath}:${join(dir, "shim")}:${process.env.PATH}`,
  };
  const sh = '. "$AGENT_LIB"; . "$AGENT_STEPS"; lb_event() { :; }; echo "$LB_JOB" >"$LB_RUN/armed"; lb_run_plan "$LB_RUN/plan.sh"';
  const r = await execa("sh", ["-c", sh], { reject: false, all: true, env, stdin: "ignore" });
  return { exitCode: r.exitCode ?? 1, log: r.all ?? "" };
}

async function blkidUuids(disk: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const n of [1, 2, 3, 4]) {
    const r = await execa("blkid", ["-p", "-s", "UUID", "-o", "value", `${disk}p${n}`], { reject: false });
    if (r.stdout.trim()) out[`${disk}p${n}`] = r.stdout.trim();
  }
  return out;
}

/** Runs one agent function (a step or its guard) in its own process, as the agent does. */
function agentCall(dir: string, tag: string, fn: string, args: readonly string[]) {
  const env = {
    AGENT_LIB: agentLib,
    AGENT_STEPS: agentSteps,
    LB_RUN: join(dir, `run-${tag}`),
    LB_TARGET: join(dir, `target-${tag}`),
    LB_JOB: `test-${tag}`,
    PATH: `${join(dir, "shim")}:${process.env.PATH}`,
  };
  const sh = '. "$AGENT_LIB"; . "$AGENT_STEPS"; lb_event() { :; }; "$@"';
  return execa("sh", ["-c", sh, "sh", fn, ...args], { reject: false, all: true, env, stdin: "ignore" });
}

/** The parts of a layout a recreation must reproduce, with device paths replaced by roles. */
function shape(l: DiskLayout, roles: Record<string, string>) {
  const role = (p: string) => {
    for (const [dev, name] of Object.entries(roles)) if (p === dev || p.startsWith(`${dev}p`)) return p.replace(dev, name);
    return p;
  };
  return {
    disks: l.disks
      .map((d) => ({
        disk: role(d.path),
        sizeBytes: d.sizeBytes,
        table: d.table && { ...d.table, partitions: d.table.partitions.map((p) => ({ ...p, path: role(p.path) })) },
      }))
      .sort((a, b) => a.disk.localeCompare(b.disk)),
    filesystems: l.filesystems
      .map((f) => ({ dev: role(f.dev), type: f.type, uuid: f.uuid, label: f.label, sizeBytes: f.sizeBytes, mkfsOptions: f.mkfsOptions }))
      .sort((a, b) => a.dev.localeCompare(b.dev)),
    swap: l.swap.map((s) => ({ ...s, dev: role(s.dev) })).sort((a, b) => a.dev.localeCompare(b.dev)),
  };
}

// mkfs, sfdisk and the agent on loop devices: a minute when idle, more on a loaded CI machine.
const LOOP_TEST = { timeout: 180_000 };

describeNeeding(unavailable, "capture.sh and the plan on real loop devices", () => {
  const dir = tempDir("lifeboat-recovery-");
  cleanupLoopsAfterAll();
  let src: Awaited<ReturnType<typeof makeSources>>;
  let layout: DiskLayout;

  it("capture.sh sees exactly what was made (labels, UUIDs, names, mount, used bytes) and only those disks", async () => {
    src = await makeSources(dir);
    const cap = await capture([src.gpt, src.mbr, src.btr]);
    layout = layoutFromCapture(cap);
    expect(layout.disks.map((d) => d.path)).toEqual([src.gpt, src.mbr, src.btr]);
    const gpt = layout.disks[0]!.table!;
    expect(gpt.label).toBe("gpt");
    expect(gpt.partitions.map((p) => p.name)).toEqual(["EFI system", HOSTILE_PARTNAME, null, null]);
    const mbr = layout.disks[1]!.table!;
    expect(mbr.label).toBe("dos");
    expect(mbr.partitions.map((p) => [p.number, p.type, p.bootable])).toEqual([
      [1, "83", true],
      [2, "5", false],
      [5, "83", false],
      [6, "82", false],
    ]);
    // Independent check of every filesystem against blkid.
    for (const f of layout.filesystems) {
      const uuid = (await execa("blkid", ["-p", "-s", "UUID", "-o", "value", f.dev])).stdout;
      expect(f.uuid, f.dev).toBe(uuid);
    }
    const byDev = Object.fromEntries(layout.filesystems.map((f) => [f.dev, f]));
    expect(byDev[`${src.gpt}p1`]).toMatchObject({ type: "vfat", label: "EFI SYS" });
    expect(byDev[`${src.gpt}p2`]).toMatchObject({ type: "ext4", label: HOSTILE_LABEL });
    expect(byDev[`${src.gpt}p3`]).toMatchObject({ type: "xfs", label: "data'x" });
    expect(byDev[`${src.mbr}p1`]!.mkfsOptions.join(" ")).toContain("^metadata_csum");
    expect(byDev[`${src.gpt}p2`]!.usedBytes).toBeGreaterThan(6 * MiB);
    expect(layout.swap.map((s) => s.label)).toEqual(["sw ap", null]);
    expect(byDev[`${src.btr}p1`]).toMatchObject({ type: "btrfs", label: "b tr", subvolumes: ["@", "@home"], defaultSubvolume: "@", nocow: ["@home"] });
    expect(layout.mounts).toEqual([
      { dev: `${src.btr}p1`, mountpoint: src.home, fstype: "btrfs", options: "subvol=@home" },
      { dev: `${src.gpt}p2`, mountpoint: src.mnt, fstype: "ext4", options: "" },
    ]);
    // busybox sh and awk (as on a small host) see the very same layout.
    const bb = layoutFromCapture(await capture([src.gpt, src.mbr, src.btr], "busybox"));
    expect({ ...bb, capturedAt: "" }).toEqual({ ...layout, capturedAt: "" });
    // Nothing outside --devices: the host's own disks are not in the document.
    expect(JSON.stringify(cap.partitionTables.map((t) => t.disk))).toBe(JSON.stringify([src.gpt, src.mbr, src.btr]));
    await execa("umount", [src.home]);
    await retireBtrfs(`${src.btr}p1`);
  });

  it("a plan for fresh disks of the same size, run by the agent's step functions, recreates the same layout", LOOP_TEST, async () => {
    const a = await makeLoop(dir, "tgt-a", 600 * MiB);
    const b = await makeLoop(dir, "tgt-b", 600 * MiB);
    const c = await makeLoop(dir, "tgt-c", 400 * MiB);
    const [src0, src1, src2] = layout.disks.map((d) => d.name);
    const plan = buildPlan({
      layout,
      targets: [await targetDisk(a), await targetDisk(b), await targetDisk(c)],
      options: { mapping: { [src0!]: a, [src1!]: b, [src2!]: c } },
    });
    if (!plan.ok) throw new Error(plan.reason);
    expect(plan.steps.map((s) => s.fn)).toEqual(expect.arrayContaining(["mount_fs", "create_subvol", "unmount_all"]));
    const r = await runPlan(dir, plan.script, "same");
    expect(r.exitCode, r.log).toBe(0);
    const again = layoutFromCapture(await capture([a, b, c]));
    const roles = (x: string, y: string, z: string) => ({ [x]: "disk0", [y]: "disk1", [z]: "disk2" });
    expect(shape(again, roles(a, b, c))).toEqual(shape(layout, roles(src.gpt, src.mbr, src.btr)));
    // The subvolumes, default subvolume and NOCOW subvolume the plan made, captured again with
    // @home mounted as on the source (the list and the C flag need the filesystem mounted).
    const home = join(dir, "check-home");
    mkdirSync(home);
    await execa("mount", ["-o", "subvol=@home", `${c}p1`, home]);
    trackMount(home);
    const btrfs = (l: DiskLayout, dev: string) => l.filesystems.filter((f) => f.dev === dev).map((f) => [f.subvolumes, f.defaultSubvolume, f.nocow]);
    const mounted = layoutFromCapture(await capture([a, b, c]));
    await execa("umount", [home]);
    expect(btrfs(mounted, `${c}p1`)).toEqual(btrfs(layout, `${src.btr}p1`));
    expect(btrfs(mounted, `${c}p1`)).toEqual([[["@", "@home"], "@", ["@home"]]]);
    // Every call that made something can be recognised as done by the agent's guard, from
    // the plan's own arguments: what lets a re-run skip it.
    const guarded = plan.steps.filter((s) => ["wipe_disk", "partition", "make_fs", "make_swap", "create_subvol"].includes(s.fn));
    for (const s of guarded) {
      const g = await agentCall(dir, "same", `guard_${s.fn}`, s.args);
      expect(g.exitCode, `guard_${s.fn} ${s.args.join(" ")}: ${g.all}`).toBe(0);
    }
    await retireBtrfs(`${c}p1`);
  });

  it("on bigger disks the partitions grow as planned and keep UUIDs, labels and types", LOOP_TEST, async () => {
    const a = await makeLoop(dir, "big-a", 900 * MiB);
    const b = await makeLoop(dir, "big-b", 1200 * MiB);
    const c = await makeLoop(dir, "big-c", 500 * MiB);
    const plan = buildPlan({
      layout,
      targets: [await targetDisk(a), await targetDisk(b), await targetDisk(c)],
      options: { mapping: { [layout.disks[0]!.name]: a, [layout.disks[1]!.name]: b, [layout.disks[2]!.name]: c } },
    });
    if (!plan.ok) throw new Error(plan.reason);
    const r = await runPlan(dir, plan.script, "big");
    expect(r.exitCode, r.log).toBe(0);
    const again = layoutFromCapture(await capture([a, b, c]));
    // The tables are what the plan's sfdisk scripts said, sector for sector.
    for (const [i, dev] of [a, b, c].entries()) {
      const script = plan.steps.find((s) => s.fn === "partition" && s.args[0] === dev)!.args[1]!;
      const planned = [...script.matchAll(/p(\d+) : start=(\d+), size=(\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
      expect(again.disks[i]!.table!.partitions.map((p) => [p.number, p.start, p.size])).toEqual(planned);
    }
    expect(again.disks[0]!.table!.partitions.at(-1)!.size).toBeGreaterThan(layout.disks[0]!.table!.partitions.at(-1)!.size);
    const strip = (l: DiskLayout, roles: Record<string, string>) =>
      shape(l, roles).filesystems.map(({ dev, type, uuid, label }) => ({ dev, type, uuid, label }));
    expect(strip(again, { [a]: "d0", [b]: "d1", [c]: "d2" })).toEqual(strip(layout, { [src.gpt]: "d0", [src.mbr]: "d1", [src.btr]: "d2" }));
    // Each filesystem fills its (new) partition.
    for (const f of again.filesystems) {
      const part = again.disks.flatMap((d) => d.table!.partitions).find((p) => p.path === f.dev)!;
      expect(f.sizeBytes, f.dev).toBeGreaterThan(part.size * 512 * 0.9);
    }
  });

  it("the agent's own runner resumes a plan that failed half-way: finished steps are skipped by their guards", LOOP_TEST, async () => {
    const t = await makeLoop(dir, "resume", 600 * MiB);
    const one: DiskLayout = {
      ...layout,
      disks: [layout.disks[0]!],
      filesystems: layout.filesystems.filter((f) => f.dev.startsWith(`${src.gpt}p`)),
      swap: layout.swap.filter((x) => x.dev.startsWith(`${src.gpt}p`)),
      mounts: [],
    };
    const plan = buildPlan({ layout: one, targets: [await targetDisk(t)], options: { mapping: { [one.disks[0]!.name]: t } } });
    if (!plan.ok) throw new Error(plan.reason);
    const mkswap = (await execa("sh", ["-c", "command -v mkswap"])).stdout.trim();
    const flag = join(dir, "fail-mkswap");
    writeFileSync(flag, "");
    mkdirSync(join(dir, "shim-resume"), { recursive: true });
    writeFileSync(join(dir, "shim-resume", "mkswap"), `#!/bin/sh\n[ -e ${flag} ] && { echo "mkswap: simulated failure" >&2; exit 1; }\nexec ${mkswap} "$@"\n`, { mode: 0o755 });
    const first = await runWithAgentRunner(dir, "resume", plan.script, join(dir, "shim-resume"));
    expect(first.exitCode, first.log).not.toBe(0);
    expect(first.log).toMatch(/make_swap exit 1/);
    const uuidsAfterFirst = await blkidUuids(t);
    rmSync(flag);
    const second = await runWithAgentRunner(dir, "resume", plan.script, join(dir, "shim-resume"));
    expect(second.exitCode, second.log).toBe(0);
    const makers = plan.steps.map((x, i) => [x.fn, i + 1] as const).filter(([fn]) => ["wipe_disk", "partition", "make_fs"].includes(fn));
    for (const [fn, n] of makers) expect(readFileSync(join(dir, "run-resume", `step-${n}.out`), "utf8"), `${fn} (step ${n})`).toMatch(/^skipped: /m);
    expect(readFileSync(join(dir, "run-resume", `step-${plan.steps.findIndex((x) => x.fn === "make_swap") + 1}.out`), "utf8")).not.toMatch(/^skipped: /m);
    expect(await blkidUuids(t)).toEqual({ ...uuidsAfterFirst, [`${t}p4`]: one.swap[0]!.uuid });
  });

  it("a target too small is refused before any step, saying by how much", async () => {
    const small = await makeLoop(dir, "small", 200 * MiB);
    const plan = buildPlan({ layout, targets: [await targetDisk(small)], options: { mapping: { [layout.disks[0]!.name]: small } } });
    expect(plan.ok).toBe(false);
    const plan2 = buildPlan({ layout: { ...layout, disks: [layout.disks[0]!] , filesystems: layout.filesystems.filter((f) => f.dev.startsWith(src.gpt)), swap: layout.swap.filter((s) => s.dev.startsWith(src.gpt)), mounts: [] }, targets: [await targetDisk(small)], options: { mapping: { [layout.disks[0]!.name]: small } } });
    expect(plan2).toMatchObject({ ok: false, reason: expect.stringMatching(/does not fit, .* more needed/) });
    // Nothing was written: the small disk is still all zeros at its start.
    const head = (await execa("sh", ["-c", `dd if=${small} bs=1M count=2 status=none | tr -d '\\000' | wc -c`])).stdout.trim();
    expect(head).toBe("0");
  });
});

describeNeeding(unavailable, "a USB disk on loop devices: left out of the capture, never a target (issue 15 item 5)", () => {
  const dir = tempDir("lifeboat-usb-");
  cleanupLoopsAfterAll();
  /** sha256 of a whole device. */
  const sha = async (dev: string) => (await execa("sh", ["-c", `sha256sum < ${dev}`])).stdout.slice(0, 64);

  it("capture.sh and the plan leave the USB disk alone; the agent writes only the internal target", async () => {
    const internal = await makeLoop(dir, "internal", 64 * MiB);
    const usb = await makeLoop(dir, "usb", 64 * MiB);
    for (const [dev, label] of [[internal, "root"], [usb, "backup"]] as const) {
      await sfdisk(dev, "label: gpt\ntype=L\n");
      await execa("mkfs.ext4", ["-q", "-L", label, `${dev}p1`]);
    }
    // The real capture.sh; a loop device cannot be removable or on USB, so lsblk's RM and TRAN
    // for the "usb" loop are set in its document: a stand-in for a USB disk.
    const raw = JSON.parse((await execa("sh", [captureSh, "--stdout", "--devices", `${internal} ${usb}`])).stdout) as Record<string, unknown> & { includeRemovable: boolean };
    expect(raw.includeRemovable).toBe(false);
    const node = (raw.lsblk as { blockdevices: Array<Record<string, unknown>> }).blockdevices.find((n) => n.path === usb || n.name === usb)!;
    Object.assign(node, { rm: true, tran: "usb" });
    const layout = layoutFromCapture(parseCapture(raw));
    expect(layout.disks.map((d) => d.path)).toEqual([internal]);
    expect(layout.filesystems.map((f) => f.label)).toEqual(["root"]);
    // Captured on purpose (--include-removable), it is kept and marked.
    const withUsb = layoutFromCapture(parseCapture({ ...raw, includeRemovable: true }));
    expect(withUsb.disks.map((d) => [d.path, d.removable])).toEqual([
      [internal, false],
      [usb, true],
    ]);
    const included = JSON.parse((await execa("sh", [captureSh, "--stdout", "--include-removable", "--devices", internal])).stdout) as { includeRemovable: boolean };
    expect(included.includeRemovable).toBe(true);

    // The new machine: a fresh internal disk and the USB disk, as the agent's own lb_disk_json
    // reports them (the USB flags again a stand-in), through the hello schema.
    const fresh = await makeLoop(dir, "fresh", 64 * MiB);
    const report = async (dev: string) => JSON.parse((await agentSh('lb_disk_json "$1"', { args: [dev.slice(5)] })).stdout) as Record<string, unknown>;
    const hello = helloSchema.parse({ disks: [await report(fresh), { ...(await report(usb)), bus: "usb", removable: true }] });
    expect(hello.disks.map((d) => [d.path, d.removable, d.bus])).toEqual([
      [fresh, false, null],
      [usb, true, "usb"],
    ]);
    const captured = layout.disks[0]!.name;
    const onUsb = buildPlan({ layout, targets: hello.disks, options: { mapping: resolveMapping({ [captured]: usb.slice(5) }, hello.disks) } });
    expect(onUsb.ok ? "" : onUsb.reason).toMatch(new RegExp(`^mapping ${captured}=${usb.slice(5)}: ${usb.slice(5)} is a removable or USB disk, which plans leave alone unless removable disks are included`));
    const plan = buildPlan({ layout, targets: hello.disks, options: { mapping: resolveMapping({ [captured]: fresh.slice(5) }, hello.disks) } });
    if (!plan.ok) throw new Error(plan.reason);
    expect(plan.script).not.toContain(usb);

    const before = await sha(usb);
    const r = await runPlan(dir, plan.script, "usb");
    expect(r.exitCode, r.log).toBe(0);
    expect(await sha(usb)).toBe(before);
    expect((await execa("blkid", ["-o", "value", "-s", "LABEL", `${fresh}p1`])).stdout).toBe("root");
    expect((await execa("blkid", ["-o", "value", "-s", "UUID", `${fresh}p1`])).stdout).toBe(layout.filesystems[0]!.uuid);
  });
});

// LVM, MD RAID and LUKS need device-mapper and MD, which the CI host kernel lacks: their
// capture → plan → recreate → capture-again cycle runs inside the rescue image's QEMU machines
// (test/integration/rescue/image.test.ts, "MD RAID1 + LUKS + LVM: captured by capture.sh …").
