/**
 * TFTP against clients nobody here wrote (tftp-hpa, atftp, curl, busybox tftp) and hostile
 * peers, with the real `lifeboat serve` in a namespace LAN, 10.231.40.0/24 (issue 27 item 1
 * and 4, issue 16 items 1 and 2, TFTP side). Each defect's scenario, then the behaviour that
 * must stay: byte-identical downloads (block-number wrap included), options, traversal and
 * writes refused. UDP counts come from the server namespace's /proc/net/snmp (a capture on
 * the wire would show the same), counters from the server's /metrics.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ackPacket, errorPacket, toNetascii } from "../../../server/tftp/packets.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type NsServer, serveInNs } from "./lifeboat-ns.ts";

const TOOLS = ["tftp", "atftp", "curl", "busybox", "perl", "chrt"];
async function unavailable(): Promise<string | undefined> {
  const ns = await netnsUnavailable();
  if (ns) return ns;
  const missing = [];
  for (const t of TOOLS) if ((await execa("sh", ["-c", `command -v ${t}`], { reject: false })).exitCode !== 0) missing.push(t);
  return missing.length ? `missing ${missing.join(", ")} (scripts/apt-packages.txt; run scripts/bootstrap)` : undefined;
}
const skip = await unavailable();
if (skip && process.env.CI === "true") {
  // Under CI nothing is skipped: a missing tool is a failure naming it.
  it("has the namespaces and clients the TFTP interop tests need", () => {
    throw new Error(skip);
  });
} else if (skip) console.warn(`SKIPPED TFTP interop tests: ${skip}`);

const peerScript = fileURLToPath(new URL("./tftp-peer.ts", import.meta.url));
const spoof = fileURLToPath(new URL("./spoof-udp.pl", import.meta.url));
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

const SUBNET = "10.231.40";
const SRV = `${SUBNET}.1`;
const CLI = `${SUBNET}.9`;
const STRANGER = `${SUBNET}.66`;
/** RRQs a second in the flood test. */
const FLOOD_RATE = 5000;
/** Extra addresses of the client namespace, for the flood from many clients. */
const FLOOD_ADDRESSES = Array.from({ length: 24 }, (_, i) => `${SUBNET}.${100 + i}`);

const work = tempDir("lbtf-interop-");
const root = join(work, "tftp");
const out = join(work, "out");
const big = randomBytes(1024 * 1024 + 333);
/** The size of iPXE's undionly.kpxe and snponly.efi, as random bytes (every CR and LF value included). */
const loader = randomBytes(200_000);
/** Over 65535 blocks of 8 bytes: the block number wraps. */
const wrap = randomBytes(65536 * 8 + 77);
/** A text file as a Windows tool or a hand edit leaves it: CRLF lines, a bare LF, a bare CR. */
const text = Buffer.from("set timeout 5\r\nkernel /vmlinuz\r\nappend quiet\nbare\rcr\r\n");

let lan: Lan;
let srv: NsServer;

const cli = (cmd: string[], timeout = 30_000) => lan.exec("cli", cmd, { timeout });
let outN = 0;
const outFile = (what: string) => join(out, `${++outN}-${what}`);

/** UDP datagrams the server's namespace received and sent so far. */
async function udp(): Promise<{ in: number; out: number }> {
  const snmp = (await lan.exec("srv", ["cat", "/proc/net/snmp"])).stdout.split("\n").filter((l) => l.startsWith("Udp:"));
  const [names, values] = snmp.map((l) => l.split(/\s+/).slice(1));
  const v = (k: string) => Number(values![names!.indexOf(k)]);
  return { in: v("InDatagrams"), out: v("OutDatagrams") };
}

