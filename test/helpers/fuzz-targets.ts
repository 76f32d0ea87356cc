/**
 * The fuzz targets (issue 16 item 5): one list, run at 1,000,000 inputs each by bench/fuzz.ts
 * and at CI size by test/unit/fuzz/targets.test.ts, so the benchmark and the tests feed the
 * same code with the same generators.
 *
 * The servers are driven through their real receive paths on socket doubles that throw as
 * dgram does (DHCP's `receive()`, the TFTP listener and each transfer's socket), fed from odd
 * sources (port 0, 0.0.0.0, broadcast, multicast, the server's own address); the parsers get
 * real inputs cut, flipped and shuffled, and noise. An escape is what must never happen: an
 * exception or rejection the code let out (a parser may refuse its input only with its own
 * one-line error, never a TypeError or RangeError of a bug), an uncaught exception or
 * unhandled rejection while it ran, a send to port 0, or a server that no longer answers a
 * good request at the end.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import type { Socket } from "node:dgram";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { Registry } from "prom-client";
import { parseAmadminFind } from "../../server/amanda/amadmin.ts";
import { parseTapelist } from "../../server/amanda/conf.ts";
import { HeaderError, buildHeader, parseHeader } from "../../server/amanda/header.ts";
import { parseTraceLog } from "../../server/amanda/logs.ts";
import { encode } from "../../server/dhcp/codec.ts";
import { layoutFromCapture, parseCapture } from "../../server/layout/layout-capture.ts";
import { layoutProblem } from "../../server/layout/layout-validate.ts";
import { REAR_KEYWORDS, layoutFromRear } from "../../server/layout/rear-import.ts";
import { createLogger } from "../../server/log.ts";
import { Op, ackPacket, decodeTftp, errorPacket, requestPacket } from "../../server/tftp/packets.ts";
import { TftpServer } from "../../server/tftp/server.ts";
import { DEFAULT_LIMITS, ReadTransfer, negotiate } from "../../server/tftp/transfer.ts";
import { dumpHeaderText } from "../unit/amanda/synthetic.ts";
import { fixtureBytes, pxeDiscover, pxeRequest } from "../unit/dhcp/packets.ts";
import { DgramDouble, makeDhcpService, rinfo } from "./dhcp-service.ts";
import { type Peer, UdpNet } from "./udp-double.ts";

/** One run of a target: a server or parser set up once and fed every input in turn. */
export interface Session<I> {
  /** Feeds one input; throws (or rejects) only on an escape. */
  run(input: I): void | Promise<void>;
  /** Throws unless the server still answers a good request (servers only). */
  stillAnswers?(): Promise<void>;
  close(): Promise<void>;
}

export interface FuzzTarget<I> {
  name: string;
  input: fc.Arbitrary<I>;
  /** The input for a report: its bytes in hex, with the source where one matters. */
  show(input: I): string;
  open(): Promise<Session<I>>;
}

/** Errors of a bug, never a refusal meant for a person (a stack overflow is a RangeError). */
const BUG_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError];

/** Lets `e` through (rethrows it) unless it is the refusal `ok` describes. */
function refusal(e: unknown, ok: (e: Error) => boolean = () => true): void {
  if (!(e instanceof Error) || BUG_ERRORS.some((c) => e instanceof c) || !ok(e)) throw e;
}

const hex = (b: Buffer | string) => Buffer.from(b).toString("hex");
const tick = () => new Promise((r) => setImmediate(r));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const bytes = (max: number) => fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));

/** Flips bytes at `from` or beyond and cuts or stretches to `len`. */
const mangle = (seed: Buffer, flips: Array<[number, number]>, len: number, from = 0) => {
  const b = Buffer.from(seed);
  for (const [at, v] of flips) b[from + (at % Math.max(1, b.length - from))] = v;
  return len < b.length ? b.subarray(0, len) : Buffer.concat([b, Buffer.alloc(len - b.length, 0xff)]);
};

/** Text made of a vocabulary's words (and a few random ones) in lines, the way parsers of line formats trip. */
const wordLines = (vocab: string[], opts: { maxLines?: number; maxWords?: number } = {}) =>
  fc
    .array(fc.array(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...vocab) }, { weight: 1, arbitrary: fc.string({ maxLength: 12 }) }), { maxLength: opts.maxWords ?? 14 }), { maxLength: opts.maxLines ?? 8 })
    .map((lines) => lines.map((w) => w.join(" ")).join("\n"));

