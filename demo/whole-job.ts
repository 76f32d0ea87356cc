/**
 * The whole job, as a user of Lifeboat lives through it, every part real (issue 18): a Debian 12
 * server "web1" (scripts/sample-os, installed by scripts/whole-job/install-host.sh) runs in QEMU
 * on a private LAN (network namespaces); an Amanda server of its own (own config, vtapes and
 * holding disk) backs it up over the network (amandad under inetd, auth bsdtcp, as Debian's
 * amanda-client sets it up): two DLEs, a level 0 to vtape then a level 1 after a change, left
 * on the holding disk. capture.sh, installed by `lifeboat capture install` with the host's
 * token, runs as its cron line would and uploads the layout. Then the disk dies (zeroes over
 * the partition tables and each partition's start); the admin arms the machine with the CLI,
 * `--power`: Lifeboat asks web1's BMC (OpenIPMI's ipmi_sim, whose chassis control starts and
 * stops web1's QEMU) for a one-time network boot and powers it on; the machine network-boots
 * Lifeboat's rescue image, its disk is matched by its serial to the captured one and the plan
 * runs, `jobs watch` follows the restore of both chains, the machine reboots (the profile's end
 * state) and comes back on its own from its disk as itself: from `jobs arm --power` on, nobody
 * does anything (no mapping, no power button) until it answers as itself.
 *
 * Used by `bash scripts/demo` (demo/main.ts, with narration) and test/e2e/whole-job.test.ts
 * (which asserts every proof). The caller owns the returned `Story` and calls `cleanup()`.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { DEFAULT_CACHE_DIR } from "../rescue-image/build.ts";
import { fetchSignedLoaders } from "../rescue-image/signed-loaders.ts";
import type { DrillSummary } from "../server/jobs/drill-record.ts";
import type { JobView } from "../server/jobs/job-views.ts";
import type { Recoverability } from "../server/jobs/recoverability.ts";
import type { DiskLayout } from "../server/layout/layout.ts";
import type { JobEvent } from "../server/store/types.ts";
import { imageWithAdminKey } from "../test/helpers/admin-image.ts";
import { lifeboatBin } from "../test/helpers/cli.ts";
import { type Lan, createLan } from "../test/helpers/netns.ts";
import { type IpmiSim, qemuPowerOn, startIpmiSim } from "../test/helpers/ipmi-sim.ts";
import { type Vm, bootVm, freshOvmfVars, netBootArgv } from "../test/helpers/qemu.ts";
import { SAMPLE_BOOTED, sampleOs } from "../test/helpers/sample-os.ts";
import { type NsServer, fullLanConfig, serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const CACHE = process.env.LIFEBOAT_WHOLE_JOB_CACHE ?? "/var/cache/lifeboat/whole-job";
const INSTALL = fileURLToPath(new URL("../scripts/whole-job/install-host.sh", import.meta.url));
const MiB = 1024 * 1024;
const DISK_BYTES = 2048 * MiB;
const HOST = "web1";
/** web1's disk serial, as a real disk has one: the rescue agent's disk is matched to the captured one by it, no mapping asked. */
const DISK_SERIAL = "LB-WEB1-D0";

export interface Narrator {
  /** A stage starts (one line). */
  stage(title: string): void;
  /** A line a person understands. */
  say(line: string): void;
  /** Work under way: done of total (null total: unknown, elapsed only). */
  progress(label: string, done: number, total: number | null): void;
  /** Machine detail (log lines of builds): shown when the caller wants them. */
  detail(line: string): void;
  /** How `lifeboat jobs watch` shows itself: on the caller's terminal (bars), or captured. */
  watch: "inherit" | "capture";
}

export interface StoryOptions {
  firmware: "bios" | "uefi";
  /** Scratch directory (disk image, Amanda config, Lifeboat's data dir); the caller removes it. */
  workDir: string;
  /** Namespace prefix and /24 (three octets), unique on this machine. */
  prefix: string;
  subnet: string;
  /** MAC of web1's NIC. */
  mac: string;
  narrator: Narrator;
  /**
   * Before the disaster, `lifeboat drill web1`: its chains restored through the rescue image and
   * plan into a throwaway machine the server starts, booted until its login prompt (server/drill/).
   */
  drill?: boolean;
  /**
   * UEFI: Secure Boot enforced (OVMF with Microsoft's keys): web1 is installed with Debian's shim
   * and signed GRUB, network-boots the rescue system through them, and comes back through them.
   */
  secureBoot?: boolean;
}

