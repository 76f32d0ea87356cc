/**
 * Dump streaming over HTTP against the reference tool, side by side:
 *   1. `cat PARTS > /dev/null` of a ≥ 1 GiB dump's vtape files (page cache warm: the disk's limit)
 *   2. `amfetchdump -p` of the same dump to /dev/null (Amanda's own reader: the reference)
 *   3. one HTTP stream of the same dump from `lifeboat serve` (curl -o /dev/null), alternating with 2
 *   4. 20 concurrent HTTP streams of it, beside 20 concurrent cats (the disk's limit; 20
 *      amfetchdumps cannot run at once: chg-disk reserves the slot for one of them)
 *   5. fan-out: 8 concurrent HTTP streams of it (8 clones of one profile), each clone's rate
 *      against one stream's, and the bytes the server read from files meanwhile as a multiple
 *      of the dump (the shared reader reads each part once), beside 8 concurrent cats
 * and prints the ratios and the server's peak RSS (VmHWM). Run as root:
 *   npx tsx bench/amanda-stream.ts [SIZE_MIB=1100]
 * LIFEBOAT_CPU_PROF=DIR profiles the server (`node --cpu-prof`).
 * The Amanda config with the big dump (one amdump, ~1 min) is cached (bench/big-dump.ts).
 */
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { bigDump } from "./big-dump.ts";

const SIZE_MIB = Number(process.argv[2] ?? 1100);
const repo = fileURLToPath(new URL("..", import.meta.url));
const MiB = 1 << 20;

function vmKiB(pid: number, field: "VmHWM" | "VmRSS"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0);
}

/** Runs fn while sampling the process's RSS every 50 ms; resolves to [seconds, peak RSS KiB]. */
async function timedRss(pid: number, fn: () => Promise<unknown>): Promise<[number, number]> {
  let peak = vmKiB(pid, "VmRSS");
  const tick = setInterval(() => (peak = Math.max(peak, vmKiB(pid, "VmRSS"))), 50);
  try {
    return [await timed(fn), peak];
  } finally {
    clearInterval(tick);
  }
}

/**
 * Bytes the process read by syscalls (/proc/PID/io rchar). Not the disk's reads: the page cache
 * serves those here, so this is what shows whether each part was read once or once per stream.
 */
function rchar(pid: number): number {
  return Number(/^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, "utf8"))?.[1] ?? NaN);
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

