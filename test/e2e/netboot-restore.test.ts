/**
 * End to end, every part for real: a machine network-boots from `lifeboat serve` (full DHCP,
 * TFTP, HTTP) in a private namespace LAN, gets the rescue image built by `lifeboat image
 * build`, reports its disks, gets the plan built from a captured layout and the catalog of a
 * real Amanda (vtapes + holding disk), recreates the disk, streams the restores, and reports
 * done; its next boot goes to local disk. Then four new machines are cloned from one profile
 * at once. Everything the admin does goes through the `lifeboat` CLI. QEMU runs under TCG
 * here (qemuAccel: KVM only with a hardware KVM module).
 */
import { mkdirSync, readFileSync, readdirSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, expect, it } from "vitest";
import { DEFAULT_CACHE_DIR, buildImage } from "../../rescue-image/build.ts";
import { fetchSignedLoaders } from "../../rescue-image/signed-loaders.ts";
import type { JobView } from "../../server/jobs/job-views.ts";
import type { DiskLayout } from "../../server/layout/layout.ts";
import { type AmandaLab, amandaLab, amandaLabUnavailable, treeManifest } from "../helpers/amanda-lab.ts";
import { lifeboatBin } from "../helpers/cli.ts";
import { type Lan, createLan, netnsUnavailable } from "../helpers/netns.ts";
import { type Vm, bootVm, qemuUnavailable } from "../helpers/qemu.ts";
import { startRouter } from "../helpers/router.ts";
import { tempDir } from "../helpers/tmp.ts";
import { type NsServer, fullLanConfig, serveInNs } from "../integration/netboot/lifeboat-ns.ts";
import { rescan } from "../integration/recovery/loopdev.ts";
import type { DrillSummary } from "../../server/jobs/drill-record.ts";
import { qemuAccelerator } from "../../server/drill/qemu.ts";
import { describeNeeding } from "../helpers/needs.ts";
import { type VlanTrunk, vlanTrunk } from "../helpers/vlan-switch.ts";

const SUBNET = "10.231.9";
const SERVER = `http://${SUBNET}.1:8080`;
/**
 * The recovered machine's switch port is a VLAN trunk (issue 21): native VLAN 10 untagged is this
 * LAN, where it network-boots (DHCP, TFTP: UEFI's signed chain needs no HTTP) and no TCP passes;
 * Lifeboat's HTTP for it is on tagged VLAN 20, another subnet, where its rescue system restores.
 */
const [NATIVE_VLAN, HTTP_VLAN] = [10, 20];
const VLAN_SUBNET = "10.231.20";
const VLAN_SERVER = `http://${VLAN_SUBNET}.1:8080`;
const RESCUE_IP = `${VLAN_SUBNET}.60`;

function reservedMode(config: Record<string, unknown>): Record<string, unknown> {
  return { ...config, dhcp: { ...(config.dhcp as Record<string, unknown>), mode: "reserved" } };
}
const CAPTURE = fileURLToPath(new URL("../fixtures/layouts/mbr-ext4.capture.json", import.meta.url));
const DISK_BYTES = 1024 * 1024 * 1024; // the captured disk's size
const CAPTURED_SERIAL = "QM00001"; // the captured disk's serial (QEMU's default): the recovered machine's disk has it too
const CLONES = 4;
/** The drill's wait for the restored system's login prompt (config drill.bootTimeoutSeconds): short, as this one never comes. */
const DRILL_BOOT_TIMEOUT = 30;

const skip = qemuUnavailable() ?? (await netnsUnavailable()) ?? amandaLabUnavailable() ?? undefined;

