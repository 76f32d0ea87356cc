/**
 * DHCP handshake rate: Lifeboat (`lifeboat serve`, full mode) against dnsmasq, each serving
 * the same pool in a private namespace LAN (10.231.7.0/24); a client namespace runs N
 * machines one after another through DISCOVER/OFFER/REQUEST/ACK. Several rounds, servers
 * alternating, fresh leases each round; prints handshakes/s and the ratio. Needs root.
 *   sudo npx tsx bench/dhcp.ts [machines=200] [rounds=3]
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createLan, netnsUnavailable } from "../test/helpers/netns.ts";
import { serveInNs } from "../test/integration/netboot/lifeboat-ns.ts";

const machines = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const why = await netnsUnavailable();
if (why) {
  console.error(`bench/dhcp: ${why}`);
  process.exit(1);
}
const client = fileURLToPath(new URL("./dhcp-client.ts", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-dhcp-"));
const lan = await createLan({ prefix: "lbt7-bench", subnet: "10.231.7", members: { srv: 1, cli: 9 } });
await lan.exec("cli", ["ip", "route", "add", "255.255.255.255/32", "dev", "eth0"]);
const results: Record<string, number[]> = { lifeboat: [], dnsmasq: [] };

async function runClient(prefixByte: number): Promise<{ ok: number; ms: number }> {
  const r = await lan.exec("cli", [process.execPath, "--import", "tsx", client, String(machines), String(prefixByte)], { timeout: 600_000 });
  if (r.exitCode !== 0) throw new Error(`client: ${r.stderr}`);
  return JSON.parse(r.stdout) as { ok: number; ms: number };
}

try {
  for (let round = 1; round <= rounds; round++) {
    for (const name of ["lifeboat", "dnsmasq"] as const) {
      const dir = join(work, `${name}-${round}`);
      let stop: () => Promise<void>;
      if (name === "lifeboat") {
        // Log level info, the default: one line per answer, as in production.
        const s = await serveInNs(lan, "srv", dir, {
          log: { level: "info" },
          listen: { interface: "eth0" },
          http: { port: 8080 },
          tftp: { enabled: false },
          dhcp: { mode: "full", pool: { start: "10.231.7.10", end: "10.231.7.250", leaseSeconds: 3600 } },
        }, ["dhcp"]);
        stop = s.stop;
      } else {
        writeFileSync(join(work, "dnsmasq.conf"), ["port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping", "dhcp-authoritative",
          `dhcp-leasefile=${join(work, `dnsmasq-${round}.leases`)}`, "dhcp-range=10.231.7.10,10.231.7.250,255.255.255.0,1h", "log-facility=/dev/null", ""].join("\n"));
        const p = lan.spawn("srv", ["dnsmasq", "-k", `--conf-file=${join(work, "dnsmasq.conf")}`]);
        await new Promise((r) => setTimeout(r, 500));
        stop = async () => {
          p.kill();
          await Promise.race([p, new Promise((r) => setTimeout(r, 2000))]);
        };
      }
      const r = await runClient(round);
      await stop();
      if (r.ok !== machines) console.warn(`  ${name} round ${round}: only ${r.ok}/${machines} handshakes completed`);
      const rate = (r.ok / r.ms) * 1000;
      results[name]!.push(rate);
      console.log(`round ${round} ${name.padEnd(8)} ${r.ok} handshakes in ${(r.ms / 1000).toFixed(2)} s = ${rate.toFixed(0)}/s`);
    }
  }
  const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
  const lb = mean(results.lifeboat!);
  const dm = mean(results.dnsmasq!);
  console.log(`mean: lifeboat ${lb.toFixed(0)}/s, dnsmasq ${dm.toFixed(0)}/s; ratio lifeboat/dnsmasq ${(lb / dm).toFixed(2)}x rate`);
} finally {
  await lan.down();
  rmSync(work, { recursive: true, force: true });
}