// ---------------------------------------------------------------------------------- DHCP

const dhcpSeeds = [fixtureBytes("bios-ipxe-rom-discover"), fixtureBytes("uefi-pxe-discover"), fixtureBytes("uefi-httpboot-discover"), pxeRequest];

/** Real DHCP packets as sent, with bytes flipped, cut short or stretched, plus headers with random option soup and plain noise. */
export const dhcpHostile = fc.oneof(
  fc.constantFrom(...dhcpSeeds),
  bytes(600),
  fc
    .tuple(fc.constantFrom(...dhcpSeeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }), fc.nat({ max: 700 }))
    .map(([seed, flips, len]) => mangle(seed, flips, len, 240)),
  fc.tuple(fc.constantFrom(...dhcpSeeds), fc.uint8Array({ maxLength: 400 })).map(([seed, tail]) => Buffer.concat([seed.subarray(0, 240), Buffer.from(tail)])),
);

/** Sources as Linux delivers them to a socket: port 0 included, any address (spoofed, broadcast, 0.0.0.0). */
export const dhcpSource = fc.record({
  address: fc.oneof(fc.constantFrom("0.0.0.0", "255.255.255.255", "10.231.7.1", "10.231.7.9", "127.0.0.1"), fc.ipV4()),
  port: fc.oneof(fc.constantFrom(0, 67, 68, 69, 4011, 65535), fc.integer({ min: 0, max: 65535 })),
});

interface DhcpInput {
  packet: Buffer;
  port: 67 | 4011;
  from: Peer;
}