/** What web1 says about itself over SSH. */
export interface Identity {
  hostname: string;
  machineId: string;
  /** mount point -> filesystem UUID (/, /home, /boot/efi under UEFI). */
  uuids: Record<string, string>;
  /** The SSH host key it presented (ed25519, as ssh-keyscan printed it). */
  hostKey: string;
  /** UEFI: `mokutil --sb-state` on the machine ("SecureBoot enabled", "SecureBoot disabled", or why it could not tell); BIOS: null. */
  secureBoot: string | null;
  /** The level-1 change, as read on the machine ("" when absent). */
  level1: string;
}

export interface Figures {
  /** Seconds from `jobs arm --power` to the restored system answering over the network, nothing done in between. */
  recoverSeconds: number;
  backupBytes: number;
  backupSeconds: number;
  bytesRestored: number;
  /** The restore_dump steps, summed. */
  restoreSeconds: number;
  restoreMiBs: number;
}

export interface Story {
  figures: Figures;
  /** The drill's result (`lifeboat drill web1 --json`), when the story ran one. */
  drill: DrillSummary | null;
  /** web1's recoverability as `lifeboat hosts list --json` said it after the drill. */
  recoverability: Recoverability | null;
  before: Identity;
  after: Identity;
  level1Written: string;
  job: JobView;
  events: JobEvent[];
  /** Disk of web1 after the disaster: no partition table left (sfdisk sees none). */
  destroyedTable: string;
  /** UEFI: the label of the firmware boot entry the restored system came up through. */
  efiEntry: string | null;
  /** UEFI: `efibootmgr -v` on the restored system (the entry its recovery's grub-install wrote). */
  nvram: string | null;
  /** `lifeboat hosts boot-script MAC` after the recovery. */
  bootScriptAfter: string;
  /** The last boot's console showed Lifeboat's boot script sending the machine to its disk. */
  sentToDisk: boolean;
  /** The plan as `jobs plan` printed it. */
  plan: string;
  /** What web1's BMC was asked from `jobs arm --power` on ("0x20 set boot pxe", "power-on 1: boot pxe", ...), gets left out. */
  bmcCalls: string[];
  /** The dumps Amanda made (catalog list --json). */
  dumps: Array<{ id: string; disk: string; level: number; sizeBytes: number; location: { kind: string } }>;
  layout: DiskLayout;
  /** Admin page inside the namespace, and its token file. */
  adminUrl: string;
  adminTokenFile: string;
  lan: Lan;
  srv: NsServer;
  /** The serial console of web1's last boot and Lifeboat's log, for failures. */
  tail(): string;
  cleanup(): Promise<void>;
}

