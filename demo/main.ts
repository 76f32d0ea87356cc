/**
 * `bash scripts/demo [--firmware uefi|bios] [--keep] [--verbose]`: Lifeboat's main job on a
 * private LAN of network namespaces (demo/whole-job.ts), narrated, ending with its figures.
 * --keep leaves `lifeboat serve` running with its admin page forwarded to 127.0.0.1:PORT on
 * this host until Ctrl-C. Everything it made is removed at the end: namespaces, taps,
 * processes, the Amanda config link, the scratch directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { type Narrator, type Story, runWholeJob } from "./whole-job.ts";

const USAGE = `usage: bash scripts/demo [--firmware uefi|bios] [--keep [--port N]] [--verbose]
  Runs Lifeboat's whole job on a private LAN (network namespaces; nothing on this host's own
  network): a Debian 12 server backed up by Amanda dies, network-boots Lifeboat and comes back
  as itself. Needs root, QEMU and the packages of scripts/apt-packages.txt (scripts/bootstrap).
  --firmware  the machine's firmware: uefi (OVMF, default) or bios (SeaBIOS)
  --keep      afterwards, keep the server and forward its admin page to http://127.0.0.1:PORT/ until Ctrl-C
  --port      the forwarded port (default 8088)
  --verbose   show the build and boot log lines as well`;

function parse() {
  try {
    const { values } = parseArgs({
      options: { firmware: { type: "string", default: "uefi" }, keep: { type: "boolean", default: false }, port: { type: "string", default: "8088" }, verbose: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    if (values.firmware !== "uefi" && values.firmware !== "bios") throw new Error(`--firmware: uefi or bios, not ${values.firmware}`);
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--port: a TCP port, not ${values.port}`);
    return { firmware: values.firmware as "uefi" | "bios", keep: values.keep, port, verbose: values.verbose };
  } catch (err) {
    console.error(`demo: ${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const tty = process.stdout.isTTY;
const start = Date.now();
const clock = () => {
  const s = Math.round((Date.now() - start) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};
let open = false;
const endLine = () => {
  if (open) process.stdout.write("\n");
  open = false;
};

function narrator(verbose: boolean): Narrator {
  return {
    stage: (title) => {
      endLine();
      console.log(`\n[${clock()}] == ${title}`);
    },
    say: (line) => {
      endLine();
      console.log(`[${clock()}]    ${line}`);
    },
    progress: (label, done, total) => {
      const text = total === null ? `${label}: ${done.toFixed(0)} s` : `${label}: ${bar(done / total)} ${((100 * done) / total).toFixed(0)}%`;
      if (tty) {
        process.stdout.write(`\r[${clock()}]    ${text}\x1b[K`);
        open = true;
      } else if (Math.round(done) % 15 === 0) console.log(`[${clock()}]    ${text}`);
    },
    detail: (line) => {
      if (verbose) {
        endLine();
        console.log(`           ${line}`);
      } else if (tty) {
        process.stdout.write(`\r[${clock()}]    ${line.slice(0, 100)}\x1b[K`);
        open = true;
      }
    },
    watch: tty ? "inherit" : "capture",
  };
}

function bar(f: number): string {
  const w = 30;
  const k = Math.max(0, Math.min(w, Math.round(f * w)));
  return `[${"#".repeat(k)}${"-".repeat(w - k)}]`;
}

const MiB = 1024 * 1024;

function table(s: Story): string {
  const f = s.figures;
  const rows: Array<[string, string, string]> = [
    ["time to recover (arm → web1 answers from its restored disk)", `${f.recoverSeconds.toFixed(0)} s`, `side measurement of ${f.measureSeconds.toFixed(0)} s taken out`],
    ["bytes restored (2 chains: / and /home, level 0 + level 1)", `${(f.bytesRestored / MiB).toFixed(0)} MiB`, `Amanda wrote ${(f.backupBytes / MiB).toFixed(0)} MiB in ${f.backupSeconds.toFixed(0)} s`],
    ["guest restore rate (curl → sha256 → tar onto ext4)", `${f.restoreMiBs.toFixed(1)} MiB/s`, `${f.restoreSeconds.toFixed(0)} s in restore_dump`],
    ["dd of the same bytes, same server, same guest and disk", `${f.fetch.ddMiBs.toFixed(1)} MiB/s`, `restore/dd = ${f.ratio.toFixed(2)}×`],
    ["  the stream alone (curl → /dev/null)", `${f.fetch.nullMiBs.toFixed(1)} MiB/s`, `restore/curl = ${(f.restoreMiBs / f.fetch.nullMiBs).toFixed(2)}×`],
    ["  the stream through sha256sum", `${f.fetch.sha256MiBs.toFixed(1)} MiB/s`, `restore/sha = ${(f.restoreMiBs / f.fetch.sha256MiBs).toFixed(2)}×`],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map((r) => `  ${r[0].padEnd(w0)}  ${r[1].padStart(w1)}   ${r[2]}`).join("\n");
}

/**
 * Forwards 127.0.0.1:PORT on this host to HOST:TARGET inside the namespace NS: the listening
 * socket is made here and handed over IPC to a node process started inside the namespace,
 * which accepts on it and connects out from there. Nothing listens on the host's interfaces.
 */