function dhcpTarget(mode: "proxy" | "full"): FuzzTarget<DhcpInput> {
  return {
    name: `dhcp ${mode} receive()`,
    input: fc.record({ packet: dhcpHostile, port: fc.constantFrom(67 as const, 4011 as const), from: dhcpSource }),
    show: (i) => `from ${i.from.address}:${i.from.port} to :${i.port} ${hex(i.packet)}`,
    async open() {
      const dir = mkdtempSync(join(tmpdir(), "lifeboat-fuzz-dhcp-"));
      // Proxy offers held 1 ms: the held-offer timers run too.
      const { svc } = makeDhcpService(mode, mode === "proxy" ? 1 : 0, dir);
      const sock = new DgramDouble();
      const as = sock as unknown as Socket;
      return {
        async run(i) {
          await svc.receive(as, i.port, i.packet, rinfo(i.from.address, i.from.port, i.packet.length));
          if (sock.sent.length > 1000) sock.sent.length = 0; // a million answers are not kept
        },
        async stillAnswers() {
          sock.sent.length = 0;
          await svc.receive(as, 67, encode(pxeDiscover(7)), rinfo("0.0.0.0", 68));
          await sleep(20);
          if (!sock.sent.some((s) => s.port === 68 && s.address === "255.255.255.255")) throw new Error(`no answer to a PXE DISCOVER (sent: ${JSON.stringify(sock.sent)})`);
        },
        async close() {
          await svc.stop();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

// ---------------------------------------------------------------------------------- TFTP

export const tftpRequestLike = fc
  .tuple(fc.string({ maxLength: 40 }), fc.dictionary(fc.constantFrom("blksize", "BLKSIZE", "tsize", "timeout", "windowsize", "x"), fc.string({ maxLength: 12 })))
  .map(([name, opts]) => requestPacket("RRQ", name || "f", opts));

/** Noise, requests with a byte changed, and every opcode with a random tail. */
export const tftpHostile = fc.oneof(
  bytes(200),
  fc.tuple(tftpRequestLike, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([b, at, v]) => mangle(b, [[at, v]], b.length)),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 30 })).map(([op, rest]) => Buffer.concat([Buffer.from([0, op]), Buffer.from(rest)])),
);

/** What reaches a TFTP server: hostile packets, requests for its files with odd modes and options, ACKs and ERRORs. */
export const tftpPayload = fc.oneof(
  tftpHostile,
  fc
    .tuple(fc.constantFrom("small", "text", "nope", "../x"), fc.constantFrom("octet", "netascii", "mail"), fc.dictionary(fc.constantFrom("blksize", "tsize", "timeout", "windowsize"), fc.constantFrom("0", "1", "8", "255", "512", "65464", "x")))
    .map(([n, m, o]) => requestPacket("RRQ", n, o, m)),
  fc.integer({ min: 0, max: 3 }).map((b) => ackPacket(b)),
  fc.constant(errorPacket(0, "x")),
  fc.constant(requestPacket("WRQ", "x")),
);

export const TFTP_LISTEN: Peer = { address: "10.231.40.1", port: 69 };
export const TFTP_CLIENT: Peer = { address: "10.231.40.9", port: 40009 };

/** Sources of TFTP packets: a real client, port 0, 0.0.0.0, broadcast, multicast, the server itself, anyone. */
export const tftpSource = fc.oneof(
  fc.constantFrom<Peer>(
    TFTP_CLIENT,
    { ...TFTP_CLIENT, port: 0 },
    { address: "0.0.0.0", port: 68 },
    { address: "255.255.255.255", port: 1 },
    { address: "10.231.40.255", port: 4000 },
    { address: "224.0.0.1", port: 69 },
    TFTP_LISTEN,
    { ...TFTP_LISTEN, port: 0 },
  ),
  fc.record({ address: fc.ipV4(), port: fc.integer({ min: 0, max: 65535 }) }),
);

/** The files a fuzzed TFTP server serves. */
export function writeTftpRoot(root: string): void {
  writeFileSync(join(root, "small"), Buffer.alloc(700, 7));
  writeFileSync(join(root, "text"), "a\r\nb\n");
}

interface TftpInput {
  from: Peer;
  packet: Buffer;
  /** Which live transfer's port it goes to (modulo their number); none: the listener on 69. */
  toTransfer: number | undefined;
}

const tftpServerTarget: FuzzTarget<TftpInput> = {
  name: "tftp listener and transfer sockets",
  input: fc.record({ from: tftpSource, packet: tftpPayload, toTransfer: fc.option(fc.nat(), { nil: undefined, freq: 2 }) }),
  show: (i) => `from ${i.from.address}:${i.from.port} to ${i.toTransfer === undefined ? "69" : `transfer #${i.toTransfer}`} ${hex(i.packet)}`,
  async open() {
    const root = mkdtempSync(join(tmpdir(), "lifeboat-fuzz-tftp-"));
    writeTftpRoot(root);
    const net = new UdpNet(TFTP_LISTEN.address);
    // Short timers and few slots: transfers start, time out and free their slots all through a run.
    const limits = { maxTransfers: 4, maxTransfersPerClient: 2, timeoutMs: 20, retries: 1, maxTimeoutSeconds: 1 };
    const server = new TftpServer({ root, address: "0.0.0.0", port: 69, log: createLogger("silent", { pretty: false }), metrics: new Registry(), limits, createSocket: net.createSocket });
    await server.listen();
    let ports: number[] = [];
    /** Checks what left the sockets since the last call, then forgets it (a million datagrams are not kept). */
    const drain = () => {
      const toZero = net.sent.find((d) => d.to.port === 0);
      const badPort = net.thrown.find((e) => (e as NodeJS.ErrnoException).code === "ERR_SOCKET_BAD_PORT");
      for (const d of net.sent) if (d.from.port !== 69 && !ports.includes(d.from.port)) ports = [...ports.slice(-15), d.from.port];
      const sent = [...net.sent];
      net.sent.length = 0;
      net.delivered.length = 0;
      net.thrown.length = 0;
      if (toZero) throw new Error(`sent to port 0: ${hex(toZero.packet)}`);
      if (badPort) throw badPort;
      return sent;
    };
    return {
      async run(i) {
        const to = i.toTransfer === undefined || ports.length === 0 ? TFTP_LISTEN : { ...TFTP_LISTEN, port: ports[i.toTransfer % ports.length]! };
        net.inject(i.packet, i.from, to);
        await tick();
        drain();
      },
      async stillAnswers() {
        for (let i = 0; i < 200 && server.transfersInFlight > 0; i++) await sleep(50);
        drain();
        const client = { address: "10.231.40.99", port: 40099 };
        net.inject(requestPacket("RRQ", "small"), client, TFTP_LISTEN);
        await sleep(20);
        const data = drain().find((d) => d.to.port === client.port && d.packet.readUInt16BE(0) === Op.DATA && d.packet.readUInt16BE(2) === 1);
        if (!data) throw new Error(`no DATA block 1 for a good RRQ (${server.transfersInFlight} transfers still in flight)`);
      },
      async close() {
        await server.close();
        rmSync(root, { recursive: true, force: true });
      },
    };
  },
};

interface TransferInput {
  request: Buffer;
  packets: Buffer[];
}

const tftpTransferTarget: FuzzTarget<TransferInput> = {
  name: "tftp transfer (negotiate, ReadTransfer)",
  input: fc.record({ request: fc.oneof(tftpHostile, tftpPayload), packets: fc.array(tftpPayload, { maxLength: 6 }) }),
  show: (i) => `request ${hex(i.request)} then ${i.packets.map(hex).join(" ") || "(nothing)"}`,
  async open() {
    return {
      run(i) {
        const d = decodeTftp(i.request);
        const n = negotiate(d.ok && d.packet.op === "RRQ" ? d.packet.options : {}, 5000, DEFAULT_LIMITS);
        const t = new ReadTransfer(5000, n, (into, at, _o, len) => into.fill(0, at, at + len) && len, 3);
        t.start();
        for (const p of i.packets) t.onPacket(p);
        t.onTimeout();
      },
      close: async () => {},
    };
  },
};

// ---------------------------------------------------------------------------------- Amanda

const synthDump = { host: "web1", disk: "/home dir", datestamp: "20240115103000", level: 1, data: Buffer.alloc(10) };
const headerSeeds = [
  buildHeader("AMANDA: TAPESTART DATE 20240115103000 TAPE LAB-01\n\f\n"),
  buildHeader("AMANDA: TAPEEND DATE 20240115103000\n\f\n"),
  buildHeader(dumpHeaderText("SPLIT_FILE", synthDump, { part: "2/-1" })),
  buildHeader(dumpHeaderText("FILE", synthDump, { cont: "/hold/20240115103000/web1._home.1.1" })),
  buildHeader(dumpHeaderText("CONT_FILE", synthDump)),
];
const headerWords = ["AMANDA:", "FILE", "SPLIT_FILE", "CONT_FILE", "TAPESTART", "TAPEEND", "DATE", "TAPE", "20240115", "20240115103000", "X", "web1", "'/a b'", "lev", "1", "-1", "part", "1/2", "0/0", "x/y", "comp", "N", ".gz", "program", "GNUTAR", "crypt", "server_custom_compress", "/bin/x", "client_encrypt", "\n", "\f", "CONT_FILENAME=", "NATIVE-CRC=", "0a0b0c0d:12", "ORIGSIZE=", "DLE=<<ENDDLE", "ENDDLE", "\"", "\\"];

/** Amanda's 32 KiB headers: real ones mangled, word soup in a header block, noise. */
const headerInput = fc.oneof(
  fc.tuple(fc.constantFrom(...headerSeeds), fc.array(fc.tuple(fc.nat({ max: 600 }), fc.integer({ min: 0, max: 255 })), { maxLength: 8 }), fc.oneof(fc.constant(32768), fc.nat({ max: 33000 })))
    .map(([seed, flips, len]) => mangle(seed, flips, len)),
  wordLines(headerWords, { maxLines: 6 }).map((t) => {
    const b = Buffer.alloc(32768);
    b.write(`AMANDA: ${t}`.slice(0, 32768), "latin1");
    return b;
  }),
  bytes(300),
);

const amandaHeaderTarget: FuzzTarget<Buffer> = {
  name: "amanda header parseHeader",
  input: headerInput,
  show: hex,
  async open() {
    return {
      run(b) {
        try {
          parseHeader(b, "fuzz", { allowShort: b.length % 2 === 0 });
        } catch (e) {
          refusal(e, (x) => x instanceof HeaderError);
        }
      },
      close: async () => {},
    };
  },
};

/** A parser that takes any text and never throws (it skips what it cannot read). */
function textTarget(name: string, input: fc.Arbitrary<string>, parse: (text: string) => unknown): FuzzTarget<string> {
  return { name, input, show: hex, open: async () => ({ run: (t) => void parse(t), close: async () => {} }) };
}

const logWords = ["START", "SUCCESS", "STRANGE", "PART", "PARTPARTIAL", "DONE", "PARTIAL", "FAIL", "INFO", "taper", "dumper", "chunker", "planner", "driver", "date", "datestamp", "label", "tape", "LAB-01", "\"ST:s\"", "\"POOL:p\"", "web1", "'/home'", "\"/a b\"", "20240115", "20240115103000", "0", "1", "2", "-1", "1/3", "2/-1", "0a0b0c0d:12", "[sec", "0.1", "bytes", "kb", "kps", "orig-kb", "10", "]", "\\", "\"", "  "];
const tapelistWords = ["20240115103000", "20240115", "0", "LAB-01", "'LAB 02'", "reuse", "no-reuse", "BLOCKSIZE:32", "POOL:p", "STORAGE:", ":x", "#", "\"", "\\"];
const amadminWords = ["2024-01-15", "10:30:00", "web1", "/home", "\"/a b\"", "0", "1", "s", "p", "LAB-01", "HOLDING", "/hold/x", "1/1", "1/-1", "x/y", "OK", "PARTIAL", "FAILED", "\"", "\\"];

// ---------------------------------------------------------------------------------- layouts

const rearFixture = readFileSync(fileURLToPath(new URL("../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url)), "utf8").split("\n");
const rearWords = [...REAR_KEYWORDS, "level=container", "thin,pool", "prep", "type=luks1", "cipher=aes-xts-plain64", "key_size=512", "hash=sha256", "mode=cbc-essiv:sha256", "/dev/sda", "/dev/sda1", "/dev/vg", "/dev/mapper/vg-root", "/dev/md0", "lv", "root", "/", "/boot", "ext4", "xfs", "btrfs", "gpt", "msdos", "1048576", "4096", "10b", "x", "none", "boot,esp", "lvm", "uuid=1234", "label=a%20b", "level=raid1", "devices=/dev/sda1,/dev/sdb1", "size=1024", "%ZZ", "linear", "#"];

/** ReaR's disklayout.conf: the fixture's lines shuffled, cut and mixed with word soup. */
const rearInput = fc.oneof(
  wordLines(rearWords, { maxLines: 10, maxWords: 9 }),
  fc.tuple(fc.shuffledSubarray(rearFixture), fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 3 })).map(([lines, cuts]) => {
    const out = [...lines];
    for (const [at, len] of cuts) if (out.length) out[at % out.length] = out[at % out.length]!.split(/\s+/).slice(0, len % 6).join(" ");
    return out.join("\n");
  }),
);

const rearTarget: FuzzTarget<string> = {
  name: "rear import layoutFromRear",
  input: rearInput,
  show: hex,
  async open() {
    return {
      run(t) {
        try {
          layoutFromRear(t, "fuzz", "2024-01-15T10:30:00Z");
        } catch (e) {
          refusal(e, (x) => x.message.startsWith("disklayout.conf"));
        }
      },
      close: async () => {},
    };
  },
};

const layoutsDir = fileURLToPath(new URL("../fixtures/layouts/", import.meta.url));
const captureSeeds = readdirSync(layoutsDir)
  .filter((f) => f.endsWith(".capture.json"))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(layoutsDir, f), "utf8")) as unknown);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Every (container, key) of a document, depth first. */