const mib = (n: number) => n / MiB;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the story; on failure everything started is stopped before the error is thrown. */
export async function runWholeJob(o: StoryOptions): Promise<Story> {
  const n = o.narrator;
  const work = o.workDir;
  const dataDir = join(work, "lifeboat");
  const amandaRoot = join(work, "amanda");
  const conf = `${o.prefix}-web`;
  const server = `http://${o.subnet}.1:8080`;
  const hostIp = `${o.subnet}.10`;
  const nsHosts = `/etc/netns/${o.prefix}-srv`;
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const vms: Vm[] = [];
  let powered: PoweredMachine | undefined;
  let lan: Lan | undefined;
  let srv: NsServer | undefined;
  const cleanup = async () => {
    for (const vm of vms) await vm.kill();
    await powered?.unplug();
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  const tail = () =>
    `--- lifeboat log tail ---\n${srv?.log().split("\n").slice(-30).join("\n") ?? ""}\n--- web1 serial tail ---\n${(powered ?? vms.at(-1))?.serial().slice(-3000) ?? ""}`;
  try {
    // --- the lab: system, rescue image, admin key ---------------------------------------------
    n.stage("lab: the sample Debian 12 system (scripts/sample-os)");
    const os = await sampleOs((l) => n.detail(l));
    n.stage("lab: the rescue image (lifeboat image build)");
    const { image, key } = await imageWithAdminKey(CACHE, "lifeboat-whole-job-admin", (l) => n.detail(l));
    // As `lifeboat image build` does: Debian's signed shim and network GRUB beside the kernel, so
    // UEFI PXE machines boot the rescue system through them (dhcp.uefiLoader auto, full mode).
    await fetchSignedLoaders({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, progress: (l) => n.detail(l) });

    // --- the LAN, the Amanda server, Lifeboat -------------------------------------------------
    n.stage(`lab: private LAN ${o.subnet}.0/24 (network namespaces ${o.prefix}-*), Amanda config ${conf}, lifeboat serve`);
    chmodSync(work, 0o755);
    lan = await createLan({ prefix: o.prefix, subnet: o.subnet, members: { srv: 1 } });
    const theLan = lan;
    cleanups.push(() => theLan.down());
    await lan.addTap("tap0");
    // Amanda's server finds its client by name: the server namespace's own /etc/hosts (ip netns exec).
    mkdirSync(nsHosts, { recursive: true });
    cleanups.push(() => rmSync(nsHosts, { recursive: true, force: true }));
    writeFileSync(join(nsHosts, "hosts"), `127.0.0.1\tlocalhost\n${o.subnet}.1\tlifeboat\n${hostIp}\t${HOST}\n`);
    const amanda = await amandaServer(lan, amandaRoot, conf);
    cleanups.push(() => rmSync(`/etc/amanda/${conf}`, { force: true }));
    mkdirSync(dataDir, { recursive: true });
    symlinkSync(image, join(dataDir, "image"));
    srv = await serveInNs(
      lan,
      "srv",
      dataDir,
      fullLanConfig(o.subnet, [{ name: conf, configDir: amanda.configDir, vtapeRoot: amanda.vtapes, holdingDirs: [amanda.holding] }]),
      ["http", "tftp", "dhcp"],
    );
    const theSrv = srv;
    cleanups.push(() => theSrv.stop());
    const cli = lifeboatCli(lan, dataDir, server);
    const ssh = guestSsh(lan, key, join(work, "known_hosts"));

    // --- web1 is installed and lives ----------------------------------------------------------
    n.stage(`${HOST}: installing Debian 12 on its disk (GPT, ${o.firmware === "uefi" ? "EFI system partition" : "BIOS boot partition"}, / and /home)`);
    const disk = join(work, `${HOST}.raw`);
    writeFileSync(disk, "");
    truncateSync(disk, DISK_BYTES);
    const pub = `${key}.pub`;
    const inst = await execa("bash", [INSTALL, disk, os.tar, o.firmware, HOST, o.mac, `${hostIp}/24`, `${o.subnet}.1`, pub], { reject: false, stdin: "ignore" });
    if (inst.exitCode !== 0) throw new Error(`install-host.sh: exit ${inst.exitCode}: ${inst.stderr}`);
    const secureBoot = o.firmware === "uefi" && o.secureBoot === true;
    const vars = freshOvmfVars(work, HOST, secureBoot);
    const token = (JSON.parse(await cli("hosts", "add", HOST, "--mac", o.mac, "--amanda", conf, "--dle", "/=/", "--dle", "/home=/home", "--json")) as { token: string }).token;
    const machineOptions = (netBoot: boolean, serialLog: string) => ({
      lan: theLan, tap: "tap0", mac: o.mac, firmware: o.firmware, secureBoot, netBoot, ovmfVars: vars, serialLog, workDir: work,
      extraArgs: [
        "-m", "1024", "-smp", "2", "-drive", `file=${disk},if=none,id=d0,format=raw`, "-device", `virtio-blk-pci,drive=d0,bootindex=2,serial=${DISK_SERIAL}`,
        // IPv6 network boot off in the firmware's setup, as on a LAN that boots over IPv4 only: else
        // each boot that Lifeboat sends on to the disk first waits out OVMF's PXEv6 and HTTPv6 tries.
        ...(o.firmware === "uefi" ? ["-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no"] : []),
      ],
    });
    const machine = (netBoot: boolean, boot: number) => {
      const vm = bootVm(machineOptions(netBoot, join(work, `${HOST}-boot${boot}.serial`)));
      vms.push(vm);
      return vm;
    };
    // web1's BMC, on the management side of the server (its namespace's loopback): the machine
    // is a QEMU that "power on" starts, the network first when a one-time PXE boot is pending;
    // a reboot resets it as real hardware does.
    const bmcDir = join(work, "bmc");
    mkdirSync(bmcDir);
    const bmcPassword = randomBytes(8).toString("hex"); // IPMI 2.0 passwords are at most 20 bytes
    const bmc = await startIpmiSim(bmcDir, "admin", bmcPassword, { netns: lan.ns("srv"), machine: "qemu" });
    cleanups.push(() => bmc.stop());
    const inLan = (argv: string[]) => ["ip", "netns", "exec", theLan.lanNs, ...argv];
    qemuPowerOn(
      bmcDir,
      inLan(netBootArgv({ ...machineOptions(true, ""), reboot: true })),
      inLan(netBootArgv({ ...machineOptions(false, ""), reboot: true })),
    );
    powered = poweredMachine(bmc);
    writeFileSync(join(work, "bmc-password"), `${bmcPassword}\n`, { mode: 0o600 });
    await cli("hosts", "power-config", HOST, "--ipmi", "127.0.0.1", "--port", String(bmc.port), "--user", "admin", "--password-file", join(work, "bmc-password"));
    n.say(`${HOST} powered on (boots its disk)`);
    let t = Date.now();
    const first = machine(false, 1);
    await waitBooted(first, n, "booting web1", 900_000);
    await ssh.trust(hostIp);
    const before = await identity(ssh, hostIp, o.firmware);
    n.say(`${HOST} is up at ${hostIp} after ${secs(t)} (Debian 12, systemd, amandad under inetd, sshd${o.firmware === "uefi" ? `; ${before.secureBoot}` : ""})`);

    // --- Amanda backs it up -------------------------------------------------------------------
    n.stage(`Amanda: level 0 of ${HOST} (DLEs / and /home, auth bsdtcp, to vtape)`);
    t = Date.now();
    await amanda.run(["amadmin", conf, "force", HOST]);
    await amanda.dump(0, [], n);
    const level1Written = `level-1 change written at ${new Date().toISOString()}`;
    await ssh.run(hostIp, `printf '%s\\n' '${level1Written}' >/home/alice/level1.txt && printf '%s\\n' '${level1Written}' >/etc/lifeboat-level1 && sync`);
    n.stage(`Amanda: level 1 of ${HOST} after a change (stays on the holding disk)`);
    await amanda.run(["amadmin", conf, "force-level-1", HOST]);
    await amanda.dump(1, ["--no-taper"], n);
    const backupSeconds = (Date.now() - t) / 1000;

    // --- capture.sh as cron runs it -----------------------------------------------------------
    n.stage(`capture: lifeboat capture install ${HOST} | ssh root@${HOST} sh, then its cron line`);
    const installer = await cli("capture", "install", HOST, "--server", server);
    await ssh.run(hostIp, "sh", installer);
    await ssh.run(hostIp, "umask 077 && mkdir -p /etc/lifeboat && cat >/etc/lifeboat/token", token);
    // The command of the installed cron line, run as cron runs it (sh -c, as root).
    await ssh.run(hostIp, `sh -c "$(sed -n 's/^\\([^ #]* \\)\\{5\\}root //p' /etc/cron.d/lifeboat-capture)"`);
    const layout = (JSON.parse(await cli("hosts", "layout", HOST, "--json")) as { layout: DiskLayout }).layout;
    n.say(`layout of ${HOST} uploaded by capture.sh: ${layout.disks.map((d) => `${d.path} (${d.table?.label}, ${d.table?.partitions.length} partitions)`).join(", ")}`);
    await ssh.run(hostIp, "systemctl --no-block poweroff");
    await Promise.race([first.proc, sleep(180_000)]);
    await first.kill();

    await cli("catalog", "refresh", "--json");
    const dumps = (JSON.parse(await cli("catalog", "list", "--host", HOST, "--json")) as Story["dumps"]).filter((d) => d.disk === "/" || d.disk === "/home");
    const backupBytes = dumps.reduce((a, d) => a + d.sizeBytes, 0);
    n.say(`${HOST} backed up by Amanda (2 DLEs, ${dumps.length} dumps, ${mib(backupBytes).toFixed(0)} MiB in ${backupSeconds.toFixed(0)} s): ${dumps.map((d) => `${d.disk} L${d.level} on ${d.location.kind}`).join(", ")}`);

    // --- a drill: the proof before the day it is needed ---------------------------------------
    let drill: DrillSummary | null = null;
    let recoverability: Recoverability | null = null;
    if (o.drill) {
      n.stage(`drill: lifeboat drill ${HOST} (a throwaway machine on the server, its own restricted network)`);
      const r = await lan.exec("srv", cliArgv(dataDir, server, ["drill", HOST, "--json"]), { reject: false, timeout: 1_800_000 });
      drill = JSON.parse(r.stdout) as DrillSummary;
      n.say(`drill ${drill.passed ? "passed" : `FAILED: ${drill.reason}`}: restore ${drill.restoreSeconds} s, boot ${drill.bootSeconds} s, time to recover ${drill.recoverSeconds} s (${drill.accel})`);
      recoverability = (JSON.parse(await cli("hosts", "list", "--json")) as Array<{ name: string; recoverability: Recoverability }>).find((h) => h.name === HOST)!.recoverability;
      n.say(`lifeboat hosts list: ${HOST} ${recoverability.recoverable ? "recoverable" : `NOT recoverable: ${recoverability.reasons.join("; ")}`}`);
    }

    // --- disaster -----------------------------------------------------------------------------
    n.stage(`disaster: the disk of ${HOST} is overwritten`);
    const parts = JSON.parse((await execa("sfdisk", ["-J", disk])).stdout) as { partitiontable: { partitions: Array<{ start: number }> } };
    const zero = async (offset: number, bytes: number) => execa("dd", ["if=/dev/zero", `of=${disk}`, "bs=1M", `seek=${offset / MiB}`, `count=${bytes / MiB}`, "conv=notrunc,fsync", "status=none"]);
    await zero(0, MiB);
    await zero(DISK_BYTES - MiB, MiB);
    for (const p of parts.partitiontable.partitions) await zero(p.start * 512, 8 * MiB);
    const destroyedTable = (await execa("sfdisk", ["-d", disk], { reject: false })).stderr.trim();
    n.say(`disk of ${HOST} destroyed: zeroes over both GPT copies and the first 8 MiB of its ${parts.partitiontable.partitions.length} partitions (${destroyedTable})`);

    // --- recovery -----------------------------------------------------------------------------
    n.stage(`recovery: lifeboat jobs arm ${o.mac} --power (web1's BMC: one-time network boot, power on)`);
    const armedAt = Date.now();
    const bmcCallsBefore = bmc.calls().length;
    // --json with --power: the plan it was shown and the armed job with what its BMC was asked.
    const { job } = JSON.parse(await cli("jobs", "arm", o.mac, "--power", "--json")) as { plan: string; job: JobView & { power: { summary: string; target: string } } };
    n.say(`armed: job ${job.id} for ${HOST} (${o.mac}); through its BMC ${job.power.target}: ${job.power.summary}`);
    const rescue = powered;
    const seen = await waitFor(async () => {
      const v = JSON.parse(await cli("jobs", "show", job.id, "--json")) as JobView;
      return v.disks?.length && v.ip ? v : undefined;
    }, 900_000, "the rescue agent to report its disks");
    n.say(`${HOST} network-booted Lifeboat's rescue image ${secs(armedAt)} after arming: ${seen.ip}, disks ${(seen.disks as Array<{ name: string; sizeBytes: number }>).map((d) => `${d.name} ${mib(d.sizeBytes)} MiB`).join(", ")}`);

    const plan = await cli("jobs", "plan", job.id);
    const count = (fn: string) => plan.split("\n").filter((l) => l.startsWith(`${fn} `)).length;
    const table = layout.disks[0]?.table;
    n.say(`its disk matched the captured one by serial (${DISK_SERIAL}); plan: recreate /dev/vda (${table?.label?.toUpperCase()}, ${table?.partitions.length} partitions), ${count("make_fs")} filesystems, restore ${new Set(plan.split("\n").filter((l) => l.startsWith("restore_dump ")).map((l) => l.split(" ")[1])).size} chains (${count("restore_dump")} dumps), ${count("install_bootloader") ? "install the boot loader" : "no boot loader"}`);
    // Followed from here (the agent asks for its plan again every 15 s): the bars are the restore's.
    const watch = o.narrator.watch === "inherit" ? cliInherit(theLan, dataDir, server, ["jobs", "watch", job.id]) : cli("jobs", "watch", job.id);
    const watched = await watch;
    const done = JSON.parse(await cli("jobs", "show", job.id, "--json")) as JobView;
    if (done.state !== "done") throw new Error(`job ${job.id} ended ${done.state}: ${done.error ?? ""}\n${watched}`);

    // --- it comes back as itself --------------------------------------------------------------
    // The agent reboots it (the end state); the reset boots the network first as that power-on
    // did: Lifeboat's boot script (exit.ipxe) hands it to the firmware's next boot option, its
    // disk (under UEFI through the NVRAM entry the recovery wrote).
    n.stage(`${HOST} reboots (end state): network boot first, Lifeboat sends it to its disk`);
    const after3 = rescue;
    await waitBooted(after3, n, "booting web1 from its restored disk", 900_000);
    // Under UEFI: the firmware's boot entry it came through (the one grub-install wrote: "debian").
    let efiEntry: string | null = null;
    if (o.firmware === "uefi") {
      await after3.waitSerial(/LIFEBOAT-SAMPLE efi-entry=\S+/, 120_000);
      efiEntry = /LIFEBOAT-SAMPLE efi-entry=(\S+)/.exec(after3.serial())![1]!;
    }
    const after = await identity(ssh, hostIp, o.firmware, true);
    const nvram = o.firmware === "uefi" ? await ssh.run(hostIp, "efibootmgr -v") : null;
    const recoverSeconds = (Date.now() - armedAt) / 1000;
    const same = before.hostname === after.hostname && before.machineId === after.machineId && JSON.stringify(before.uuids) === JSON.stringify(after.uuids) && before.hostKey === after.hostKey;
    n.say(`${HOST} booted from its restored disk ${same ? "as itself" : "NOT as itself"} (hostname ${after.hostname}, machine-id ${after.machineId.slice(0, 8)}…, same UUIDs ${Object.keys(after.uuids).join(" ")}, same SSH host key${o.firmware === "uefi" ? `, ${after.secureBoot}` : ""}), level-1 change ${after.level1 === level1Written ? "present" : "MISSING"}`);
    const bootScriptAfter = await cli("hosts", "boot-script", o.mac);
    const sentToDisk = after3.serial().includes(`no recovery job for ${o.mac}, booting from local disk`);
    const bmcCalls = bmc.calls().slice(bmcCallsBefore).filter((c) => !/ get /.test(c));

    // Read once it is back: the boot override's clearing after done is in it by then.
    const events = JSON.parse(await cli("jobs", "log", job.id, "--json")) as JobEvent[];
    const restoreSteps = stepSeconds(events, "restore_dump");
    const bytesRestored = events.filter((e) => e.type === "stream-done").reduce((a, e) => a + (e.data as { bytes: number }).bytes, 0);
    const restoreMiBs = mib(bytesRestored) / restoreSteps;
    return {
      drill,
      recoverability,
      figures: {
        recoverSeconds,
        backupBytes,
        backupSeconds,
        bytesRestored,
        restoreSeconds: restoreSteps,
        restoreMiBs,
      },
      before,
      after,
      level1Written,
      job: done,
      events,
      destroyedTable,
      bootScriptAfter,
      sentToDisk,
      efiEntry,
      nvram,
      plan,
      bmcCalls,
      dumps,
      layout,
      adminUrl: `${server}/`,
      adminTokenFile: join(dataDir, "admin-token"),
      lan,
      srv,
      tail,
      cleanup,
    };
  } catch (err) {
    const message = `${(err as Error).message}\n${tail()}`;
    await cleanup();
    throw new Error(message, { cause: err });
  }
}

const secs = (since: number) => `${((Date.now() - since) / 1000).toFixed(0)} s`;

/** Sum of the durations of the plan's steps named NAME (step-start to step-end). */
function stepSeconds(events: JobEvent[], name: string): number {
  let total = 0;
  let start = 0;
  for (const e of events) {
    const d = e.data as { name?: string };
    if (d?.name !== name) continue;
    if (e.type === "step-start") start = Date.parse(e.at);
    if (e.type === "step-end") total += (Date.parse(e.at) - start) / 1000;
  }
  return total;
}

async function waitFor<T>(probe: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(2000)) {
    const v = await probe();
    if (v) return v;
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The machine web1's BMC powers: its console is that of its latest power-on. */
interface PoweredMachine {
  serial(): string;
  waitSerial(re: RegExp, timeoutMs: number): Promise<void>;
  /** Pulls the plug (cleanup): the QEMU the BMC started, if it runs. */
  unplug(): Promise<void>;
}

function poweredMachine(bmc: IpmiSim): PoweredMachine {
  const serial = () => {
    const n = existsSync(join(bmc.dir, "power-ons")) ? readFileSync(join(bmc.dir, "power-ons"), "utf8").trim() : "";
    const log = join(bmc.dir, `power-on-${n}.serial`);
    return n && existsSync(log) ? readFileSync(log, "latin1") : "";
  };
  return {
    serial,
    waitSerial: async (re, timeoutMs) => {
      for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(250)) if (re.test(serial())) return;
      throw new Error(`web1's console never showed ${re} (BMC power ${bmc.power()}); last lines:\n${serial().slice(-1500)}`);
    },
    unplug: async () => {
      const pidFile = join(bmc.dir, "qemu.pid");
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) : 0;
      if (pid > 0 && bmc.power() === "on") process.kill(pid, "SIGTERM");
      for (let i = 0; i < 30 && bmc.power() === "on"; i++) await sleep(100);
    },
  };
}

