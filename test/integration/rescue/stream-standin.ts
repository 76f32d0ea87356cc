/**
 * STAND-IN for Lifeboat's dump stream route (GET /api/v1/dumps/:id/stream), used by the
 * rescue image tests to run hand-written plans without a catalog behind them: the real route
 * serves only dumps in a refreshed catalog, to a job whose served plan restores them, and
 * cannot be throttled or cut on purpose (the end-to-end test streams from the real route).
 * The bytes served are what the real route sends (amfetchdump -p -l of the Amanda lab, or
 * the sample system's tree), with the same Range semantics. It can cut a connection after N
 * bytes, throttle, hold streams back, and be stopped and restarted on the same port.
 */
import type { Socket } from "node:net";
import { Readable } from "node:stream";
import Fastify, { type FastifyInstance } from "fastify";

export interface StandInDump {
  id: string;
  bytes: Buffer;
}

export interface StreamStandIn {
  url: string;
  port: number;
  token: string;
  /** Requests seen: dump id and the Range header. */
  requests: Array<{ id: string; range: string | undefined }>;
  /** Bytes sent so far in the current request of a dump. */
  sentBytes(id: string): number;
  /** While set, every stream waits for it before its first byte (to look at a machine mid-restore). */
  hold: Promise<void> | null;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export async function streamStandIn(opts: {
  dumps: StandInDump[];
  /** The bearer token to accept; default: the handle's `token` (set it once the job has one). */
  token?: () => string;
  /** Cut the connection once, in the first request of each dump, after this many bytes. */
  dropOnceAfter?: number;
  /** Pause between 16 KiB chunks (to make a stream last long enough to kill the server mid-way). */
  chunkDelayMs?: number;
  host?: string;
  port?: number;
}): Promise<StreamStandIn> {
  const requests: StreamStandIn["requests"] = [];
  const sent = new Map<string, number>();
  const dropped = new Set<string>();
  let app: FastifyInstance | undefined;
  let port = opts.port ?? 0;
  const sockets = new Set<Socket>();

  const build = () => {
    // forceCloseConnections: a stop is a killed server; close() must not wait for any request.
    const a = Fastify({ logger: false, forceCloseConnections: true });
    a.server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    a.get("/api/v1/dumps/:id/stream", async (req, reply) => {
      const { id } = req.params as { id: string };
      requests.push({ id, range: req.headers.range });
      if (req.headers.authorization !== `Bearer ${opts.token ? opts.token() : handle.token}`) return reply.code(401).send({ error: "unauthorized" });
      const dump = opts.dumps.find((d) => d.id === id);
      if (!dump) return reply.code(404).send({ error: "not-found" });
      const total = dump.bytes.length;
      let start = 0;
      const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? "");
      if (m) {
        start = Number(m[1]);
        if (start > total) return reply.code(416).header("content-range", `bytes */${total}`).send();
        reply.code(206).header("content-range", `bytes ${start}-${total - 1}/${total}`);
      }
      const drop = opts.dropOnceAfter !== undefined && !dropped.has(id) && total > opts.dropOnceAfter;
      if (drop) dropped.add(id);
      sent.set(id, 0);
      const chunks = async function* () {
        if (handle.hold) await handle.hold;
        for (let off = start; off < total; off += 16384) {
          if (opts.chunkDelayMs) await new Promise((r) => setTimeout(r, opts.chunkDelayMs));
          const piece = dump.bytes.subarray(off, Math.min(off + 16384, total));
          if (drop && (sent.get(id) ?? 0) + piece.length > opts.dropOnceAfter!) {
            // A dropped connection in the middle of the body.
            yield piece.subarray(0, opts.dropOnceAfter! - (sent.get(id) ?? 0));
            await new Promise((r) => setTimeout(r, 100));
            req.raw.socket.destroy();
            return;
          }
          sent.set(id, (sent.get(id) ?? 0) + piece.length);
          yield piece;
        }
      };
      reply.header("accept-ranges", "bytes").header("content-length", String(total - start)).type("application/octet-stream");
      return reply.send(Readable.from(chunks()));
    });
    return a;
  };

  const handle: StreamStandIn = {
    url: "",
    port,
    token: "",
    requests,
    sentBytes: (id) => sent.get(id) ?? 0,
    hold: null,
    start: async () => {
      app = build();
      await app.listen({ host: opts.host ?? "127.0.0.1", port });
      port = (app.server.address() as { port: number }).port;
      handle.port = port;
      handle.url = `http://${opts.host ?? "127.0.0.1"}:${port}`;
    },
    stop: async () => {
      // Like a killed server: open connections die with it.
      for (const s of sockets) s.destroy();
      await app?.close();
      app = undefined;
    },
  };
  await handle.start();
  return handle;
}