/** A QEMU machine with one blank virtio disk of the captured size and the given serial, network boot first: BIOS on the LAN, or UEFI on a VLAN trunk. */
function machine(lan: Lan, work: string, i: number, mac: string, serial: string, trunk?: VlanTrunk): { vm: Vm; disk: string } {
  const disk = join(work, `disk-${i}.raw`);
  writeFileSync(disk, "");
  truncateSync(disk, DISK_BYTES);
  const vm = bootVm({
    lan,
    tap: `tap${i}`,
    mac,
    firmware: trunk ? "uefi" : "bios",
    serialLog: join(work, `vm-${i}.serial`),
    workDir: work,
    ...(trunk ? { netdev: trunk.netdev } : {}),
    extraArgs: ["-m", "1024", "-drive", `file=${disk},if=none,id=d0,format=raw`, "-device", `virtio-blk-pci,drive=d0,serial=${serial}`, ...(trunk?.qemuArgs ?? [])],
  });
  return { vm, disk };
}

/** A disk image on a read-only loop device with its partition devices present (no udev here). */
async function attach(disk: string): Promise<string> {
  const loop = (await execa("losetup", ["--find", "--show", "--partscan", "--read-only", disk])).stdout.trim();
  await rescan(loop);
  return loop;
}

/** Mounts the first partition of a disk image read-only and runs `fn` on it. */
async function withRoot<T>(disk: string, work: string, fn: (root: string) => Promise<T>): Promise<T> {
  const loop = await attach(disk);
  const mnt = join(work, `mnt-${loop.replace(/\D/g, "")}`);
  mkdirSync(mnt, { recursive: true });
  try {
    await execa("mount", ["-o", "ro", `${loop}p1`, mnt]);
    try {
      return await fn(mnt);
    } finally {
      await execa("umount", [mnt]);
    }
  } finally {
    await execa("losetup", ["-d", loop]);
  }
}