async function waitBooted(vm: Pick<Vm, "waitSerial">, n: Narrator, label: string, timeoutMs: number): Promise<void> {
  const t = Date.now();
  const tick = setInterval(() => n.progress(label, (Date.now() - t) / 1000, null), 1000);
  try {
    await vm.waitSerial(SAMPLE_BOOTED, timeoutMs);
  } finally {
    clearInterval(tick);
  }
}

/** The lifeboat CLI inside the server's namespace, as the admin on that host runs it. */
function lifeboatCli(lan: Lan, dataDir: string, server: string) {
  return async (...args: string[]) => {
    const r = await lan.exec("srv", cliArgv(dataDir, server, args), { reject: false, timeout: 1_800_000 });
    if (r.exitCode !== 0) throw new Error(`lifeboat ${args.join(" ")}: exit ${r.exitCode}: ${r.stderr}\n${r.stdout.slice(-4000)}`);
    return r.stdout;
  };
}

function cliArgv(dataDir: string, server: string, args: string[]): string[] {
  // Commands that change the server's state go through its API (server/README.md); reads open the store.
  const viaServer = ["jobs", "profiles", "drill"].includes(args[0]!) || ["add", "token", "refresh"].includes(args[1]!);
  return [process.execPath, lifeboatBin, ...args, "--config", join(dataDir, "lifeboat.yaml"), ...(viaServer ? ["--server", server] : [])];
}

