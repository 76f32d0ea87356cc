/**
 * The whole job, as a user of Lifeboat lives through it, every part real (issue 18): a Debian 12
 * server "web1" (scripts/sample-os, installed by scripts/whole-job/install-host.sh) runs in QEMU
 * on a private LAN (network namespaces); an Amanda server of its own (own config, vtapes and
 * holding disk) backs it up over the network (amandad under inetd, auth bsdtcp, as Debian's
 * amanda-client sets it up): two DLEs, a level 0 to vtape then a level 1 after a change, left
 * on the holding disk. capture.sh, installed by `lifeboat capture install` with the host's
 * token, runs as its cron line would and uploads the layout. Then the disk dies (zeroes over
 * the partition tables and each partition's start); the admin arms the machine with the CLI,
 * the machine network-boots Lifeboat's rescue image, the admin maps its disk and reads the
 * plan, `jobs watch` follows the restore of both chains, the machine reboots and comes back on
 * its own from its disk as itself. Beside the restore, in the same rescue guest on the same
 * virtual disk, the dump is fetched again from the same server into /dev/null, sha256sum and
 * `dd`: the restore/dd ratio and where the time goes.
 *
 * Used by `bash scripts/demo` (demo/main.ts, with narration) and test/e2e/whole-job.test.ts
 * (which asserts every proof). The caller owns the returned `Story` and calls `cleanup()`.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { DEFAULT_CACHE_DIR, buildImage } from "../rescue-image/build.ts";
import type { JobView } from "../server/jobs/job-views.ts";
import type { DiskLayout } from "../server/layout/layout.ts";
import type { JobEvent } from "../server/store/types.ts";
import { lifeboatBin } from "../test/helpers/cli.ts";
import { type Lan, createLan } from "../test/helpers/netns.ts";
import { type Vm, bootVm, freshOvmfVars } from "../test/helpers/qemu.ts";
import { SAMPLE_BOOTED, sampleOs } from "../test/helpers/sample-os.ts";
import { type NsServer, fullLanConfig, serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const CACHE = process.env.LIFEBOAT_WHOLE_JOB_CACHE ?? "/var/cache/lifeboat/whole-job";
const INSTALL = fileURLToPath(new URL("../scripts/whole-job/install-host.sh", import.meta.url));
const MiB = 1024 * 1024;
const DISK_BYTES = 2048 * MiB;
const HOST = "web1";

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
}

/** What web1 says about itself over SSH. */
export interface Identity {
  hostname: string;
  machineId: string;
  /** mount point -> filesystem UUID (/, /home, /boot/efi under UEFI). */
  uuids: Record<string, string>;
  /** The SSH host key it presented (ed25519, as ssh-keyscan printed it). */
  hostKey: string;
  /** The level-1 change, as read on the machine ("" when absent). */
  level1: string;
}

export interface Figures {
  /** Seconds from `jobs arm` to the restored system answering over the network, the side measurement taken out. */
  recoverSeconds: number;
  /** Seconds spent on the side measurement (dd and the pipeline's parts) inside that span. */
  measureSeconds: number;
  backupBytes: number;
  backupSeconds: number;
  bytesRestored: number;
  /** The restore_dump steps, summed. */
  restoreSeconds: number;
  restoreMiBs: number;
  /** The level 0 of / fetched in the rescue guest: to /dev/null, through sha256sum, onto the disk with dd. */
  fetch: { bytes: number; nullMiBs: number; sha256MiBs: number; ddMiBs: number };
  /** Restore rate / dd rate. */
  ratio: number;
}