describeNeeding(skip, "network boot to a restored disk (QEMU, real Amanda, real CLI)", () => {
  const work = tempDir("lbte-");
  const dataDir = join(work, "data");
  let lab: AmandaLab;
  let lan: Lan;
  let srv: NsServer;
  let router: ReturnType<typeof startRouter>;
  const vms: Vm[] = [];

  /**
   * The lifeboat CLI inside the server's namespace, as an admin on that host would run it:
   * jobs, profiles and assignments go through the running server, the rest reads the store.
   */
  const cli = async (...args: string[]) => {
    // Commands that change the server's state go through its API (server/README.md); reads open the store.
    const viaServer = ["jobs", "profiles"].includes(args[0]!) || ["assign", "add", "rm", "token", "import-rear", "refresh"].includes(args[1]!);
    const argv = [process.execPath, lifeboatBin, ...args, "--config", join(dataDir, "lifeboat.yaml"), ...(viaServer ? ["--server", SERVER] : [])];
    const r = await lan.exec("srv", argv, { reject: false, timeout: 900_000 });
    if (r.exitCode !== 0) throw new Error(`lifeboat ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}\n${r.stdout.slice(-6000)}`);
    return r.stdout;
  };
  /** Seconds from POWEREDON to the job's first hello from its rescue agent (its "booted" event). */
  const helloAfter = async (id: string, poweredOn: number) => {
    const events = JSON.parse(await cli("jobs", "log", id, "--json")) as Array<{ type: string; at: string }>;
    const booted = events.find((e) => e.type === "booted");
    if (!booted) throw new Error(`job ${id}: no booted event`);
    return ((Date.parse(booted.at) - poweredOn) / 1000).toFixed(1);
  };
  const tail = () => `--- lifeboat log tail ---\n${srv.log().split("\n").slice(-40).join("\n")}\n${vms.map((v, i) => `--- vm ${i} serial tail ---\n${v.serial().slice(-2000)}`).join("\n")}`;

  beforeAll(async () => {
    lab = await amandaLab();
    // The rescue image, built (or reused from the cache) by the same code as `lifeboat image build`.
    await buildImage({ cacheDir: DEFAULT_CACHE_DIR, outDir: join(dataDir, "image"), sshKeys: [], progress: () => undefined });
    // With Debian's signed shim and GRUB beside it, as `lifeboat image build` puts them: UEFI machines boot by TFTP only.
    await fetchSignedLoaders({ cacheDir: DEFAULT_CACHE_DIR, outDir: join(dataDir, "image"), progress: () => undefined });
    lan = await createLan({ prefix: "lbte", subnet: SUBNET, members: { srv: 1, router: 2 } });
    await lan.exec("router", ["ip", "-6", "addr", "add", "fd31:9:9::2/64", "dev", "eth0", "nodad"]);
    router = startRouter(lan, "router", work, "e2e");
    for (let i = 0; i <= CLONES; i++) await lan.addTap(`tap${i}`);
    // VLAN 20: a second bridge, with the server's second address and the trunk's access tap on it.
    for (const [member, cmd] of [
      ["lan", ["ip", "link", "add", "br20", "type", "bridge", "stp_state", "0", "forward_delay", "0"]],
      ["lan", ["ip", "link", "set", "br20", "up"]],
      ["srv", ["ip", "link", "add", "eth20", "type", "veth", "peer", "name", "v-srv20", "netns", lan.lanNs]],
      ["srv", ["ip", "addr", "add", `${VLAN_SUBNET}.1/24`, "dev", "eth20"]],
      ["srv", ["ip", "link", "set", "eth20", "up"]],
      ["lan", ["ip", "link", "set", "v-srv20", "master", "br20", "up"]],
      ["lan", ["ip", "tuntap", "add", "dev", "tapv20", "mode", "tap"]],
      ["lan", ["ip", "link", "set", "tapv20", "master", "br20", "up"]],
    ] as const) {
      const r = await lan.exec(member, [...cmd]);
      if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${r.stderr}`);
    }
    srv = await serveInNs(
      lan,
      "srv",
      dataDir,
      // Reserved mode: Lifeboat's DHCP answers only the machines armed here (issue 21 item 1).
      { ...reservedMode(fullLanConfig(SUBNET, [{ name: lab.config, configDir: lab.configDir, vtapeRoot: lab.vtapes, holdingDirs: [lab.holding] }])), drill: { bootTimeoutSeconds: DRILL_BOOT_TIMEOUT } },
      ["http", "tftp", "dhcp"],
    );
    // The host as Amanda knows it (its dumps are of "localhost"), its two DLEs and where they go.
    const dles = lab.dles.flatMap((d) => ["--dle", `${d.disk}=/srv/${d.tag}`]);
    const host = JSON.parse(await cli("hosts", "add", "localhost", "--mac", "52:54:00:09:00:01", "--amanda", lab.config, ...dles, "--json")) as { token: string };
    // Its captured layout (a real capture of a 1 GiB MBR disk: ext4 root, swap in a logical partition), uploaded with its token.
    const up = await lan.exec("srv", ["curl", "-fsS", "-X", "PUT", "-H", `authorization: Bearer ${host.token}`, "-H", "content-type: application/json", "--data-binary", `@${CAPTURE}`, `${SERVER}/api/v1/hosts/localhost/layout`], { reject: false });
    expect(up.exitCode, up.stderr).toBe(0);
    const refreshed = await cli("catalog", "refresh", "--json");
    expect(refreshed).toContain(lab.config);
  }, 1_200_000);

  afterAll(async () => {
    for (const vm of vms) await vm.kill();
    await srv?.stop();
    router?.kill();
    await lan?.down();
    await lab?.release();
  });

  it("recovers a dead machine on a VLAN trunk: UEFI network boot on the native VLAN, the rescue system on tagged VLAN 20 at a static address; same disk by serial, the chain restored, then local boot", async () => {
    const mac = "52:54:00:09:00:01";
    // The machine's own profile without a boot loader: the lab's trees are data, not an OS.
    // QEMU's default serials identify no disk by themselves: the admin names this one explicitly.
    await cli("profiles", "set", "localhost", "--host", "localhost", "--no-bootloader", "--map", `sda=serial:${CAPTURED_SERIAL}`);
    // Its rescue system on a static address on VLAN 20, where Lifeboat's HTTP is (issue 21): DHCP serves its network boot only.
    const [job] = JSON.parse(await cli("jobs", "arm", mac, "--rescue-vlan", String(HTTP_VLAN), "--rescue-ip", `${RESCUE_IP}/24`, "--rescue-server", VLAN_SERVER, "--json")) as JobView[];
    const dry = await cli("jobs", "plan", job!.id);
    expect(dry.split("\n")).toContain(`# rescue network: static ${RESCUE_IP}/24 (no gateway) on VLAN ${HTTP_VLAN} on the NIC that booted; Lifeboat at ${VLAN_SERVER}`);
    expect(dry).toMatch(new RegExp(`^check_disk /dev/sda ${CAPTURED_SERIAL} `, "m"));
    expect(dry).toMatch(/^restore_dump \/srv\/plain gtar 0 /m);
    expect(await cli("hosts", "boot-script", mac)).toMatch(new RegExp(`vmlinuz .*lifeboat\\.server=${VLAN_SERVER.replaceAll(".", "\\.")} .*lifeboat\\.vlan=${HTTP_VLAN} lifeboat\\.ip=${RESCUE_IP.replaceAll(".", "\\.")}/24`));

    const watch = cli("jobs", "watch", job!.id);
    const trunk = vlanTrunk(lan, join(work, "switch.json"), { native: NATIVE_VLAN, tagged: [HTTP_VLAN], nativeTcp: false, access: [{ vlan: NATIVE_VLAN, tap: "tap0" }, { vlan: HTTP_VLAN, tap: "tapv20" }] });
    const poweredOn = Date.now();
    const m = machine(lan, work, 0, mac, CAPTURED_SERIAL, trunk);
    vms.push(m.vm);
    try {
      const out = await watch;
      expect(out).toMatch(/ done$/m);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${tail()}`);
    }
    await m.vm.kill();
    const final = JSON.parse(await cli("jobs", "show", job!.id, "--json")) as JobView;
    expect(final).toMatchObject({ state: "done", disks: [expect.objectContaining({ serial: CAPTURED_SERIAL })], ip: RESCUE_IP });
    // Its firmware's lease came from the pool; the rescue system asked for none of its own.
    const leases = JSON.parse(await cli("leases", "--json")) as Array<{ mac: string; ip: string }>;
    const mine = leases.filter((l) => l.mac === mac);
    expect(mine.length).toBeGreaterThan(0);
    for (const l of mine) expect(Number(l.ip.split(".")[3]), l.ip).toBeGreaterThanOrEqual(100);
    expect(final.bytesDone).toBe(final.bytesTotal);
    // The firmware and signed GRUB fetched their files by TFTP on the native VLAN; every byte of the
    // restore came tagged on VLAN 20; nothing tried TCP on the native VLAN (the switch drops it).
    const sent = srv.lines().filter((l) => l.svc === "tftp" && l.msg === "sent").map((l) => String(l.file));
    expect(sent).toEqual(["shimx64.efi", "grubx64.efi", "/grub/grub.cfg", `/grub/lifeboat/${mac}.cfg`, "/lifeboat/vmlinuz", "/lifeboat/initramfs"]);
    const port = trunk.stats().trunk!;
    expect(port.in[String(NATIVE_VLAN)]?.frames).toBeGreaterThan(0);
    expect(port.out[String(HTTP_VLAN)]?.bytes).toBeGreaterThan(final.bytesTotal!);
    expect(port.dropped).toEqual({});
    console.log(`UEFI (OVMF) shim → signed GRUB by TFTP on the native VLAN: power-on to the agent's hello ${await helloAfter(job!.id, poweredOn)} s`);
    console.log(`VLAN trunk: ${(port.out[String(HTTP_VLAN)]!.bytes / 2 ** 20).toFixed(1)} MiB to the machine tagged on VLAN ${HTTP_VLAN}, ${port.in[String(NATIVE_VLAN)]!.frames} frames from it untagged on VLAN ${NATIVE_VLAN}`);

    // The disk as captured: same table, same UUIDs (the root's, as Lifeboat stored the layout); the trees as Amanda last saw them.
    const stored = JSON.parse(await cli("hosts", "layout", "localhost", "--json")) as { layout: DiskLayout };
    const rootDev = stored.layout.mounts.find((mt) => mt.mountpoint === "/")?.dev;
    const rootUuid = stored.layout.filesystems.find((f) => f.dev === rootDev)?.uuid;
    expect(rootUuid, `the stored layout's root filesystem (${rootDev})`).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    const loop = await attach(m.disk);
    try {
      expect((await execa("blkid", ["-o", "value", "-s", "TYPE", `${loop}p1`])).stdout).toBe("ext4");
      expect((await execa("blkid", ["-o", "value", "-s", "UUID", `${loop}p1`])).stdout).toBe(rootUuid);
      expect((await execa("blkid", ["-o", "value", "-s", "TYPE", `${loop}p5`])).stdout).toBe("swap");
    } finally {
      await execa("losetup", ["-d", loop]);
    }
    const last = lab.runs.at(-1)!.run;
    await withRoot(m.disk, work, async (root) => {
      for (const d of lab.dles) expect(await treeManifest(join(root, "srv", d.tag)), `${d.tag} restored as of run ${last}`).toBe(lab.manifest(d.tag, last).trimEnd());
      // The agent's log goes into the restored system as it unmounts it (the last step before plan_done).
      expect(readFileSync(join(root, "var/log/lifeboat", `recovery-${job!.id}.log`), "utf8")).toMatch(/restore_dump exit 0\n(?:.*\n)*?.*map_nic exit 0\n.*step \d+\/\d+: unmount_all/);
    });
    // Disarmed: the next network boot of this machine goes to its own disk.
    expect(await cli("hosts", "boot-script", mac)).toMatch(/^exit/m);
  }, 1_200_000);

  it("a drill whose restored system does not boot (no boot loader) fails with the console's last lines", async () => {
    // The host's own profile says no boot loader (the lab's trees are data, not an OS): the drill
    // restores its chains through the rescue image and plan like a recovery, then its disk boots
    // nothing. The drill's machine is QEMU's user network (restrict=on), not this LAN.
    await cli("profiles", "set", "localhost", "--host", "localhost", "--no-bootloader", "--map", `sda=serial:${CAPTURED_SERIAL}`);
    const started = Date.now();
    // With a check and the address it would reach: the disk's boot runs on the checks' network
    // (QEMU would exit at once on arguments it refuses, and the reason would say so); a system
    // that never comes up is not checked.
    const argv = [process.execPath, lifeboatBin, "drill", "localhost", "--json", "--check", "tcp:22", "--address", "10.0.5.20/24", "--config", join(dataDir, "lifeboat.yaml"), "--server", SERVER];
    const r = await lan.exec("srv", argv, { reject: false, timeout: 900_000 });
    const cost = (Date.now() - started) / 1000;
    expect(r.exitCode, `${r.stderr}\n${tail()}`).toBe(1);
    const s = JSON.parse(r.stdout) as DrillSummary;
    expect(s, tail()).toMatchObject({ host: "localhost", passed: false, bootSeconds: null, recoverSeconds: null, accel: qemuAccelerator().name });
    // The restore went through (every byte of the chains), then the disk's boot showed no login prompt:
    // SeaBIOS tried the disk, whose MBR has no boot code.
    expect(s.restoreSeconds).toBeGreaterThan(0);
    const job = JSON.parse(await cli("jobs", "show", s.job, "--json")) as JobView;
    // The drill's job is the restore's (done: every step ran); the drill's verdict is its drill-result.
    expect(job).toMatchObject({ kind: "drill", state: "done", hostname: "localhost" });
    expect(s.bytes).toBe(job.bytesTotal);
    expect(s.bytes).toBeGreaterThan(0);
    expect(s.checks).toBeUndefined();
    expect(s.reason).toMatch(new RegExp(`^the restored system did not show /\\\\S\\+ login:/ within ${DRILL_BOOT_TIMEOUT} s; console's last lines: .*SeaBIOS .*Booting from Hard Disk\\.\\.\\.$`));
    const events = JSON.parse(await cli("jobs", "log", s.job, "--json")) as Array<{ type: string; data: unknown }>;
    expect(events.filter((e) => e.type === "drill").map((e) => (e.data as { phase: string }).phase)).toEqual(["restore", "boot"]);
    expect(events.find((e) => e.type === "drill" && (e.data as { phase: string }).phase === "boot")?.data).toMatchObject({ checks: ["tcp:22"], address: "10.0.5.20/24" });
    expect(events.find((e) => e.type === "drill-result")?.data).toEqual(s);
    // Its thin disk files are gone.
    expect(readdirSync(join(dataDir, "drills"))).toEqual([]);
    console.log(`failing-boot drill (${s.accel}): ${cost.toFixed(1)} s in all (restore ${s.restoreSeconds} s, boot wait ${DRILL_BOOT_TIMEOUT} s)`);
  }, 900_000);

  it(`clones one profile onto ${CLONES} new machines at once: same content, own identities`, async () => {
    await cli("profiles", "set", "web", "--host", "localhost", "--hostname-pattern", "web-{n}", "--clone-address", "10.0.5.{n+20}/24", "--clone-gateway", "10.0.5.1", "--no-bootloader");
    const macs = Array.from({ length: CLONES }, (_, i) => `52:54:00:09:01:0${i + 1}`);
    const file = join(work, "new-rack.txt");
    writeFileSync(file, `# new rack\n${macs.join("\n")}\n`);
    const jobs = JSON.parse(await cli("jobs", "arm", "--clone", "web", "--macs", file, "--json")) as JobView[];
    expect(jobs.map((j) => j.hostname)).toEqual(macs.map((_, i) => `web-${i + 1}`));
    expect(jobs.map((j) => j.options.address?.address)).toEqual(macs.map((_, i) => `10.0.5.${21 + i}/24`));
    const watches = jobs.map((j) => cli("jobs", "watch", j.id));
    const poweredOn = Date.now();
    const clones = macs.map((mac, i) => machine(lan, work, i + 1, mac, `NEW-DISK-${i + 1}`));
    vms.push(...clones.map((c) => c.vm));
    // New machines: the admin maps each one's disk once its agent has reported it (a kernel
    // name is kept as that disk's identity); until then its plan is refused and the agent asks again.
    const mapWhenSeen = async (id: string) => {
      for (const until = Date.now() + 1_200_000; Date.now() < until; await new Promise((r) => setTimeout(r, 3000))) {
        const v = JSON.parse(await cli("jobs", "show", id, "--json")) as JobView;
        if (v.disks?.length) return cli("jobs", "map", id, "sda=vda");
      }
      throw new Error(`job ${id}: the machine never reported its disks`);
    };
    try {
      await Promise.all(jobs.map((j) => mapWhenSeen(j.id)));
      await Promise.all(watches);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${tail()}`);
    }
    for (const c of clones) await c.vm.kill();
    console.log(`BIOS (SeaBIOS + the NIC's iPXE), ${CLONES} at once: power-on to the agent's hello ${(await Promise.all(jobs.map((j) => helloAfter(j.id, poweredOn)))).join(", ")} s`);
    const last = lab.runs.at(-1)!.run;
    const seen = new Set<string>();
    for (const [i, c] of clones.entries()) {
      await withRoot(c.disk, work, async (root) => {
        for (const d of lab.dles) expect(await treeManifest(join(root, "srv", d.tag)), `clone ${i + 1} ${d.tag}`).toBe(lab.manifest(d.tag, last).trimEnd());
        seen.add(readFileSync(join(root, "etc/hostname"), "utf8").trim());
        // Its own address from the profile's pattern (the template captured no network config: ifupdown's file).
        expect(readFileSync(join(root, "etc/network/interfaces"), "utf8"), `clone ${i + 1}`).toMatch(
          new RegExp(`^iface eno1 inet static\n    address 10\\.0\\.5\\.${21 + i}/24\n    gateway 10\\.0\\.5\\.1\n`, "m"),
        );
      });
    }
    expect([...seen].sort()).toEqual(macs.map((_, i) => `web-${i + 1}`).sort());
  }, 1_800_000);
});