/** `lifeboat ARGS` in the namespace with the caller's terminal (jobs watch draws its bars there). */
async function cliInherit(lan: Lan, dataDir: string, server: string, args: string[]): Promise<string> {
  const r = await execa("ip", ["netns", "exec", lan.ns("srv"), ...cliArgv(dataDir, server, args)], { stdio: "inherit", reject: false });
  if (r.exitCode !== 0) throw new Error(`lifeboat ${args.join(" ")}: exit ${r.exitCode}`);
  return "";
}

/** SSH from the server's namespace with the admin key; host keys are learned once (trust) and then required. */
function guestSsh(lan: Lan, key: string, knownHosts: string) {
  const base = (strict: boolean) => ["ssh", "-i", key, "-o", `UserKnownHostsFile=${knownHosts}`, "-o", `StrictHostKeyChecking=${strict ? "yes" : "no"}`, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "HostKeyAlgorithms=ssh-ed25519"];
  /** The ed25519 host key IP presents (ssh-keyscan), waiting for sshd to answer. */
  const scan = (ip: string) =>
    waitFor(async () => {
      const s = await lan.exec("srv", ["ssh-keyscan", "-T", "5", "-t", "ed25519", ip], { reject: false });
      return s.stdout.trim() || undefined;
    }, 300_000, `sshd on ${ip}`);
  return {
    /** Learns the host key of IP: from now on, ssh to it requires that key. */
    trust: async (ip: string) => writeFileSync(knownHosts, `${await scan(ip)}\n`),
    hostKey: async (ip: string) => (await scan(ip)).split(/\s+/).slice(1).join(" "),
    run: async (ip: string, command: string, input?: string, strict = true) => {
      const r = await lan.exec("srv", [...base(strict), `root@${ip}`, command], { reject: false, timeout: 600_000, ...(input === undefined ? {} : { input }) });
      if (r.exitCode !== 0) throw new Error(`ssh root@${ip} ${command.slice(0, 80)}: exit ${r.exitCode}: ${r.stderr}`);
      return r.stdout;
    },
  };
}