async function forward(ns: string, port: number, host: string, target: number): Promise<ChildProcess> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const code = `const net = require("node:net");
process.on("message", (_m, server) => server.on("connection", (sock) => {
  const out = net.connect(${target}, ${JSON.stringify(host)});
  sock.pipe(out).on("error", () => sock.destroy());
  out.pipe(sock).on("error", () => out.destroy());
  out.on("error", () => sock.destroy());
  sock.on("error", () => out.destroy());
}));`;
  const child = spawn("ip", ["netns", "exec", ns, process.execPath, "-e", code], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  await new Promise<void>((resolve, reject) => child.send("server", server, (err) => (err ? reject(err) : resolve())));
  server.close();
  return child;
}

async function main() {
  const o = parse();
  if (process.getuid?.() !== 0) {
    console.error("demo: needs root (network namespaces, QEMU taps, loop devices, Amanda as user backup)");
    process.exit(1);
  }
  const work = mkdtempSync(join(tmpdir(), "lifeboat-demo-"));
  const n = narrator(o.verbose);
  console.log(`Lifeboat demo: a Debian 12 server backed up by Amanda dies and comes back as itself (${o.firmware.toUpperCase()}, QEMU).`);
  let story: Story | undefined;
  let stopping = false;
  const finish = async (code: number) => {
    if (stopping) return;
    stopping = true;
    endLine();
    console.log(`[${clock()}] removing the demo: machines, lifeboat serve, namespaces, taps, Amanda config, ${work}`);
    await story?.cleanup();
    rmSync(work, { recursive: true, force: true });
    process.exit(code);
  };
  process.on("SIGINT", () => void finish(130));
  process.on("SIGTERM", () => void finish(143));
  try {
    story = await runWholeJob({ firmware: o.firmware, workDir: work, prefix: "lbdemo", subnet: "10.231.61", mac: "52:54:00:3d:00:0a", narrator: n });
  } catch (err) {
    endLine();
    console.error(`\ndemo failed: ${(err as Error).message}`);
    await finish(1);
    return;
  }
  endLine();
  console.log(`\n[${clock()}] == recovered. The figures (QEMU under ${process.env.LIFEBOAT_ACCEL ?? "TCG"} on this machine):\n${table(story)}`);
  console.log(`
On a real LAN it is one service: \`lifeboat serve\` with your Amanda config and your network in its
config (README, "Running it on a real LAN"), hosts added with \`lifeboat hosts add\`, capture.sh
installed with \`lifeboat capture install HOST\`, and \`lifeboat jobs arm MAC\` when a machine dies.
This demo is a self-contained rehearsal of that on a private LAN; it is not the service.`);
  if (!o.keep) return finish(0);
  const fwd = await forward(story.lan.ns("srv"), o.port, "10.231.61.1", 8080);
  process.on("exit", () => fwd.kill());
  console.log(`\nkept: the admin page is at http://127.0.0.1:${o.port}/ (admin token: ${story.adminTokenFile}); Ctrl-C removes everything.`);
}

void main();
