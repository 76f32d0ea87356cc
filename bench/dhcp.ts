/**
 * DHCP rate under a fixed offered load: Lifeboat (`lifeboat serve`) against dnsmasq, each
 * serving a private namespace LAN (10.231.93.0/24), driven by ISC `perfdhcp` (Debian kea-admin)
 * from another namespace acting as a relay (giaddr = its address) at offered rates of 2000,
 * 5000, 10000/s and as fast as it can. Server and driver are pinned to one core each (taskset).
 *   full:  the same pool, DISCOVER-OFFER-REQUEST-ACK; completed DORA/s.
 *   proxy: proxyDHCP, the LAN's addresses left to another server: OVMF's PXE DISCOVER (options
 *          60 and 93) on 67, completed DISCOVER-OFFER/s (Lifeboat holds its OFFER
 *          dhcp.proxyOfferDelayMs, 500 ms by default, as in production); then OVMF's follow-up
 *          REQUEST on 4011 (bench/pxe-4011.ts, perfdhcp cannot send it), ACKs/s.
 * Prints the rates per mode and the ratios; "no collapse" means Lifeboat's rate at the highest
 * offers stays near its peak. Needs root.
 *   sudo npx tsx bench/dhcp.ts [seconds=8] [clients=200] [modes=full,proxy]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLan, netnsUnavailable } from "../test/helpers/netns.ts";
import { serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const seconds = Number(process.argv[2] ?? 8);
const clients = Number(process.argv[3] ?? 200);
const modes = (process.argv[4] ?? "full,proxy").split(",") as Array<"full" | "proxy">;
const RATES = [2000, 5000, 10000, 0] as const; // 0: as fast as the driver can
const NET = "10.231.93";
/** OVMF's PXE DISCOVER as test/unit/dhcp/fixtures has it: vendor class and client architecture 7 (x64 UEFI). */
const PXE_OPTIONS = ["-o", `60,${Buffer.from("PXEClient:Arch:00007:UNDI:003000").toString("hex")}`, "-o", "93,0007"];
const pxe4011 = fileURLToPath(new URL("./pxe-4011.ts", import.meta.url));
const why = await netnsUnavailable();
if (why) {
  console.error(`bench/dhcp: ${why}`);
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-dhcp-"));
const lan = await createLan({ prefix: "lbbd", subnet: NET, members: { srv: 1, cli: 2 } });
const SRV = lan.ip("srv");
const CLI = lan.ip("cli");
type Row = { rate: number; done: number; detail: string };
type Run = "full DORA" | "proxy DO" | "proxy 4011";
const RUNS: Record<"full" | "proxy", Run[]> = { full: ["full DORA"], proxy: ["proxy DO", "proxy 4011"] };
const results = new Map<string, Row[]>();

/** One perfdhcp run; its "Rate:" line is completed exchanges/s (DORA, or DISCOVER-OFFER with -i). */
async function perf(rate: number, extra: string[]): Promise<Row> {
  const args = ["taskset", "-c", "1", "perfdhcp", "-4", "-g", "single", "-l", CLI, ...(rate ? ["-r", String(rate)] : []), "-p", String(seconds), "-R", String(clients), "-d", "2", ...extra, SRV];
  const r = await lan.exec("cli", args, { timeout: (seconds + 30) * 1000, reject: false });
  const m = /Rate:\s+([\d.]+)\s+(?:4-way exchanges|DISCOVER-OFFER)\/second/.exec(r.stdout);
  if (!m) throw new Error(`perfdhcp printed no rate (exit ${r.exitCode}): ${r.stderr}\n${r.stdout}`);
  const sent = [...r.stdout.matchAll(/sent packets:\s+(\d+)/g)].map((x) => x[1]).join("/");
  const drops = [...r.stdout.matchAll(/drops:\s+(\d+)/g)].map((x) => x[1]).join("/");
  return { rate, done: Number(m[1]), detail: `drops ${drops} of ${sent} sent` };
}

/** One bench/pxe-4011.ts run: ACKs/s within its 2 s drop time. */
async function followUps(rate: number): Promise<Row> {
  const r = await lan.exec("cli", ["taskset", "-c", "1", process.execPath, "--import", "tsx", pxe4011, SRV, CLI, String(rate), String(seconds), String(clients)], { timeout: (seconds + 30) * 1000 });
  if (r.exitCode !== 0) throw new Error(`pxe-4011.ts: exit ${r.exitCode}: ${r.stderr}`);
  const o = JSON.parse(r.stdout) as { sent: number; acked: number; late: number; ackedPerSecond: number };
  return { rate, done: o.ackedPerSecond, detail: `${o.acked} ACKs (${o.late} late) of ${o.sent} sent` };
}

/** dnsmasq's configuration for a mode, as Lifeboat's: no ping check, no log, the same pool or proxyDHCP with a boot file for x64 UEFI. */
function dnsmasqConf(mode: "full" | "proxy"): string {
  const common = ["port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping", "quiet-dhcp", "log-facility=/dev/null"];
  const own = mode === "full"
    ? ["dhcp-authoritative", `dhcp-leasefile=${join(work, "dnsmasq.leases")}`, `dhcp-range=${NET}.10,${NET}.250,255.255.255.0,1h`]
    // As shared/pxe-lab's proxy configuration: one boot item per architecture, answered at once.
    : [`dhcp-leasefile=${join(work, "dnsmasq-proxy.leases")}`, `dhcp-range=${NET}.0,proxy,255.255.255.0`, 'pxe-prompt="Lifeboat",0', 'pxe-service=X86-64_EFI,"Lifeboat UEFI",snponly.efi'];
  return [...common, ...own, ""].join("\n");
}

const label = (rate: number) => (rate ? String(rate) : "max");
try {
  for (const mode of modes) {
    for (const name of ["lifeboat", "dnsmasq"] as const) {
      const dir = join(work, `${name}-${mode}`);
      let stop: () => Promise<void>;
      if (name === "lifeboat") {
        // Log level info, the default: one line per answer, as in production (and serveInNs waits for the start lines).
        const s = await serveInNs(lan, "srv", dir, {
          log: { level: "info" },
          listen: { interface: "eth0" },
          http: { port: 8080 },
          // Proxy mode answers PXE clients with a loader in the TFTP root: TFTP on, as in production.
          tftp: { enabled: mode === "proxy" },
          dhcp: mode === "full" ? { mode, pool: { start: `${NET}.10`, end: `${NET}.250`, leaseSeconds: 3600 } } : { mode },
        }, ["dhcp"]);
        await lan.exec("srv", ["taskset", "-a", "-p", "-c", "0", String(s.proc.pid)]);
        stop = s.stop;
      } else {
        writeFileSync(join(work, "dnsmasq.conf"), dnsmasqConf(mode));
        const p = lan.spawn("srv", ["taskset", "-c", "0", "dnsmasq", "-k", `--conf-file=${join(work, "dnsmasq.conf")}`]);
        await new Promise((r) => setTimeout(r, 500));
        stop = async () => {
          p.kill();
          await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
        };
      }
      try {
        for (const run of RUNS[mode]) {
          for (const rate of RATES) {
            const row = run === "full DORA" ? await perf(rate, []) : run === "proxy DO" ? await perf(rate, ["-i", ...PXE_OPTIONS]) : await followUps(rate);
            results.set(`${run} ${name}`, [...(results.get(`${run} ${name}`) ?? []), row]);
            console.log(`${name.padEnd(8)} ${run.padEnd(10)} offered ${label(rate).padStart(5)}/s: ${row.done.toFixed(0).padStart(6)}/s completed, ${row.detail}`);
          }
        }
      } finally {
        await stop();
      }
    }
  }
  for (const run of modes.flatMap((m) => RUNS[m])) {
    const d = results.get(`${run} dnsmasq`)!;
    const l = results.get(`${run} lifeboat`)!;
    console.log(`\n${run}/s\noffered   dnsmasq  lifeboat  ratio`);
    RATES.forEach((rate, i) => console.log(`${label(rate).padStart(7)}  ${d[i]!.done.toFixed(0).padStart(7)}  ${l[i]!.done.toFixed(0).padStart(8)}  ${(l[i]!.done / d[i]!.done).toFixed(2)}x`));
    const lb = l.map((r) => r.done);
    console.log(`lifeboat: peak ${Math.max(...lb).toFixed(0)}/s, at the highest offer ${lb.at(-1)!.toFixed(0)}/s (${((lb.at(-1)! / Math.max(...lb)) * 100).toFixed(0)}% of peak)`);
  }
} finally {
  await lan.down();
  rmSync(work, { recursive: true, force: true });
}
