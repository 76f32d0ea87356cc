/**
 * The TFTP server against real clients on loopback: curl and tftp-hpa fetch files
 * byte-identical with and without options; windowsize through our own client (neither
 * real client sends it); traversal, WRQ and junk get error packets or are dropped while the
 * server keeps serving.
 */
import { createHash, randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLogger } from "../../../server/log.ts";
import { decodeTftp, requestPacket } from "../../../server/tftp/packets.ts";
import { TftpServer } from "../../../server/tftp/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { tftpGet } from "./tftp-client.ts";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
const root = tempDir("lbt7-tftp-");
const out = tempDir("lbt7-tftp-out-");
const outside = tempDir("lbt7-tftp-outside-");
const big = randomBytes(3 * 1024 * 1024 + 1234);
const metrics = new Registry();
let server: TftpServer;
let port: number;

beforeAll(async () => {
  writeFileSync(join(root, "big.bin"), big);
  writeFileSync(join(root, "exact.bin"), big.subarray(0, 1468 * 10));
  mkdirSync(join(root, "boot"));
  writeFileSync(join(root, "boot", "undionly.kpxe"), big.subarray(0, 70_000));
  writeFileSync(join(outside, "secret"), "secret");
  symlinkSync(join(outside, "secret"), join(root, "escape"));
  server = new TftpServer({
    root,
    address: "127.0.0.1",
    port: 0,
    log: createLogger("silent", { pretty: false }),
    metrics,
    generate: (name) => (name === "hello.ipxe" ? Buffer.from("#!ipxe\necho generated\n") : undefined),
    // Every client here is 127.0.0.1, and "many transfers at once" runs 8 beside the tail of earlier ones.
    limits: { maxTransfersPerClient: 32 },
  });
  port = await server.listen();
});
afterAll(() => server.close());

async function curl(name: string, args: string[] = []) {
  const file = join(out, `${name.replace(/\W/g, "_")}-${args.join("").replace(/\W/g, "")}`);
  const r = await execa("curl", ["-sS", "--max-time", "30", ...args, "-o", file, `tftp://127.0.0.1:${port}/${name}`], { reject: false });
  return { exitCode: r.exitCode, stderr: r.stderr, data: r.exitCode === 0 ? readFileSync(file) : Buffer.alloc(0) };
}

describe("TFTP with real clients", () => {
  for (const args of [[], ["--tftp-blksize", "1468"], ["--tftp-blksize", "65464"], ["--tftp-no-options"]]) {
    it(`curl ${args.join(" ") || "(defaults)"} gets the 3 MiB file byte-identical`, async () => {
      const r = await curl("big.bin", args);
      expect(r.stderr).toBe("");
      expect(sha(r.data)).toBe(sha(big));
    });
  }

  it("tftp-hpa gets files byte-identical, from a subdirectory with PXE-style backslashes too", async () => {
    const dst = join(out, "hpa.bin");
    const r = await execa("tftp", ["-m", "binary", "127.0.0.1", String(port), "-c", "get", "big.bin", dst], { reject: false });
    expect(r.exitCode).toBe(0);
    expect(sha(readFileSync(dst))).toBe(sha(big));
    const dst2 = join(out, "hpa2.bin");
    await execa("tftp", ["-m", "binary", "127.0.0.1", String(port), "-c", "get", "\\boot\\undionly.kpxe", dst2]);
    expect(readFileSync(dst2)).toEqual(big.subarray(0, 70_000));
  });

  it("windowsize 4 with blksize 1468 and tsize (what OVMF asks), a size that is a multiple of blksize, and mixed-case option names", async () => {
    const r = await tftpGet(port, "big.bin", { blksize: "1468", windowsize: "4", tsize: "0" });
    expect(r.oack).toEqual({ blksize: "1468", windowsize: "4", tsize: String(big.length) });
    expect(sha(r.data)).toBe(sha(big));
    const e = await tftpGet(port, "exact.bin", { BlkSize: "1468", WINDOWSIZE: "8" });
    expect(e.oack).toEqual({ blksize: "1468", windowsize: "8" });
    expect(e.data).toEqual(big.subarray(0, 1468 * 10));
  });

  it("many transfers at once, each on its own port", async () => {
    const all = await Promise.all(Array.from({ length: 8 }, (_, i) => (i % 2 ? curl("big.bin", ["--tftp-blksize", String(1024 + i)]) : tftpGet(port, "big.bin", { blksize: "1432", windowsize: String(i + 1) }))));
    for (const r of all) expect(sha(r.data)).toBe(sha(big));
    // Each transfer closes once the final ACK is in (a moment after the client is done).
    for (let i = 0; i < 40 && server.transfersInFlight > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(server.transfersInFlight).toBe(0);
  });

  it("serves generated files", async () => {
    expect((await curl("hello.ipxe")).data.toString()).toBe("#!ipxe\necho generated\n");
  });

  it("traversal, symlink escape, missing files: error packets; the server keeps serving", async () => {
    expect((await tftpGet(port, "../../../etc/passwd")).error).toMatchObject({ code: 2, message: /outside the TFTP root/ });
    expect((await tftpGet(port, "boot\\..\\..\\secret")).error).toMatchObject({ code: 2 });
    expect((await tftpGet(port, "escape")).error).toMatchObject({ code: 2 });
    expect((await tftpGet(port, "nope")).error).toMatchObject({ code: 1 });
    const viaCurl = await curl("../escape", ["--path-as-is"]);
    expect(viaCurl.exitCode).not.toBe(0);
    expect((await curl("big.bin")).data.length).toBe(big.length);
  });

  it("refuses writes with an error packet (curl -T and a raw WRQ)", async () => {
    const up = join(out, "upload");
    writeFileSync(up, "x");
    const r = await execa("curl", ["-sS", "--max-time", "10", "-T", up, `tftp://127.0.0.1:${port}/upload`], { reject: false });
    expect(r.exitCode).toBe(69); // CURLE_TFTP_PERM: the server said "access violation"
    const answer = await rawExchange(requestPacket("WRQ", "x"));
    expect(answer && decodeTftp(answer)).toMatchObject({ ok: true, packet: { op: "ERROR", code: 2 } });
  });

  it("junk datagrams are dropped and counted, and the server still answers", async () => {
    const s = createSocket("udp4");
    for (let i = 0; i < 2000; i++) s.send(randomBytes(i % 80), port, "127.0.0.1");
    await new Promise((r) => setTimeout(r, 300));
    s.close();
    expect(sha((await curl("big.bin")).data)).toBe(sha(big));
    const drops = (await metrics.getSingleMetric("lifeboat_tftp_dropped_total")!.get()).values;
    expect(drops.reduce((n, v) => n + v.value, 0)).toBeGreaterThan(100);
    const bytes = (await metrics.getSingleMetric("lifeboat_tftp_bytes_sent_total")!.get()).values[0]!.value;
    expect(bytes).toBeGreaterThan(big.length * 10);
  });
});

async function rawExchange(packet: Buffer): Promise<Buffer | undefined> {
  const s = createSocket("udp4");
  try {
    return await new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), 2000);
      s.on("message", (m) => {
        clearTimeout(t);
        resolve(m);
      });
      s.send(packet, port, "127.0.0.1");
    });
  } finally {
    s.close();
  }
}