/** lifeboat_tftp_dropped_total by reason, from the server's /metrics. */
async function drops(): Promise<Record<string, number>> {
  const text = (await lan.exec("srv", ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:8080/metrics"])).stdout;
  return Object.fromEntries([...text.matchAll(/^lifeboat_tftp_dropped_total\{reason="([^"]+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
}

async function peer(args: string[]): Promise<Record<string, number>> {
  const r = await cli([process.execPath, "--import", "tsx", peerScript, ...args], 60_000);
  if (r.exitCode !== 0) throw new Error(`tftp-peer ${args[0]}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counters settle a moment after the last packet: wait until two reads agree (a packet loop never does). */
async function settledUdp(): Promise<{ in: number; out: number }> {
  let prev = await udp();
  for (let i = 0; i < 15; i++) {
    await sleep(300);
    const now = await udp();
    if (now.in === prev.in && now.out === prev.out) return now;
    prev = now;
  }
  throw new Error(`the server's UDP traffic does not stop (${JSON.stringify(prev)} and still moving): a packet loop?`);
}

/** The options of the OACK `atftp --trace` printed, `<tsize: N, blksize: N>` (it backspaces over the last ", "). */
const oackOf = (r: { stdout: string; stderr: string }) => /received OACK (<.*>)/.exec(`${r.stdout}\n${r.stderr}`)?.[1]?.replace(/, \x08\x08/g, "");

async function tftpHpa(args: string[], input?: string) {
  return lan.exec("cli", ["tftp", ...args], { timeout: 30_000, input });
}

describe.skipIf(skip)("TFTP interop in a namespace LAN", () => {
  beforeAll(async () => {
    mkdirSync(root, { recursive: true });
    mkdirSync(out, { recursive: true });
    writeFileSync(join(root, "big.bin"), big);
    writeFileSync(join(root, "wrap.bin"), wrap);
    writeFileSync(join(root, "loader.bin"), loader);
    writeFileSync(join(root, "boot.cfg"), text);
    lan = await createLan({ prefix: "lbtf", subnet: SUBNET, members: { srv: 1, cli: 9 } });
    for (const a of FLOOD_ADDRESSES) await lan.exec("cli", ["ip", "addr", "add", `${a}/24`, "dev", "eth0"]);
    srv = await serveInNs(lan, "srv", join(work, "data"), { http: { port: 8080 }, tftp: { root }, dhcp: { mode: "off" } }, ["http", "tftp"]);
  });
  afterAll(async () => {
    await srv?.stop();
    await lan?.down();
  });

  describe("issue 27.1: only requests are answered", () => {
    it("tftp-hpa sends ACK 1 to port 69 after an ERROR: it gets no answer, and is counted", async () => {
      const before = await settledUdp();
      const d0 = await drops();
      const r = await tftpHpa([SRV], `trace\nget nope ${outFile("nope")}\nquit\n`);
      expect(r.stdout).toMatch(/received ERROR <code=1, msg=File not found>/);
      const after = await settledUdp();
      // In: the RRQ and the ACK (tftp-hpa's abort path sends it untraced). Out: the one ERROR;
      // before the fix the ACK got a second ERROR.
      expect(after.in - before.in).toBe(2);
      expect(after.out - before.out).toBe(1);
      expect((await drops())["unexpected-opcode"]).toBe(d0["unexpected-opcode"]! + 1);
    });

    it("one ERROR spoofed from the server's own address and port 69 to itself is one packet, not a loop", async () => {
      const before = await settledUdp();
      const r = await lan.exec("srv", ["perl", spoof, SRV, "69", SRV, "69", errorPacket(4, "Illegal TFTP operation").toString("hex")]);
      expect(r.stderr).toBe("");
      await sleep(1000);
      const after = await settledUdp();
      // Before the fix: about 55,000 datagrams a second, one core busy, until a restart.
      expect(after.in - before.in).toBe(1);
      expect(after.out - before.out).toBe(0);
    });

    it("a peer that answers every ERROR with an ERROR gets nothing back", async () => {
      expect(await peer(["echo-errors", SRV, "69", "1000"])).toEqual({ received: 0 });
    });

    it("a stranger's packets on a transfer's port are dropped unanswered (unknown TID); the download completes", async () => {
      // A stranger aims at the transfer's port while atftp downloads.
      const d0 = await drops();
      const dst = outFile("tid");
      const get = cli(["atftp", "--option", "blksize 64", "-g", "-r", "big.bin", "-l", dst, SRV, "69"], 60_000);
      // The transfer's socket is the server's only UDP socket besides port 69.
      let tid: string | undefined;
      for (let i = 0; i < 100 && !tid; i++) {
        await sleep(20);
        const ports = [...(await lan.exec("srv", ["ss", "-Huan"])).stdout.matchAll(/:(\d+)\s+\S+:\*/g)].map((m) => m[1]);
        tid = ports.find((p) => p !== "69");
      }
      expect(tid).toBeDefined();
      for (const p of [errorPacket(0, "x"), ackPacket(1)]) await lan.exec("cli", ["perl", spoof, STRANGER, "4000", SRV, tid!, p.toString("hex")]);
      expect((await get).exitCode).toBe(0);
      expect(sha(readFileSync(dst))).toBe(sha(big));
      expect((await drops())["unknown-tid"]).toBe(d0["unknown-tid"]! + 2);
    });
  });

  describe("issue 16.1: a datagram from source port 0", () => {
    it("the RRQ of the issue from port 0 on the wire: dropped and counted, nothing sent, the server keeps serving", async () => {
      const before = await settledUdp();
      const d0 = await drops();
      const r = await lan.exec("cli", ["perl", spoof, CLI, "0", SRV, "69", "0001756e64696f6e6c792e6b707865006f6374657400"]);
      expect(r.stderr).toBe("");
      const after = await settledUdp();
      // Before the fix: ERR_SOCKET_BAD_PORT thrown in a bind callback, the process gone.
      expect(srv.proc.exitCode).toBeNull();
      expect(after.in - before.in).toBe(1);
      expect(after.out - before.out).toBe(0);
      expect((await drops())["bad-source"]).toBe(d0["bad-source"]! + 1);
      const dst = outFile("after-port0");
      expect((await cli(["curl", "-sS", "-o", dst, `tftp://${SRV}/big.bin`])).exitCode).toBe(0);
      expect(sha(readFileSync(dst))).toBe(sha(big));
    });
  });

  describe("issue 27.4: netascii", () => {
    it("tftp-hpa in its default mode (netascii) saves a CRLF text file byte-exact", async () => {
      const dst = outFile("boot.cfg");
      const r = await tftpHpa(["-v", SRV, "-c", "get", "boot.cfg", dst]);
      expect(r.stdout).toContain("[netascii]");
      expect(readFileSync(dst)).toEqual(text);
    });

    it("tftp-hpa in its default mode gets a binary loader byte-identical too (netascii round-trips every byte)", async () => {
      const dst = outFile("loader.bin");
      await tftpHpa([SRV, "-c", "get", "loader.bin", dst]);
      expect(sha(readFileSync(dst))).toBe(sha(loader));
    });

    it("tftp-hpa in its default mode asking for a file over 1 MiB is told to use binary mode", async () => {
      const r = await tftpHpa([SRV, "-c", "get", "big.bin", outFile("big-netascii")]);
      expect(r.stdout).toContain("Error code 0: netascii is limited to 1 MiB: use octet (binary) mode");
    });

    it("curl ;mode=netascii shows the wire: LF → CR LF, CR → CR NUL, and tsize is the converted size", async () => {
      const dst = outFile("wire");
      const r = await cli(["curl", "-sS", "-v", "-o", dst, `tftp://${SRV}/boot.cfg;mode=netascii`]);
      expect(r.exitCode).toBe(0);
      const wire = toNetascii(text);
      expect(readFileSync(dst)).toEqual(wire);
      expect(r.stderr).toContain(`got option=(tsize) value=(${wire.length})`);
    });
  });

  describe("issue 16.2: the timeout option and a flood of requests", () => {
    it("atftp asking timeout 255: the OACK leaves it out (not granted), the download completes", async () => {
      const dst = outFile("timeout");
      const r = await cli(["atftp", "--trace", "--option", "timeout 255", "--option", "tsize enable", "-g", "-r", "big.bin", "-l", dst, SRV, "69"]);
      expect(r.exitCode).toBe(0);
      expect(oackOf(r)).toBe(`<tsize: ${big.length}>`);
      expect(sha(readFileSync(dst))).toBe(sha(big));
    });

    it("a flood of RRQs from 24 addresses: /healthz answers within 50 ms throughout; beyond 128 transfers each gets ERROR busy, counted", async () => {
      const d0 = await drops();
      // What is measured is the server's own event loop under the flood, not the load of
      // whatever else runs on the machine (other test files beside this one starved it for
      // 100-500 ms at a time here): the server's threads and the probe run SCHED_FIFO during
      // the measurement, the flood at normal priority.
      const pid = String(srv.proc.pid);
      await execa("chrt", ["-a", "-f", "-p", "1", pid]);
      let flood: Record<string, number>;
      let answers: string[][];
      try {
        const probe = lan.exec(
          "cli",
          ["chrt", "-f", "1", "sh", "-c", `sleep 0.5; for i in $(seq 1 40); do curl -sS -o /dev/null --max-time 2 -w '%{http_code} %{time_total}\\n' http://${SRV}:8080/healthz; sleep 0.05; done`],
          { timeout: 60_000 },
        );
        flood = await peer(["flood", SRV, "69", "3000", String(FLOOD_RATE), "big.bin", ...FLOOD_ADDRESSES]);
        answers = (await probe).stdout.trim().split("\n").map((l) => l.split(" "));
      } finally {
        await execa("chrt", ["-a", "-o", "-p", "0", pid]);
      }
      expect(answers).toHaveLength(40);
      expect(answers.filter(([code]) => code !== "200")).toEqual([]);
      const slowest = Math.max(...answers.map(([, t]) => Number(t) * 1000));
      console.log(`TFTP flood: ${flood.sent} RRQs in 3 s from ${FLOOD_ADDRESSES.length} addresses, ${flood.started} transfers started, ${flood.busy} refused busy; slowest /healthz ${slowest.toFixed(1)} ms`);
      expect(slowest).toBeLessThan(50);
      // Round-robin over 24 addresses fills the 128 slots (tftp.maxTransfers) before any address
      // has 8 (tftp.maxTransfersPerClient; that cap is checked in test/unit/tftp/server.test.ts);
      // nothing is ACKed, so none frees up within the 3 s.
      expect(flood.started).toBe(128);
      expect(flood.busy).toBeGreaterThan(flood.sent / 2);
      const d1 = await drops();
      expect(d1["busy-total"]! - d0["busy-total"]!).toBeGreaterThanOrEqual(flood.busy);
      // The flooded transfers give up after 5 retransmissions; then the server serves again.
      await sleep(6500);
      const dst = outFile("after-flood");
      expect((await cli(["curl", "-sS", "-o", dst, `tftp://${SRV}/big.bin`])).exitCode).toBe(0);
      expect(sha(readFileSync(dst))).toBe(sha(big));
    });
  });

  describe("what passes and must keep passing", () => {
    it("tftp-hpa binary mode: byte-identical, from a subdirectory-style name with a leading slash", async () => {
      const dst = outFile("hpa-bin");
      const r = await tftpHpa(["-m", "binary", SRV, "-c", "get", "/big.bin", dst]);
      expect(r.exitCode).toBe(0);
      expect(sha(readFileSync(dst))).toBe(sha(big));
    });

    for (const args of [[], ["--tftp-blksize", "1468"], ["--tftp-blksize", "65464"], ["--tftp-no-options"]]) {
      it(`curl ${args.join(" ") || "(defaults: blksize 512, tsize)"} byte-identical`, async () => {
        const dst = outFile("curl");
        const r = await cli(["curl", "-sS", ...args, "-o", dst, `tftp://${SRV}/big.bin`]);
        expect(r.stderr).toBe("");
        expect(sha(readFileSync(dst))).toBe(sha(big));
      });
    }

    it("atftp with blksize 1468, tsize and windowsize 8 (what OVMF asks) byte-identical", async () => {
      const dst = outFile("atftp-window");
      const r = await cli(["atftp", "--trace", "--option", "blksize 1468", "--option", "tsize enable", "--option", "windowsize 8", "-g", "-r", "big.bin", "-l", dst, SRV, "69"]);
      expect(r.exitCode).toBe(0);
      expect(oackOf(r)).toBe(`<tsize: ${big.length}, windowsize: 8, blksize: 1468>`);
      expect(sha(readFileSync(dst))).toBe(sha(big));
    });

    it("atftp with blksize 8 and windowsize 16: the block number wraps past 65535 and the file arrives whole", async () => {
      const dst = outFile("atftp-wrap");
      const r = await cli(["atftp", "--option", "blksize 8", "--option", "windowsize 16", "-g", "-r", "wrap.bin", "-l", dst, SRV, "69"], 120_000);
      expect(r.exitCode).toBe(0);
      expect(readFileSync(dst).length).toBe(wrap.length);
      expect(sha(readFileSync(dst))).toBe(sha(wrap));
    });

    it("busybox tftp, default and -b 1468, byte-identical", async () => {
      for (const args of [[], ["-b", "1468"]]) {
        const dst = outFile("busybox");
        const r = await cli(["busybox", "tftp", "-g", "-r", "big.bin", "-l", dst, ...args, SRV]);
        expect(r.exitCode).toBe(0);
        expect(sha(readFileSync(dst))).toBe(sha(big));
      }
    });

    it("traversal is refused by every client, with the server's error and nothing saved", async () => {
      writeFileSync(join(work, "secret"), "secret");
      const name = "../secret";
      const dst = { hpa: outFile("t-hpa"), atftp: outFile("t-atftp"), curl: outFile("t-curl"), busybox: outFile("t-busybox") };
      const said = "Access violation: path outside the TFTP root";
      // tftp-hpa exits 0 after an error; it prints it.
      expect((await tftpHpa(["-m", "binary", SRV, "-c", "get", name, dst.hpa])).stdout).toContain(`Error code 2: ${said}`);
      expect(await cli(["atftp", "-g", "-r", name, "-l", dst.atftp, SRV, "69"])).toMatchObject({ exitCode: 255, stderr: expect.stringContaining(`<${said}>`) });
      // curl 7.88: exit 69 is CURLE_TFTP_PERM (its message for it names getpeername(), a curl bug).
      expect((await cli(["curl", "-sS", "--path-as-is", "-o", dst.curl, `tftp://${SRV}/${name}`])).exitCode).toBe(69);
      expect(await cli(["busybox", "tftp", "-g", "-r", name, "-l", dst.busybox, SRV])).toMatchObject({ exitCode: 1, stderr: expect.stringContaining(`(2) ${said}`) });
      for (const f of Object.values(dst)) expect(existsSync(f) ? readFileSync(f, "utf8") : "").toBe("");
    });

    it("writes are refused by every client and nothing lands in the root", async () => {
      const up = join(work, "upload.bin");
      writeFileSync(up, "upload");
      const said = "Access violation: read-only server";
      expect((await tftpHpa(["-m", "binary", SRV, "-c", "put", up, "up-hpa"])).stdout).toContain(`Error code 2: ${said}`);
      expect(await cli(["atftp", "-p", "-l", up, "-r", "up-atftp", SRV, "69"])).toMatchObject({ exitCode: 255, stderr: expect.stringContaining(`<${said}>`) });
      expect((await cli(["curl", "-sS", "-T", up, `tftp://${SRV}/up-curl`])).exitCode).toBe(69);
      expect(await cli(["busybox", "tftp", "-p", "-l", up, "-r", "up-bb", SRV])).toMatchObject({ exitCode: 1, stderr: expect.stringContaining(`(2) ${said}`) });
      for (const n of ["up-hpa", "up-atftp", "up-curl", "up-bb"]) expect(existsSync(join(root, n))).toBe(false);
    });
  });
});
