/**
 * Without network boot (issue 24 part 2), every part for real: `lifeboat image iso` writes the
 * hybrid medium from the rescue image `lifeboat image build` makes (the same kernel and
 * initramfs), and two QEMU machines boot it on a namespace LAN where nobody answers DHCP and
 * nothing network-boots (Lifeboat serves HTTP only, dhcp.mode off; the NICs have no boot ROM):
 *
 * 1. SeaBIOS boots the medium made with `--host` as a CD-ROM; its agent takes a static address
 *    (`--net static:`), trades the one-time code the medium carries for its job's token, and the
 *    job restores the host from the real Amanda lab as a network-booted one would (same plan,
 *    same gate: the disk matched by serial).
 * 2. The same image file written to a USB disk boots under OVMF with Secure Boot enforced (shim →
 *    Debian's signed CD GRUB → Debian's signed kernel). Its code was spent by machine 1, so a copy
 *    of the medium gets nothing: the agent says why on the console and asks; the admin's fresh code
 *    (`jobs code`), typed on the serial console, gets it its new job, and it reports its disks.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEFAULT_CACHE_DIR, buildImage } from "../../rescue-image/build.ts";
import { fetchSignedLoaders } from "../../rescue-image/signed-loaders.ts";
import { OVMF_SB_CODE, firmwareArgs, freshOvmfVars, qemuAccelerator, vmHandle, type Vm } from "../../server/drill/qemu.ts";
import type { JobView } from "../../server/jobs/job-views.ts";
import { type AmandaLab, amandaLab, amandaLabUnavailable, treeManifest } from "../helpers/amanda-lab.ts";
import { lifeboatBin } from "../helpers/cli.ts";
import { describeNeeding } from "../helpers/needs.ts";
import { type Lan, createLan, netnsUnavailable } from "../helpers/netns.ts";
import { qemuUnavailable } from "../helpers/qemu.ts";
import { tempDir } from "../helpers/tmp.ts";
import { type NsServer, serveInNs } from "../integration/netboot/lifeboat-ns.ts";
import { rescan } from "../integration/recovery/loopdev.ts";

const SUBNET = "10.231.33";
const SERVER = `http://${SUBNET}.1:8080`;
const MAC = "52:54:00:33:00:01";
const CAPTURE = fileURLToPath(new URL("../fixtures/layouts/mbr-ext4.capture.json", import.meta.url));
const SERIAL = "QM00001";

const needed = ["/usr/bin/xorriso", "/usr/lib/grub/i386-pc/boot_hybrid.img", "/usr/bin/mcopy", "/usr/sbin/mkfs.vfat", OVMF_SB_CODE].find((f) => !existsSync(f));
const skip =
  qemuUnavailable() ?? (await netnsUnavailable()) ?? amandaLabUnavailable() ?? (needed ? `${needed} is missing (scripts/apt-packages.txt: xorriso, grub-pc-bin, mtools, dosfstools, ovmf)` : undefined);

describeNeeding(skip, "without network boot: the rescue ISO as a CD-ROM (BIOS, static address) and on a USB disk (OVMF, Secure Boot)", () => {
  const work = tempDir("lbtiso-");
  const dataDir = join(work, "data");
  const iso = join(work, "rescue.iso");
  let lab: AmandaLab;
  let lan: Lan;
  let srv: NsServer;
  const vms: Vm[] = [];

  const cli = async (...args: string[]) => {
    const argv = [process.execPath, lifeboatBin, ...args, "--config", join(dataDir, "lifeboat.yaml")];
    const r = await lan.exec("srv", argv, { reject: false, timeout: 900_000 });
    if (r.exitCode !== 0) throw new Error(`lifeboat ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}\n${r.stdout.slice(-4000)}`);
    return r.stdout;
  };
  const job = async (id: string) => JSON.parse(await cli("jobs", "show", id, "--json", "--server", SERVER)) as JobView;
  const tail = () => `--- lifeboat log tail ---\n${srv.log().split("\n").slice(-30).join("\n")}\n${vms.map((v, i) => `--- vm ${i} serial tail ---\n${v.serial().slice(-2500)}`).join("\n")}`;

  /** A machine with no network boot: its NIC has no boot ROM; it boots what `boot` attaches. Its serial console is a socket (typed into) logged to a file. */
  const machine = (i: number, firmware: "bios" | "uefi", boot: string[], extra: string[] = []) => {
    const serialLog = join(work, `vm-${i}.serial`);
    const sock = join(work, `vm-${i}.sock`);
    writeFileSync(serialLog, "");
    const proc = lan.spawn(
      "lan",
      [
        "qemu-system-x86_64", ...qemuAccelerator().args, "-m", "1024", "-smp", "1",
        ...firmwareArgs(firmware, () => freshOvmfVars(work, `vm${i}`, true), firmware === "uefi"),
        "-display", "none", "-vga", "none", "-no-reboot",
        "-chardev", `socket,id=s0,path=${sock},server=on,wait=off,logfile=${serialLog}`, "-serial", "chardev:s0",
        "-netdev", `tap,id=n0,ifname=tap${i},script=no,downscript=no`, "-device", `virtio-net-pci,romfile=,netdev=n0,mac=52:54:00:33:00:0${i + 1}`,
        ...boot, ...extra,
      ],
      { stdout: `${serialLog}.stdout`, stderr: `${serialLog}.stderr` },
    );
    const vm = vmHandle(proc, serialLog);
    vms.push(vm);
    const type = async (line: string) => {
      for (let t = 0; !existsSync(sock) && t < 50; t++) await new Promise((r) => setTimeout(r, 100));
      await new Promise<void>((resolve, reject) => {
        const c = createConnection(sock, () => c.end(`${line}\r`, () => setTimeout(() => (c.destroy(), resolve()), 500)));
        c.on("error", reject);
      });
    };
    return { vm, type };
  };

  beforeAll(async () => {
    lab = await amandaLab();
    const image = join(dataDir, "image");
    // The rescue image as `lifeboat image build` makes it (from the shared package cache, into this test's dir),
    await buildImage({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, sshKeys: [], progress: () => undefined });
    // and the signed loaders beside it, from a copy of the cached packages (the shared unpacked tree is left alone).
    const debs = join(work, "signed-cache/signed-loaders/debs");
    mkdirSync(debs, { recursive: true });
    const shared = join(DEFAULT_CACHE_DIR, "signed-loaders/debs");
    if (existsSync(shared)) for (const f of readdirSync(shared)) copyFileSync(join(shared, f), join(debs, f));
    await fetchSignedLoaders({ cacheDir: join(work, "signed-cache"), outDir: image, progress: () => undefined });
    lan = await createLan({ prefix: "lbtiso", subnet: SUBNET, members: { srv: 1 } });
    for (const t of ["tap0", "tap1"]) await lan.addTap(t);
    // HTTP only: no DHCP (not even proxy), no TFTP on this LAN.
    srv = await serveInNs(
      lan,
      "srv",
      dataDir,
      {
        listen: { interface: "eth0" },
        http: { port: 8080 },
        tftp: { enabled: false },
        dhcp: { mode: "off" },
        amanda: [{ name: lab.config, configDir: lab.configDir, vtapeRoot: lab.vtapes, holdingDirs: [lab.holding] }],
        catalog: { refreshMinutes: 0 },
      },
      ["http"],
    );
    const dles = lab.dles.flatMap((d) => ["--dle", `${d.disk}=/srv/${d.tag}`]);
    const host = JSON.parse(await cli("hosts", "add", "localhost", "--mac", MAC, "--amanda", lab.config, ...dles, "--json", "--server", SERVER)) as { token: string };
    const up = await lan.exec("srv", ["curl", "-fsS", "-X", "PUT", "-H", `authorization: Bearer ${host.token}`, "-H", "content-type: application/json", "--data-binary", `@${CAPTURE}`, `${SERVER}/api/v1/hosts/localhost/layout`], { reject: false });
    expect(up.exitCode, up.stderr).toBe(0);
    await cli("catalog", "refresh", "--json", "--server", SERVER);
    await cli("profiles", "set", "localhost", "--host", "localhost", "--no-bootloader", "--map", `sda=serial:${SERIAL}`, "--server", SERVER);
  }, 1_200_000);

  afterAll(async () => {
    for (const vm of vms) await vm.kill();
    await srv?.stop();
    await lan?.down();
    await lab?.release();
  });

  let firstJob = "";

  it("a CD-ROM under BIOS, static address, no DHCP: the medium's one-time code gets the job, which restores the host", async () => {
    const [armed] = JSON.parse(await cli("jobs", "arm", MAC, "--json", "--server", SERVER)) as JobView[];
    firstJob = armed!.id;
    const t0 = Date.now();
    const made = JSON.parse(await cli("image", "iso", "--server", SERVER, "--host", "localhost", "--net", `static:${SUBNET}.20/24`, "--out", iso, "--json")) as { job: string; out: string };
    expect(made).toMatchObject({ job: firstJob, out: iso });
    // The medium holds a one-time code, never a job token (the token is issued when the code is traded).
    await execa("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", "/boot/grub/grub.cfg", join(work, "grub.cfg")]);
    const cfg = readFileSync(join(work, "grub.cfg"), "utf8");
    expect(cfg).toMatch(new RegExp(`lifeboat\\.server=${SERVER} lifeboat\\.code=[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4} lifeboat\\.ip=${SUBNET}\\.20/24 `));
    expect(cfg).not.toMatch(/lifeboat\.(token|job)=/);

    const disk = join(work, "disk-0.raw");
    writeFileSync(disk, "");
    truncateSync(disk, 1024 * 1024 * 1024);
    const watch = cli("jobs", "watch", firstJob, "--server", SERVER);
    const m = machine(0, "bios", ["-drive", `file=${iso},media=cdrom,if=ide,readonly=on`, "-boot", "order=d"], ["-drive", `file=${disk},if=none,id=d0,format=raw`, "-device", `virtio-blk-pci,drive=d0,serial=${SERIAL}`]);
    try {
      await m.vm.waitSerial(/one-time code taken: job /, 300_000);
      expect(await watch).toMatch(/ done$/m);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${tail()}`);
    }
    console.log(`iso-restore: CD-ROM boot to job done in ${Math.round((Date.now() - t0) / 1000)} s`);
    await m.vm.kill();
    const final = await job(firstJob);
    expect(final).toMatchObject({ state: "done", ip: `${SUBNET}.20`, disks: [expect.objectContaining({ serial: SERIAL })] });
    const events = JSON.parse(await cli("jobs", "log", firstJob, "--json", "--server", SERVER)) as Array<{ type: string; data: { via?: string } }>;
    expect(events.filter((e) => e.type === "boot").map((e) => e.data.via)).toEqual(["one-time code"]);
    // The trees as Amanda last saw them, on the disk matched by serial.
    const loop = (await execa("losetup", ["--find", "--show", "--partscan", "--read-only", disk])).stdout.trim();
    const mnt = join(work, "mnt");
    mkdirSync(mnt, { recursive: true });
    try {
      await rescan(loop);
      await execa("mount", ["-o", "ro", `${loop}p1`, mnt]);
      try {
        const last = lab.runs.at(-1)!.run;
        for (const d of lab.dles) expect(await treeManifest(join(mnt, "srv", d.tag)), `${d.tag} restored`).toBe(lab.manifest(d.tag, last).trimEnd());
      } finally {
        await execa("umount", [mnt]);
      }
    } finally {
      await execa("losetup", ["-d", loop]);
    }
  }, 1_200_000);

  it("the same image on a USB disk under OVMF with Secure Boot: its spent code is refused; a fresh one typed on the console gets it its job", async () => {
    expect(firstJob, "the CD-ROM test ran first").not.toBe("");
    const [armed] = JSON.parse(await cli("jobs", "arm", MAC, "--json", "--server", SERVER)) as JobView[];
    const usb = join(work, "usb.img");
    copyFileSync(iso, usb); // what `dd if=rescue.iso of=/dev/sdX` writes
    const t0 = Date.now();
    const blank = join(work, "disk-1.raw");
    writeFileSync(blank, "");
    truncateSync(blank, 64 * 1024 * 1024);
    const m = machine(1, "uefi", ["-device", "qemu-xhci", "-drive", `file=${usb},if=none,id=u0,format=raw`, "-device", "usb-storage,drive=u0,bootindex=1"], [
      "-drive", `file=${blank},if=none,id=d0,format=raw`, "-device", "virtio-blk-pci,drive=d0,serial=NEW-DISK",
    ]);
    try {
      await m.vm.waitSerial(/Lifeboat refused the one-time code: this one-time code was used already/, 300_000);
      await m.vm.waitSerial(/one-time code of this machine's job/, 30_000);
      expect(m.vm.serial()).toMatch(/Secure Boot is enabled/);
      const { code } = JSON.parse(await cli("jobs", "code", armed!.id, "--json", "--server", SERVER)) as { code: string };
      await m.type(code);
      await m.vm.waitSerial(new RegExp(`one-time code taken: job ${armed!.id}`), 60_000);
      for (let until = Date.now() + 120_000; (await job(armed!.id)).disks === null && Date.now() < until; ) await new Promise((r) => setTimeout(r, 2000));
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${tail()}`);
    }
    console.log(`iso-restore: USB boot under OVMF Secure Boot to the agent's hello in ${Math.round((Date.now() - t0) / 1000)} s`);
    const seen = await job(armed!.id);
    expect(seen.state).not.toBe("armed");
    expect(seen.disks?.map((d) => d.name)).toContain("vda");
    const refusals = (JSON.parse(await cli("jobs", "log", firstJob, "--json", "--server", SERVER)) as Array<{ type: string; data: { reason?: string } }>).filter((e) => e.type === "boot-refused");
    expect(refusals.map((e) => e.data.reason)).toEqual([expect.stringMatching(/^this one-time code was used already/)]);
    await cli("jobs", "cancel", armed!.id, "--server", SERVER);
    await m.vm.kill();
  }, 900_000);
});
