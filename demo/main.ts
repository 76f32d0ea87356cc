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
import { type DemoOptions, USAGE, figuresTable, parseDemoArgs } from "./report.ts";
import { type Narrator, type Story, runWholeJob } from "./whole-job.ts";

function parse(): DemoOptions {
  const parsed = parseDemoArgs(process.argv.slice(2));
  if ("help" in parsed) {
    console.log(USAGE);
    process.exit(0);
  }
  if ("error" in parsed) {
    console.error(`demo: ${parsed.error}\n${USAGE}`);
    process.exit(2);
  }
  return parsed.options;
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
  console.log(`Lifeboat demo: a Debian 12 server backed up by Amanda dies and comes back as itself (${o.firmware.toUpperCase()}${o.secureBoot ? " with Secure Boot" : ""}, QEMU).`);
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
  // Ctrl-C is how a kept demo is meant to end (exit 0); before that, it interrupts the run (130).
  let kept = false;
  process.on("SIGINT", () => void finish(kept ? 0 : 130));
  process.on("SIGTERM", () => void finish(143));
  try {
    story = await runWholeJob({ firmware: o.firmware, secureBoot: o.secureBoot, workDir: work, prefix: "lbdemo", subnet: "10.231.61", mac: "52:54:00:3d:00:0a", narrator: n });
  } catch (err) {
    endLine();
    console.error(`\ndemo failed: ${(err as Error).message}`);
    await finish(1);
    return;
  }
  endLine();
  console.log(`\n[${clock()}] == recovered. The figures (QEMU under ${process.env.LIFEBOAT_ACCEL ?? "TCG"} on this machine):\n${figuresTable(story.figures)}`);
  console.log(`
On a real LAN it is one service: \`lifeboat serve\` with your Amanda config and your network in its
config (README, "Running it on a real LAN"), hosts added with \`lifeboat hosts add\`, capture.sh
installed with \`lifeboat capture install HOST\`, and \`lifeboat jobs arm MAC\` when a machine dies.
This demo is a self-contained rehearsal of that on a private LAN; it is not the service.`);
  if (!o.keep) return finish(0);
  const fwd = await forward(story.lan.ns("srv"), o.port, "10.231.61.1", 8080);
  process.on("exit", () => fwd.kill());
  kept = true;
  console.log(`\nkept: the admin page is at http://127.0.0.1:${o.port}/ (admin token: ${story.adminTokenFile}); Ctrl-C removes everything.`);
}

void main();