export interface Story {
  figures: Figures;
  before: Identity;
  after: Identity;
  level1Written: string;
  job: JobView;
  events: JobEvent[];
  /** Disk of web1 after the disaster: no partition table left (sfdisk sees none). */
  destroyedTable: string;
  /** UEFI: the label of the firmware boot entry the restored system came up through. */
  efiEntry: string | null;
  /** `lifeboat hosts boot-script MAC` after the recovery. */
  bootScriptAfter: string;
  /** The last boot's console showed Lifeboat's boot script sending the machine to its disk. */
  sentToDisk: boolean;
  /** The plan as `jobs plan` printed it. */
  plan: string;
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
  let lan: Lan | undefined;
  let srv: NsServer | undefined;
  const cleanup = async () => {
    for (const vm of vms) await vm.kill();
    for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => undefined);
  };
  const tail = () =>
    `--- lifeboat log tail ---\n${srv?.log().split("\n").slice(-30).join("\n") ?? ""}\n--- web1 serial tail ---\n${vms.at(-1)?.serial().slice(-3000) ?? ""}`;
  try {
    // --- the lab: system, rescue image, admin key ---------------------------------------------
    n.stage("lab: the sample Debian 12 system (scripts/sample-os)");
    const os = await sampleOs((l) => n.detail(l));
    n.stage("lab: the rescue image (lifeboat image build)");
    const key = join(CACHE, "ssh", "id_ed25519");
    if (!existsSync(key)) {
      mkdirSync(join(CACHE, "ssh"), { recursive: true });
      await execa("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-whole-job-admin", "-f", key]);
    }
    const image = join(CACHE, "image");
    await buildImage({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, sshKeys: [readFileSync(`${key}.pub`, "utf8").trim()], progress: (l) => n.detail(l) });

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
    const vars = freshOvmfVars(work, HOST);
    const token = (JSON.parse(await cli("hosts", "add", HOST, "--mac", o.mac, "--amanda", conf, "--dle", "/=/", "--dle", "/home=/home", "--json")) as { token: string }).token;
    const machine = (netBoot: boolean, boot: number) => {
      const vm = bootVm({
        lan: theLan, tap: "tap0", mac: o.mac, firmware: o.firmware, netBoot, ovmfVars: vars,
        serialLog: join(work, `${HOST}-boot${boot}.serial`), workDir: work,
        extraArgs: [
          "-m", "1024", "-smp", "2", "-drive", `file=${disk},if=none,id=d0,format=raw`, "-device", `virtio-blk-pci,drive=d0,bootindex=2`,
          // IPv6 network boot off in the firmware's setup, as on a LAN that boots over IPv4 only: else
          // each boot that Lifeboat sends on to the disk first waits out OVMF's PXEv6 and HTTPv6 tries.
          ...(o.firmware === "uefi" ? ["-fw_cfg", "name=opt/org.tianocore/IPv6Support,string=no"] : []),
        ],
      });
      vms.push(vm);
      return vm;
    };
    n.say(`${HOST} powered on (boots its disk)`);
    let t = Date.now();
    const first = machine(false, 1);
    await waitBooted(first, n, "booting web1", 900_000);
    await ssh.trust(hostIp);
    n.say(`${HOST} is up at ${hostIp} after ${secs(t)} (Debian 12, systemd, amandad under inetd, sshd)`);
    const before = await identity(ssh, hostIp, o.firmware);

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
    n.stage(`recovery: lifeboat jobs arm ${o.mac}, power on (network boot first)`);
    const armedAt = Date.now();
    const [armed] = JSON.parse(await cli("jobs", "arm", o.mac, "--json")) as JobView[];
    const job = armed!;
    n.say(`armed: job ${job.id} for ${HOST} (${o.mac}); its next network boot runs the rescue image`);
    const rescue = machine(true, 2);
    const seen = await waitFor(async () => {
      const v = JSON.parse(await cli("jobs", "show", job.id, "--json")) as JobView;
      return v.disks?.length && v.ip ? v : undefined;
    }, 900_000, "the rescue agent to report its disks");
    n.say(`${HOST} network-booted Lifeboat's rescue image ${secs(armedAt)} after arming: ${seen.ip}, disks ${(seen.disks as Array<{ name: string; sizeBytes: number }>).map((d) => `${d.name} ${mib(d.sizeBytes)} MiB`).join(", ")}`);

    // Side measurement, before the plan runs: the same server, the same guest, the same disk.
    const l0 = dumps.filter((d) => d.disk === "/" && d.level === 0)[0]!;
    const measureStart = Date.now();
    n.say(`measuring in the rescue guest: ${mib(l0.sizeBytes).toFixed(0)} MiB of dump ${l0.id} from ${server} to /dev/null, through sha256sum, and dd onto /dev/vda`);
    const fetched = await measureFetch(lan, key, seen.ip!, `${server}/api/v1/dumps/${encodeURIComponent(l0.id)}/stream`, readFileSync(join(dataDir, "admin-token"), "utf8").trim(), l0.sizeBytes);
    const measureSeconds = (Date.now() - measureStart) / 1000;

    await cli("jobs", "map", job.id, "vda=vda");
    const plan = await cli("jobs", "plan", job.id);
    const count = (fn: string) => plan.split("\n").filter((l) => l.startsWith(`${fn} `)).length;
    const table = layout.disks[0]?.table;
    n.say(`the admin maps captured vda to the machine's vda; plan: recreate /dev/vda (${table?.label?.toUpperCase()}, ${table?.partitions.length} partitions), ${count("make_fs")} filesystems, restore ${new Set(plan.split("\n").filter((l) => l.startsWith("restore_dump ")).map((l) => l.split(" ")[1])).size} chains (${count("restore_dump")} dumps), ${count("install_bootloader") ? "install the boot loader" : "no boot loader"}`);
    // Followed from here (the agent asks for its plan again every 15 s): the bars are the restore's.
    const watch = o.narrator.watch === "inherit" ? cliInherit(theLan, dataDir, server, ["jobs", "watch", job.id]) : cli("jobs", "watch", job.id);
    const watched = await watch;
    await Promise.race([rescue.proc, sleep(120_000)]);
    await rescue.kill();
    const done = JSON.parse(await cli("jobs", "show", job.id, "--json")) as JobView;
    const events = JSON.parse(await cli("jobs", "log", job.id, "--json")) as JobEvent[];
    if (done.state !== "done") throw new Error(`job ${job.id} ended ${done.state}: ${done.error ?? ""}\n${watched}`);

    // --- it comes back as itself --------------------------------------------------------------
    // Network boot first, as the machine was left: Lifeboat's boot script (exit.ipxe) hands it to
    // the firmware's next boot option, its disk (under UEFI through the NVRAM entry the recovery wrote).
    n.stage(`${HOST} powered on again (network boot first: Lifeboat sends it to its disk)`);
    const after3 = machine(true, 3);
    await waitBooted(after3, n, "booting web1 from its restored disk", 900_000);
    // Under UEFI: the firmware's boot entry it came through (the one grub-install wrote: "debian").
    let efiEntry: string | null = null;
    if (o.firmware === "uefi") {
      await after3.waitSerial(/LIFEBOAT-SAMPLE efi-entry=\S+/, 120_000);
      efiEntry = /LIFEBOAT-SAMPLE efi-entry=(\S+)/.exec(after3.serial())![1]!;
    }
    const after = await identity(ssh, hostIp, o.firmware, true);
    const recoverSeconds = (Date.now() - armedAt) / 1000 - measureSeconds;
    const same = before.hostname === after.hostname && before.machineId === after.machineId && JSON.stringify(before.uuids) === JSON.stringify(after.uuids) && before.hostKey === after.hostKey;
    n.say(`${HOST} booted from its restored disk ${same ? "as itself" : "NOT as itself"} (hostname ${after.hostname}, machine-id ${after.machineId.slice(0, 8)}…, same UUIDs ${Object.keys(after.uuids).join(" ")}, same SSH host key), level-1 change ${after.level1 === level1Written ? "present" : "MISSING"}`);
    const bootScriptAfter = await cli("hosts", "boot-script", o.mac);
    const sentToDisk = after3.serial().includes(`no recovery job for ${o.mac}, booting from local disk`);

    const restoreSteps = stepSeconds(events, "restore_dump");
    const bytesRestored = events.filter((e) => e.type === "stream-done").reduce((a, e) => a + (e.data as { bytes: number }).bytes, 0);
    const restoreMiBs = mib(bytesRestored) / restoreSteps;
    return {
      figures: {
        recoverSeconds,
        measureSeconds,
        backupBytes,
        backupSeconds,
        bytesRestored,
        restoreSeconds: restoreSteps,
        restoreMiBs,
        fetch: fetched,
        ratio: restoreMiBs / fetched.ddMiBs,
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
      plan,
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

async function waitBooted(vm: Vm, n: Narrator, label: string, timeoutMs: number): Promise<void> {
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
  const viaServer = ["jobs", "profiles"].includes(args[0]!) || ["add", "token", "refresh"].includes(args[1]!);
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
  const cmd = `hostname; cat /etc/machine-id; ${mounts.map((m) => `findmnt -n -o UUID ${m}`).join("; ")}; cat /home/alice/level1.txt 2>/dev/null || echo`;
  const out = wait ? await waitFor(() => ssh.run(ip, cmd).catch(() => undefined), 300_000, `ssh to ${ip}`) : await ssh.run(ip, cmd);
  const lines = out.split("\n");
  return {
    hostname: lines[0]!,
    machineId: lines[1]!,
    uuids: Object.fromEntries(mounts.map((m, i) => [m, lines[2 + i]!])),
    hostKey: await ssh.hostKey(ip),
    level1: lines[2 + mounts.length] ?? "",
  };
}

/**
 * In the rescue guest (SSH with the admin key the image carries): the dump from the stream
 * route, three times: to /dev/null (network and curl), through sha256sum (the agent's hash),
 * and with dd onto the disk the restore writes (what the restore is measured against).
 */
async function measureFetch(lan: Lan, key: string, ip: string, url: string, token: string, bytes: number): Promise<Figures["fetch"]> {
  const script = `set -e
u=$1; h="Authorization: Bearer $2"
t() { cut -d' ' -f1 /proc/uptime; }
a=$(t); curl -fsS -H "$h" -o /dev/null "$u"; b=$(t)
curl -fsS -H "$h" "$u" | sha256sum >/dev/null; c=$(t)
curl -fsS -H "$h" "$u" | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; d=$(t)
echo "$a $b $c $d"`;
  const r = await lan.exec(
    "srv",
    ["ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", `root@${ip}`, "sh", "-s", "--", url, token],
    { reject: false, input: script, timeout: 1_200_000 },
  );
  if (r.exitCode !== 0) throw new Error(`measurement in the rescue guest: exit ${r.exitCode}: ${r.stderr}`);
  const [a, b, c, d] = r.stdout.trim().split(/\s+/).map(Number) as [number, number, number, number];
  return { bytes, nullMiBs: mib(bytes) / (b - a), sha256MiBs: mib(bytes) / (c - b), ddMiBs: mib(bytes) / (d - c) };
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