async function main() {
  if (process.getuid?.() !== 0) throw new Error("run as root (Amanda dumps run as user backup)");
  const { root: ROOT, conf: CONF } = await bigDump(SIZE_MIB);
  // amfetchdump finds its config only under /etc/amanda: linked while the bench runs.
  const link = join("/etc/amanda", CONF);
  rmSync(link, { force: true });
  symlinkSync(join(ROOT, "config"), link);
  const work = mkdtempSync(join(tmpdir(), "lifeboat-bench-"));
  writeFileSync(
    join(work, "lifeboat.yaml"),
    `amanda:\n  - name: ${CONF}\n    configDir: ${ROOT}/config\ncatalog:\n  refreshMinutes: 0\nlog:\n  level: warn\n`,
  );
  // LIFEBOAT_CPU_PROF=DIR: the server runs under `node --cpu-prof` (the profile lands in DIR).
  const prof = process.env.LIFEBOAT_CPU_PROF ? ["--cpu-prof", "--cpu-prof-dir", process.env.LIFEBOAT_CPU_PROF] : [];
  const server = execa(process.execPath, [...prof, join(repo, "bin/lifeboat.js"), "serve", "--config", join(work, "lifeboat.yaml"), "--data-dir", join(work, "data"), "--listen", "127.0.0.1", "--http-port", "0", "--no-tftp", "--dhcp", "off", "--log-level", "info"], { stdin: "ignore", reject: false });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let buf = "";
      server.stdout!.on("data", (d: Buffer) => {
        buf += d.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(buf);
        if (m) resolve(m[1]!);
      });
      void server.then((r) => reject(new Error(`serve exited: ${r.stderr}`)));
    });
    const token = readFileSync(join(work, "data", "admin-token"), "utf8").trim();
    const auth = { authorization: `Bearer ${token}` };
    await fetch(`${url}/api/v1/catalog/refresh`, { method: "POST", headers: { ...auth, "content-type": "application/json" }, body: "{}" });
    const dumps = (await (await fetch(`${url}/api/v1/catalog/dumps`, { headers: auth })).json()) as Array<{ id: string; sizeBytes: number; location: { parts: Array<{ path: string }> } }>;
    const d = (dumps as Array<(typeof dumps)[number] & { amanda: string; host: string; disk: string; datestamp: string; level: number }>).sort((a, b) => b.sizeBytes - a.sizeBytes)[0];
    if (!d) throw new Error("no dump in the bench catalog");
    const parts = d.location.parts.map((p) => p.path);
    const size = d.sizeBytes;
    const streamUrl = `${url}/api/v1/dumps/${d.id}/stream`;
    const curl = () => execa("curl", ["-sf", "-o", "/dev/null", "-H", `authorization: Bearer ${token}`, streamUrl]);
    // -l: as stored (the raw stream is what the HTTP route sends by default); -p: to stdout.
    const amfetch = () =>
      execa("sh", ["-c", 'exec runuser -u backup -- amfetchdump -a -p -l --exact-match "$@" < /dev/null > /dev/null', "sh", d.amanda, d.host, d.disk, d.datestamp, String(d.level)]);
    console.log(`dump ${d.id}: ${(size / MiB).toFixed(0)} MiB in ${parts.length} vtape parts; server pid ${server.pid}`);

    const cat = () => execa("sh", ["-c", 'cat "$@" > /dev/null', "sh", ...parts]);
    await cat(); // warm the page cache
    const catTimes: number[] = [];
    for (let i = 0; i < 3; i++) catTimes.push(await timed(cat));
    const amTimes: number[] = [];
    const httpTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      amTimes.push(await timed(amfetch));
      httpTimes.push(await timed(curl));
    }
    const cat1 = Math.min(...catTimes);
    const am1 = Math.min(...amTimes);
    const http1 = Math.min(...httpTimes);
    const catConc = await timed(() => Promise.all(Array.from({ length: 20 }, cat)));
    const idle = vmKiB(server.pid!, "VmRSS");
    const [concTime, concPeak] = await timedRss(server.pid!, () => Promise.all(Array.from({ length: 20 }, curl)));
    const hwm = vmKiB(server.pid!, "VmHWM");
    const FANOUT = 8;
    const catFan = await timed(() => Promise.all(Array.from({ length: FANOUT }, cat)));
    const read0 = rchar(server.pid!);
    // One curl with FANOUT parallel transfers: the clones start together, as a fan-out restore's do
    // (separate curl processes start milliseconds apart, several MiB of the stream at these rates).
    let cloneTimes: number[] = [];
    const fanTime = await timed(async () => {
      const urls = Array.from({ length: FANOUT }, () => ["-o", "/dev/null", streamUrl]).flat();
      const r = await execa("curl", ["-sf", "-Z", "--parallel-immediate", "--parallel-max", String(FANOUT), "-H", `authorization: Bearer ${token}`, "-w", "%{time_total}\n", ...urls]);
      cloneTimes = r.stdout.trim().split("\n").map(Number);
    });
    const fanRead = rchar(server.pid!) - read0;
    const rate = (bytes: number, s: number) => `${(bytes / MiB / s).toFixed(0)} MiB/s`;
    console.log(`cat PARTS > /dev/null (best of 3):        ${cat1.toFixed(2)} s  ${rate(size, cat1)}`);
    console.log(`amfetchdump -p > /dev/null (best of 3):   ${am1.toFixed(2)} s  ${rate(size, am1)}`);
    console.log(`1 HTTP stream (curl, best of 3):          ${http1.toFixed(2)} s  ${rate(size, http1)}  (CRC-32C checked)`);
    console.log(`20 concurrent cat PARTS > /dev/null:      ${catConc.toFixed(2)} s  ${rate(20 * size, catConc)} aggregate`);
    console.log(`20 concurrent HTTP streams:               ${concTime.toFixed(2)} s  ${rate(20 * size, concTime)} aggregate, ${rate(size, concTime)} per stream`);
    console.log(`ratio 1 stream vs amfetchdump -p:         ${(am1 / http1).toFixed(2)}x throughput`);
    console.log(`ratio 1 stream vs cat:                    ${(cat1 / http1).toFixed(2)}x throughput`);
    console.log(`ratio 20 streams vs 20 cats:              ${(catConc / concTime).toFixed(2)}x aggregate throughput`);
    console.log(`server RSS before the 20 streams:         ${(idle / 1024).toFixed(0)} MiB (an idle server under tsx)`);
    console.log(`server peak RSS during the 20 streams:    ${(concPeak / 1024).toFixed(0)} MiB (+${((concPeak - idle) / 1024).toFixed(0)} MiB for 20 streams)`);
    console.log(`server peak RSS since start (VmHWM):      ${(hwm / 1024).toFixed(0)} MiB`);
    const slowest = Math.max(...cloneTimes);
    console.log(`${FANOUT} concurrent cat PARTS > /dev/null:       ${catFan.toFixed(2)} s  ${rate(FANOUT * size, catFan)} aggregate`);
    console.log(`fan-out: ${FANOUT} clones (concurrent streams):   ${fanTime.toFixed(2)} s  ${rate(FANOUT * size, fanTime)} aggregate; per clone ${rate(size, slowest)} (slowest) to ${rate(size, Math.min(...cloneTimes))}`);
    console.log(`ratio each clone vs 1 stream:             ${(http1 / slowest).toFixed(2)}x (slowest clone) to ${(http1 / Math.min(...cloneTimes)).toFixed(2)}x`);
    console.log(`ratio ${FANOUT} clones vs ${FANOUT} cats:                ${(catFan / fanTime).toFixed(2)}x aggregate throughput`);
    console.log(`server reads during the ${FANOUT} clones:         ${(fanRead / size).toFixed(2)}x the dump (rchar of /proc/PID/io: bytes read by syscalls; the page cache hides the disk's own reads)`);
    // Numbers from a busy machine mean little: say how busy it was.
    console.log(`machine: ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")} at the end`);
  } finally {
    server.kill("SIGTERM");
    await server;
    rmSync(work, { recursive: true, force: true });
    rmSync(link, { force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench failed: ${(err as Error).message}`);
  process.exitCode = 1;
});