function slots(doc: Json, out: Array<[Record<string, Json> | Json[], string | number]> = []) {
  if (doc && typeof doc === "object") {
    for (const k of Array.isArray(doc) ? doc.keys() : Object.keys(doc)) {
      out.push([doc as Record<string, Json>, k]);
      slots((doc as Record<string, Json>)[k] as Json, out);
    }
  }
  return out;
}

interface Edit {
  at: number;
  kind: "drop" | "value" | "text" | "cut";
  value: Json;
  text: string;
}

/** A capture with a few of its values dropped, replaced by any JSON, or (strings: tool output) edited. */
const captureInput = fc
  .tuple(
    fc.nat({ max: captureSeeds.length - 1 }),
    fc.array(fc.record({ at: fc.nat(), kind: fc.constantFrom("drop", "value", "text", "cut"), value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>, text: fc.string({ maxLength: 30 }) }), { minLength: 1, maxLength: 4 }),
  )
  .map(([seed, edits]: [number, Edit[]]) => {
    const doc = structuredClone(captureSeeds[seed]) as Json;
    for (const e of edits) {
      const all = slots(doc);
      if (all.length === 0) break;
      const [parent, key] = all[e.at % all.length]!;
      const p = parent as Record<string, Json>;
      const old = p[key];
      if (e.kind === "drop") {
        if (Array.isArray(parent)) parent.splice(Number(key), 1);
        else delete p[key];
      } else if (e.kind === "value" || typeof old !== "string") p[key] = e.value;
      else if (e.kind === "text") p[key] = `${old.slice(0, e.at % (old.length + 1))}${e.text}${old.slice(e.at % (old.length + 1))}`;
      else p[key] = old.slice(0, e.at % (old.length + 1));
    }
    return doc;
  });

