/**
 * DHCP handshake rate under a fixed offered load: Lifeboat (`lifeboat serve`, full mode)
 * against dnsmasq, each serving the same pool in a private namespace LAN (10.231.64.0/24),
 * driven by ISC `perfdhcp` (Debian kea-admin) from another namespace acting as a relay
 * (giaddr = its address) at offered rates of 2000, 5000, 10000 DORA/s and as fast as it can.
 * Server and perfdhcp are pinned to one core each (taskset). Prints completed DORA/s per
 * rate and the ratio; "no collapse" means Lifeboat's rate at the highest offers stays near
 * its peak. Needs root.
 *   sudo npx tsx bench/dhcp.ts [seconds=8] [clients=200]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLan, netnsUnavailable } from "../test/helpers/netns.ts";
import { serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const seconds = Number(process.argv[2] ?? 8);
const clients = Number(process.argv[3] ?? 200);
const RATES = [2000, 5000, 10000, 0] as const; // 0: as fast as perfdhcp can
const why = await netnsUnavailable();
if (why) {
  console.error(`bench/dhcp: ${why}`);
  process.exit(1);
}
const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-dhcp-"));
const lan = await createLan({ prefix: "lbp-dhcp", subnet: "10.231.64", members: { srv: 1, cli: 2 } });
const SRV = lan.ip("srv");
const CLI = lan.ip("cli");
type Row = { rate: number; dora: number; sent: number; drops: string };
const results: Record<string, Row[]> = { lifeboat: [], dnsmasq: [] };

/** One perfdhcp run; its "Rate:" line is completed DORA/s. */
async function perf(rate: number): Promise<Row> {
  const args = ["taskset", "-c", "1", "perfdhcp", "-4", "-g", "single", "-l", CLI, ...(rate ? ["-r", String(rate)] : []), "-p", String(seconds), "-R", String(clients), "-d", "2", SRV];
  const r = await lan.exec("cli", args, { timeout: (seconds + 30) * 1000, reject: false });
  const m = /Rate:\s+([\d.]+)\s+4-way exchanges\/second/.exec(r.stdout);
  if (!m) throw new Error(`perfdhcp printed no rate (exit ${r.exitCode}): ${r.stderr}\n${r.stdout}`);
  const sent = [...r.stdout.matchAll(/sent packets:\s+(\d+)/g)].map((x) => x[1]).join("/");
  const drops = [...r.stdout.matchAll(/drops:\s+(\d+)/g)].map((x) => x[1]).join("/");
  return { rate, dora: Number(m[1]), sent: Number(sent.split("/")[0] ?? 0), drops: `${drops} (DO/RA) of ${sent}` };
}

try {
  for (const name of ["lifeboat", "dnsmasq"] as const) {
    const dir = join(work, name);
    let stop: () => Promise<void>;
    if (name === "lifeboat") {
      // Log level info, the default: one line per answer, as in production (and serveInNs waits for the start lines).
      const s = await serveInNs(lan, "srv", dir, {
        log: { level: "info" },
        listen: { interface: "eth0" },
        http: { port: 8080 },
        tftp: { enabled: false },
        dhcp: { mode: "full", pool: { start: "10.231.64.10", end: "10.231.64.250", leaseSeconds: 3600 } },
      }, ["dhcp"]);
      await lan.exec("srv", ["taskset", "-a", "-p", "-c", "0", String(s.proc.pid)]);
      stop = s.stop;
    } else {
      writeFileSync(join(work, "dnsmasq.conf"), ["port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping", "quiet-dhcp", "dhcp-authoritative",
        `dhcp-leasefile=${join(work, "dnsmasq.leases")}`, "dhcp-range=10.231.64.10,10.231.64.250,255.255.255.0,1h", "log-facility=/dev/null", ""].join("\n"));
      const p = lan.spawn("srv", ["taskset", "-c", "0", "dnsmasq", "-k", `--conf-file=${join(work, "dnsmasq.conf")}`]);
      await new Promise((r) => setTimeout(r, 500));
      stop = async () => {
        p.kill();
        await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
      };
    }
    try {
      for (const rate of RATES) {
        const row = await perf(rate);
        results[name]!.push(row);
        console.log(`${name.padEnd(8)} offered ${rate ? String(rate).padStart(5) : "  max"}/s: ${row.dora.toFixed(0).padStart(6)} DORA/s completed, drops ${row.drops}`);
      }
    } finally {
      await stop();
    }
  }
  console.log(`\noffered   dnsmasq  lifeboat  ratio`);
  RATES.forEach((rate, i) => {
    const d = results.dnsmasq![i]!.dora;
    const l = results.lifeboat![i]!.dora;
    console.log(`${(rate ? String(rate) : "max").padStart(7)}  ${d.toFixed(0).padStart(7)}  ${l.toFixed(0).padStart(8)}  ${(l / d).toFixed(2)}x`);
  });
  const lb = results.lifeboat!.map((r) => r.dora);
  console.log(`lifeboat: peak ${Math.max(...lb).toFixed(0)}/s, at the highest offer ${lb.at(-1)!.toFixed(0)}/s (${((lb.at(-1)! / Math.max(...lb)) * 100).toFixed(0)}% of peak)`);
} finally {
  await lan.down();
  rmSync(work, { recursive: true, force: true });
}
