/**
 * Power-on to the rescue agent's hello per firmware path (issue 19 goal 5), side by side with
 * the reference: each path boots a QEMU machine (TCG unless a hardware KVM module is loaded)
 * once from `lifeboat serve` (full mode, a job armed for the MAC, so the real boot script or
 * GRUB configuration is served) until the agent's hello reaches it, and once from dnsmasq
 * (DHCP + its TFTP) with `python3 -m http.server` serving the same rescue kernel, initramfs and
 * kernel command line (the same pxe/ templates, rendered once as static files) until the same
 * agent's first request (its hello, which the plain server refuses) reaches that server.
 * Paths: bios (SeaBIOS + the NIC's iPXE ROM → HTTP), uefi-shim (OVMF → TFTP shim → signed GRUB
 * → TFTP kernel and initramfs: Lifeboat's default for UEFI when the image has the signed chain,
 * as `lifeboat image build` makes it), uefi-ipxe (OVMF → TFTP snponly.efi → iPXE → HTTP).
 * Prints each server's milestones in seconds after power-on (HTTP: when the request arrived;
 * TFTP: when the transfer ended; the reference's are polled from its logs every 100 ms) and the
 * console's (kernel started, the agent's first line, its network up), then
 * seconds to the hello per path and the ratio. A router namespace sends IPv6 RAs in both runs
 * (pxe/README.md: iPXE's 13 s wait). Heavy: run it alone,
 *   flock /tmp/lifeboat-heavy.lock npx tsx bench/boot-to-agent.ts [paths=bios,uefi-shim,uefi-ipxe]
 * Namespace LAN 10.231.92.0/24 (prefix lbbb); needs root, QEMU, OVMF, ipxe, dnsmasq, python3.
 */
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULT_CACHE_DIR, buildImage } from "../rescue-image/build.ts";
import { fetchSignedLoaders } from "../rescue-image/signed-loaders.ts";
import { SHIM_LOADER, SIGNED_GRUB } from "../server/dhcp/firmware.ts";
import { GRUB_ENTRY, machineScript } from "../server/jobs/boot-scripts.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { IPXE_DIR } from "../server/tftp/loaders.ts";
import { createLan, netnsUnavailable } from "../test/helpers/netns.ts";
import { type Vm, bootVm, qemuAccel, qemuUnavailable } from "../test/helpers/qemu.ts";
import { startRouter } from "../test/helpers/router.ts";
import { armForTest } from "../test/integration/netboot/armed.ts";
import { serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const PATHS = {
  bios: { firmware: "bios", uefiLoader: "auto" },
  "uefi-shim": { firmware: "uefi", uefiLoader: "shim" },
  "uefi-ipxe": { firmware: "uefi", uefiLoader: "ipxe" },
} as const;
type PathName = keyof typeof PATHS;
const paths = (process.argv[2] ?? Object.keys(PATHS).join(",")).split(",") as PathName[];
const BOOT_TIMEOUT_MS = 300_000;
// The rescue initramfs unpacks to ~180 MB: under OVMF 512 MiB leave too little ("Initramfs unpacking failed: write error").
const QEMU_MEMORY = ["-m", "1024"];
const why = (await netnsUnavailable()) ?? qemuUnavailable();
if (why) {
  console.error(`bench/boot-to-agent: ${why}`);
  process.exit(1);
}
const NET = "10.231.92";
const BASE = `http://${NET}.1:8080`;
// Kept across runs (rebuilt only when its packages change), like the test images beside it.
const image = join(DEFAULT_CACHE_DIR, "bench-image");
await buildImage({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, sshKeys: [], progress: () => undefined });
await fetchSignedLoaders({ cacheDir: DEFAULT_CACHE_DIR, outDir: image, progress: () => undefined });
const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-boot-"));
// dnsmasq serves TFTP as nobody: its root must be reachable.
chmodSync(work, 0o755);
const lan = await createLan({ prefix: "lbbb", subnet: NET, members: { srv: 1, router: 2 } });
await lan.exec("router", ["ip", "-6", "addr", "add", "fd31:92:92::2/64", "dev", "eth0", "nodad"]);
await lan.addTap("tap0");

/** Seconds after power-on by milestone, in the order seen. */
type Milestones = Map<string, number>;

/** A milestone's name for a fetched file: kernel and initramfs by role, the MAC out of per-machine names. Pure. */
function fileLabel(proto: "tftp" | "http", path: string): string {
  const p = path.replace(/\?.*$/, "").replace(/^.*\/tftp\//, "").replace(/^\/+/, "").replace(/([0-9a-f]{2}:){5}[0-9a-f]{2}/i, "<mac>");
  if (p.endsWith("/hello")) return "hello";
  return `${proto} ${p.endsWith("vmlinuz") ? "kernel" : p.endsWith("initramfs") ? "initramfs" : p}`;
}

/**
 * Lifeboat's milestones from its JSON log: the firmware's DHCP ack, HTTP requests by arrival,
 * TFTP transfers by their end; and, which the reference's logs cannot say, when each long
 * transfer began (TFTP) or ended (HTTP). Pure.
 */
function lifeboatMilestones(lines: Array<Record<string, unknown>>, mac: string, poweredOn: number): Milestones {
  const seen: Array<[string, number]> = [];
  for (const l of lines) {
    const t = Number(l.time);
    const ms = Number(l.ms);
    if (l.svc === "dhcp" && l.kind === "ack" && l.mac === mac) seen.push(["DHCP ack", t]);
    else if (l.svc === "tftp" && l.msg === "sent") {
      const k = fileLabel("tftp", String(l.file));
      seen.push([k, t]);
      if (ms >= 500) seen.push([`${k} (began)`, t - ms]);
    } else if (typeof l.url === "string" && l.msg === "request") {
      const k = fileLabel("http", l.url);
      seen.push([k, t - ms]);
      if (ms >= 500) seen.push([`${k} (ended)`, t]);
    }
  }
  const out: Milestones = new Map();
  for (const [k, t] of seen.sort((a, b) => a[1] - b[1])) if (!out.has(k)) out.set(k, (t - poweredOn) / 1000);
  return out;
}

/** The reference's milestones in its logs' text so far: dnsmasq's DHCPACK for the MAC and TFTP "sent" lines, http.server's request lines. Pure. */
function referenceLabels(dnsmasqLog: string, httpLog: string, mac: string): string[] {
  const out: string[] = [];
  if (new RegExp(`DHCPACK\\(eth0\\) \\S+ ${mac}`).test(dnsmasqLog)) out.push("DHCP ack");
  for (const m of dnsmasqLog.matchAll(/sent (\S+) to /g)) out.push(fileLabel("tftp", m[1]!));
  for (const m of httpLog.matchAll(/"(?:GET|HEAD|POST) (\S+) HTTP/g)) out.push(fileLabel("http", m[1]!));
  return out;
}

/** Milestones on the console, the same for both servers: the kernel running, the agent's first line, its network up. Pure. */
function consoleLabels(serial: string): string[] {
  const marks: Array<[string, RegExp]> = [["console: kernel started", /Linux version \d/], ["console: agent started", / lifeboat: job /], ["console: agent network up", / lifeboat: network: /]];
  return marks.filter(([, re]) => re.test(serial)).map(([k]) => k);
}

/** Polls every 100 ms until `labels` names the hello: the first time each label was seen, in seconds after `poweredOn`. */
async function watch(poweredOn: number, vm: Vm, labels: () => string[]): Promise<Milestones> {
  const ms: Milestones = new Map();
  for (;;) {
    if (vm.proc.exitCode !== null || /Kernel panic/.test(vm.serial())) throw new Error("the machine stopped before the agent's request");
    const t = (Date.now() - poweredOn) / 1000;
    for (const l of labels()) if (!ms.has(l)) ms.set(l, t);
    if (ms.has("hello")) return ms;
    if (Date.now() - poweredOn > BOOT_TIMEOUT_MS) throw new Error(`no request from the agent after ${BOOT_TIMEOUT_MS / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const read = (f: string) => {
  try {
    return readFileSync(f, "utf8");
  } catch {
    return "";
  }
};

/** One boot of `path` from Lifeboat: its milestones, or throws with the console and log tails. */
async function lifeboatBoot(path: PathName, mac: string): Promise<Milestones> {
  const dataDir = join(work, `lifeboat-${path}`);
  mkdirSync(dataDir, { recursive: true });
  symlinkSync(image, join(dataDir, "image"));
  const store = new SqliteStore(join(dataDir, "lifeboat.db"));
  await armForTest(store, { host: `bench-${path}`, macs: [mac] });
  await store.close();
  const router = startRouter(lan, "router", work, `lb-${path}`);
  const srv = await serveInNs(lan, "srv", dataDir, {
    listen: { interface: "eth0" },
    http: { port: 8080 },
    dhcp: { mode: "full", uefiLoader: PATHS[path].uefiLoader, pool: { start: `${NET}.100`, end: `${NET}.150`, router: "", leaseSeconds: 600 } },
  }, ["http", "tftp", "dhcp"]);
  const poweredOn = Date.now();
  const vm = bootVm({ lan, tap: "tap0", mac, firmware: PATHS[path].firmware, serialLog: join(work, `lifeboat-${path}.serial`), workDir: work, extraArgs: QEMU_MEMORY });
  try {
    const polled = await watch(poweredOn, vm, () => [...consoleLabels(vm.serial()), ...lifeboatMilestones(srv.lines(), mac, poweredOn).keys()]);
    // The log's own times where it has them.
    return new Map([...polled, ...lifeboatMilestones(srv.lines(), mac, poweredOn)]);
  } catch (err) {
    throw new Error(`lifeboat ${path}: ${(err as Error).message}\n--- log tail ---\n${srv.log().split("\n").slice(-20).join("\n")}\n--- console tail ---\n${vm.serial().slice(-2000)}`);
  } finally {
    await vm.kill();
    await srv.stop();
    router.kill();
    await Promise.race([router, new Promise((r) => setTimeout(r, 2000))]);
  }
}

/**
 * The reference's files: the loaders, and the rescue script rendered from the same templates
 * as Lifeboat's (server URL, job and token on the command line; the job is made up, as the
 * agent's first request is the milestone) as the static boot.ipxe and grub/grub.cfg.
 */
function referenceTree(dir: string, mac: string): { tftp: string; http: string } {
  const tftp = join(dir, "tftp");
  const http = join(dir, "http");
  for (const d of [join(tftp, "grub"), join(tftp, "lifeboat"), join(http, "boot")]) mkdirSync(d, { recursive: true });
  const job = { id: "bench-reference" };
  writeFileSync(join(http, "boot.ipxe"), machineScript({ base: BASE, mac, job, token: "bench", format: "ipxe" }));
  writeFileSync(join(tftp, GRUB_ENTRY), machineScript({ base: BASE, mac, job, token: "bench", format: "grub" }));
  symlinkSync(join(IPXE_DIR, "snponly.efi"), join(tftp, "snponly.efi"));
  for (const f of [SHIM_LOADER, SIGNED_GRUB]) symlinkSync(join(image, f), join(tftp, f));
  for (const f of ["vmlinuz", "initramfs"]) {
    symlinkSync(join(image, f), join(tftp, "lifeboat", f));
    symlinkSync(join(image, f), join(http, "boot", f));
  }
  return { tftp, http };
}

/** One boot of `path` from dnsmasq + http.server: milestones polled from their logs and the console. */
async function referenceBoot(path: PathName, mac: string): Promise<Milestones> {
  const dir = join(work, `dnsmasq-${path}`);
  const { tftp, http } = referenceTree(dir, mac);
  const conf = join(dir, "dnsmasq.conf");
  const dnsmasqLog = join(dir, "dnsmasq.log");
  const httpLog = join(dir, "http.log");
  const uefiFile = PATHS[path].uefiLoader === "ipxe" ? "snponly.efi" : SHIM_LOADER;
  // As Lifeboat's full mode: no ping check, no router or DNS option, iPXE (user class) straight to the script.
  writeFileSync(conf, [
    "port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping", "dhcp-authoritative", "log-dhcp", `log-facility=${dnsmasqLog}`,
    `dhcp-leasefile=${join(dir, "leases")}`, `dhcp-range=${NET}.100,${NET}.150,255.255.255.0,10m`, "dhcp-option=option:router",
    "enable-tftp", `tftp-root=${tftp}`,
    "dhcp-userclass=set:ipxe,iPXE", "dhcp-match=set:efi64,option:client-arch,7",
    `dhcp-boot=tag:ipxe,${BASE}/boot.ipxe`, `dhcp-boot=tag:!ipxe,tag:efi64,${uefiFile},,${NET}.1`, "",
  ].join("\n"));
  const router = startRouter(lan, "router", work, `ref-${path}`);
  const dnsmasq = lan.spawn("srv", ["dnsmasq", "-k", `--conf-file=${conf}`]);
  const server = lan.spawn("srv", ["/usr/bin/python3", "-u", "-m", "http.server", "--bind", `${NET}.1`, "--directory", http, "8080"], { stderr: httpLog });
  await new Promise((r) => setTimeout(r, 1000));
  const poweredOn = Date.now();
  const vm = bootVm({ lan, tap: "tap0", mac, firmware: PATHS[path].firmware, serialLog: join(work, `dnsmasq-${path}.serial`), workDir: work, extraArgs: QEMU_MEMORY });
  try {
    return await watch(poweredOn, vm, () => [...consoleLabels(vm.serial()), ...referenceLabels(read(dnsmasqLog), read(httpLog), mac)]);
  } catch (err) {
    throw new Error(`dnsmasq ${path}: ${(err as Error).message}\n--- dnsmasq log tail ---\n${read(dnsmasqLog).split("\n").slice(-15).join("\n")}\n--- http log ---\n${read(httpLog).slice(-1500)}\n--- console tail ---\n${vm.serial().slice(-2000)}`);
  } finally {
    await vm.kill();
    for (const p of [dnsmasq, server, router]) {
      p.kill();
      await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
    }
  }
}

const results: Array<{ path: PathName; lifeboat?: number; dnsmasq?: number }> = [];
try {
  console.log(`accelerator: ${qemuAccel().join(" ")}`);
  for (const [i, path] of paths.entries()) {
    if (!(path in PATHS)) throw new Error(`unknown path ${path} (${Object.keys(PATHS).join(", ")})`);
    const row: (typeof results)[number] = { path };
    results.push(row);
    const runs = { lifeboat: () => lifeboatBoot(path, `52:54:00:92:00:${(0x10 + 2 * i).toString(16)}`), dnsmasq: () => referenceBoot(path, `52:54:00:92:00:${(0x11 + 2 * i).toString(16)}`) };
    const seen: Partial<Record<keyof typeof runs, Milestones>> = {};
    for (const name of ["lifeboat", "dnsmasq"] as const) {
      try {
        seen[name] = await runs[name]();
        row[name] = seen[name].get("hello");
      } catch (err) {
        console.error((err as Error).message);
      }
    }
    const labels = [...new Set([...(seen.lifeboat?.keys() ?? []), ...(seen.dnsmasq?.keys() ?? [])])];
    const at = (m: Milestones | undefined, k: string) => (m?.has(k) ? m.get(k)!.toFixed(1) : "-").padStart(8);
    console.log(`\n${path}: seconds after power-on\n${"milestone".padEnd(34)} lifeboat  dnsmasq`);
    for (const k of labels.sort((a, b) => (seen.lifeboat?.get(a) ?? seen.dnsmasq?.get(a) ?? 0) - (seen.lifeboat?.get(b) ?? seen.dnsmasq?.get(b) ?? 0)))
      console.log(`${k.padEnd(34)} ${at(seen.lifeboat, k)} ${at(seen.dnsmasq, k)}`);
  }
  console.log(`\npath       dnsmasq  lifeboat  ratio (power-on to the agent's first request, s)`);
  for (const r of results)
    console.log(`${r.path.padEnd(9)} ${(r.dnsmasq?.toFixed(1) ?? "-").padStart(8)} ${(r.lifeboat?.toFixed(1) ?? "-").padStart(9)}  ${r.lifeboat && r.dnsmasq ? `${(r.lifeboat / r.dnsmasq).toFixed(2)}x` : "-"}`);
} finally {
  await lan.down();
  rmSync(work, { recursive: true, force: true });
}