/** What web1 says about itself over SSH (strict host key checking against the key learned before the disaster). */
async function identity(ssh: ReturnType<typeof guestSsh>, ip: string, firmware: "bios" | "uefi", wait = false): Promise<Identity> {
  const mounts = ["/", "/home", ...(firmware === "uefi" ? ["/boot/efi"] : [])];
  const uefi = firmware === "uefi";
  const cmd = `hostname; cat /etc/machine-id; ${mounts.map((m) => `findmnt -n -o UUID ${m}`).join("; ")}; ${uefi ? "mokutil --sb-state 2>&1 | head -n1; " : ""}cat /home/alice/level1.txt 2>/dev/null || echo`;
  const out = wait ? await waitFor(() => ssh.run(ip, cmd).catch(() => undefined), 300_000, `ssh to ${ip}`) : await ssh.run(ip, cmd);
  const lines = out.split("\n");
  return {
    hostname: lines[0]!,
    machineId: lines[1]!,
    uuids: Object.fromEntries(mounts.map((m, i) => [m, lines[2 + i]!])),
    hostKey: await ssh.hostKey(ip),
    secureBoot: uefi ? lines[2 + mounts.length]! : null,
    level1: lines[(uefi ? 3 : 2) + mounts.length] ?? "",
  };
}