const captureTarget: FuzzTarget<Json> = {
  name: "capture parser (parseCapture, layoutFromCapture, layoutProblem)",
  input: captureInput,
  show: (d) => hex(JSON.stringify(d)),
  async open() {
    return {
      run(doc) {
        try {
          layoutProblem(layoutFromCapture(parseCapture(doc)));
        } catch (e) {
          refusal(e);
        }
      },
      close: async () => {},
    };
  },
};

/** Every target, in the order the bench prints them. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- one list of targets of different input types
export const FUZZ_TARGETS: Array<FuzzTarget<any>> = [
  dhcpTarget("proxy"),
  dhcpTarget("full"),
  tftpServerTarget,
  tftpTransferTarget,
  amandaHeaderTarget,
  textTarget("amanda trace log parseTraceLog", wordLines(logWords, { maxLines: 12 }), (t) => parseTraceLog(t, "log.20240115103000.0")),
  textTarget("amanda tapelist parseTapelist", wordLines(tapelistWords), parseTapelist),
  textTarget("amadmin find parseAmadminFind", wordLines(amadminWords), parseAmadminFind),
  rearTarget,
  captureTarget,
];

export interface FuzzResult {
  target: string;
  inputs: number;
  seconds: number;
  perSecond: number;
  slowestMs: number;
  slowest: string;
  escapes: Array<{ error: string; input: string }>;
}

/**
 * Feeds `n` inputs (seeded: the same seed gives the same inputs) to one target, then checks
 * that its server still answers. Escapes are collected, not thrown: the first `keep` are kept.
 */