/** An Amanda server config of the story's own (own vtapes and holding disk), run inside the server's namespace. */
async function amandaServer(lan: Lan, root: string, conf: string) {
  const configDir = join(root, "config");
  const vtapes = join(root, "vtapes");
  const holding = join(root, "holding");
  const state = join(root, "state");
  for (const d of [configDir, holding, join(state, "curinfo"), join(state, "index"), join(state, "log"), ...[1, 2, 3].map((i) => join(vtapes, `slot${i}`))]) mkdirSync(d, { recursive: true });
  writeFileSync(
    join(configDir, "amanda.conf"),
    `org "${conf}"
mailto ""
dumpuser "backup"
inparallel 2
netusage 800000 Kbps
dumpcycle 7 days
runspercycle 7
tapecycle 3 tapes
etimeout 600
dtimeout 3600
ctimeout 60
infofile "${state}/curinfo"
logdir   "${state}/log"
indexdir "${state}/index"
tapelist "tapelist"
define changer web-vtapes {
    tpchanger "chg-disk:${vtapes}"
    property "num-slot" "3"
}
tpchanger "web-vtapes"
define tapetype WEB-VTAPE {
    length 4096 mbytes
    part-size 128 mbytes
}
tapetype "WEB-VTAPE"
labelstr "^WEB-[0-9][0-9]*$"
runtapes 1
autoflush no
holdingdisk hd1 {
    directory "${holding}"
    use 3000 mbytes
    chunksize 1024 mbytes
}
define application-tool web-amgtar {
    plugin "amgtar"
    property "GNUTAR-LISTDIR" "/var/lib/amanda/gnutar-lists"
    property "ONE-FILE-SYSTEM" "YES"
    property "SPARSE" "YES"
    property "ATIME-PRESERVE" "NO"
}
define dumptype web-tar {
    program "APPLICATION"
    application "web-amgtar"
    auth "bsdtcp"
    compress none
    index yes
    record yes
    holdingdisk required
    estimate calcsize
}
`,
  );
  writeFileSync(join(configDir, "disklist"), `${HOST} / web-tar\n${HOST} /home web-tar\n`);
  writeFileSync(join(configDir, "tapelist"), "");
  await execa("chown", ["-R", "backup:backup", root]);
  mkdirSync("/etc/amanda", { recursive: true });
  rmSync(`/etc/amanda/${conf}`, { force: true });
  symlinkSync(configDir, `/etc/amanda/${conf}`);
  const run = async (argv: string[]) => {
    const r = await lan.exec("srv", ["runuser", "-u", "backup", "--", ...argv], { reject: false, timeout: 3_600_000 });
    if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  for (const i of [1, 2]) await run(["amlabel", "-f", conf, `WEB-0${i}`, "slot", String(i)]);
  return {
    configDir,
    vtapes,
    holding,
    run,
    /** amdump at LEVEL (forced before); fails unless both DLEs of web1 were dumped at that level. */
    dump: async (level: number, opts: string[], n: Narrator) => {
      const t = Date.now();
      const tick = setInterval(() => n.progress(`amdump level ${level}`, (Date.now() - t) / 1000, null), 1000);
      try {
        // amdump's exit status is a bit mask of warnings; the trace log decides.
        await lan.exec("srv", ["runuser", "-u", "backup", "--", "amdump", ...opts, conf], { reject: false, timeout: 3_600_000 });
      } finally {
        clearInterval(tick);
      }
      const log = readFileSync(join(state, "log", "log"), "utf8");
      const ds = /^START planner date (\d+)/m.exec(log)?.[1];
      const ok = log.split("\n").filter((l) => new RegExp(`^SUCCESS dumper ${HOST} \\S+ ${ds} ${level} `).test(l));
      if (ok.length !== 2) throw new Error(`amdump level ${level}: expected 2 dumps of ${HOST} in the trace log:\n${log}`);
    },
  };
}