export async function runFuzz<I>(target: FuzzTarget<I>, n: number, opts: { seed?: number; keep?: number; chunk?: number } = {}): Promise<FuzzResult> {
  const seed = opts.seed ?? 16;
  const keep = opts.keep ?? 10;
  const chunk = opts.chunk ?? 5000;
  const escapes: FuzzResult["escapes"] = [];
  let current = "(between inputs)";
  let count = 0;
  const escape = (e: unknown, input = current) => {
    count++;
    if (escapes.length < keep) escapes.push({ error: e instanceof Error ? `${e.constructor.name}: ${e.message}` : String(e), input });
  };
  const onProcess = (e: unknown) => escape(e);
  process.on("uncaughtException", onProcess);
  process.on("unhandledRejection", onProcess);
  const session = await target.open();
  let slowestMs = 0;
  let slowest = "";
  const t0 = performance.now();
  try {
    for (let done = 0, k = 0; done < n; k++) {
      const inputs = fc.sample(target.input, { numRuns: Math.min(chunk, n - done), seed: seed + k });
      for (const i of inputs) {
        current = target.show(i);
        const s = performance.now();
        try {
          const r = session.run(i);
          if (r) await r;
        } catch (e) {
          escape(e);
        }
        const ms = performance.now() - s;
        if (ms > slowestMs) [slowestMs, slowest] = [ms, current];
      }
      done += inputs.length;
    }
    const seconds = (performance.now() - t0) / 1000;
    current = "(after the last input)";
    await sleep(50);
    try {
      await session.stillAnswers?.();
    } catch (e) {
      escape(new Error(`no longer answers: ${(e as Error).message}`), "(a good request after the run)");
    }
    if (count > escapes.length) escapes.push({ error: `${count - escapes.length} more escapes`, input: "" });
    return { target: target.name, inputs: n, seconds, perSecond: n / seconds, slowestMs, slowest, escapes };
  } finally {
    await session.close();
    process.off("uncaughtException", onProcess);
    process.off("unhandledRejection", onProcess);
  }
}
