import { Transform } from "node:stream";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import { selectChain } from "../../amanda/chain.ts";
import { type DumpUserAccess, defaultDumpUserAccess } from "../../amanda/dumpuser.ts";
import { dumpName } from "../../amanda/model.ts";
import { refreshCatalogs, setupOf } from "../../amanda/refresh.ts";
import { counter } from "../../metrics.ts";
import type { AmandaConfig } from "../../config/schema.ts";
import { CUSTOM_DECOMPRESSORS, DumpStreamError, decryptedCrc, openDumpStream, sharedDumpReads } from "../../amanda/stream.ts";
import { type AmandaKey, type Decryption, decryptionFor, keyHolding } from "../../amanda/decrypt.ts";
import { chainView, dumpSummary, dumpSummarySchema } from "../../amanda/dump-views.ts";
import type { ServerContext } from "../../context.ts";
import { NotFoundError, errorMessage } from "../../errors.ts";
import { requireAdmin, requireToken } from "../auth.ts";
import { errorResponses } from "../errors.ts";
import { parseRange } from "./boot.ts";

export interface CatalogRouteOptions {
  /**
   * Who may stream a dump besides the admin: the jobs code passes a check of the job
   * token of a job that needs this dump. Default: admin token only.
   */
  authorizeStream?: (token: string, dumpId: string) => Promise<boolean>;
}

const security = [{ bearer: [] }];
const errors = errorResponses(400, 401, 404, 409, 422);
const idParams = { type: "object", required: ["id"], properties: { id: { type: "string" } } } as const;

function dumpUserOf(a: AmandaConfig): DumpUserAccess {
  try {
    return setupOf(a);
  } catch {
    return defaultDumpUserAccess(a.helperSocket);
  }
}

/** The catalog API, under /api/v1/catalog: listings, restore chains, refresh (admin). */
export function catalogRoutes(ctx: ServerContext): FastifyPluginAsync {
  const admin = requireAdmin(ctx);

  return async (app) => {
    app.get(
      "/dumps",
      {
        preHandler: admin,
        schema: {
          summary: "List the dumps in Lifeboat's copy of the Amanda catalog",
          tags: ["catalog"],
          security,
          querystring: { type: "object", properties: { host: { type: "string" }, disk: { type: "string" }, amanda: { type: "string" } } },
          response: { 200: { type: "array", items: dumpSummarySchema }, ...errors },
        },
      },
      async (req: FastifyRequest<{ Querystring: { host?: string; disk?: string; amanda?: string } }>) =>
        (await ctx.store.catalog.list(req.query)).map(dumpSummary),
    );

    app.get(
      "/chain",
      {
        preHandler: admin,
        schema: {
          summary: "The restore chain of a host and disk at a point in time (default: newest)",
          tags: ["catalog"],
          security,
          querystring: {
            type: "object",
            required: ["host", "disk"],
            properties: { host: { type: "string" }, disk: { type: "string" }, at: { type: "string", description: "YYYYMMDD[HHMMSS]" } },
          },
          response: {
            200: {
              type: "object",
              required: ["host", "disk", "at", "dumps"],
              properties: { host: { type: "string" }, disk: { type: "string" }, at: { type: ["string", "null"] }, dumps: { type: "array", items: dumpSummarySchema } },
            },
            ...errors,
          },
        },
      },
      async (req: FastifyRequest<{ Querystring: { host: string; disk: string; at?: string } }>) => {
        const { host, disk, at } = req.query;
        // A missing or broken chain is a ChainError: 422 (http/errors.ts).
        return chainView(selectChain(await ctx.store.catalog.list({ host, disk }), host, disk, at));
      },
    );

    app.post(
      "/refresh",
      {
        preHandler: admin,
        schema: {
          summary: "Re-read the Amanda configs (logs, media, amadmin find) into Lifeboat's catalog",
          tags: ["catalog"],
          security,
          body: { type: ["object", "null"], properties: { amanda: { type: "string" } } },
          response: {
            200: {
              type: "array",
              items: {
                type: "object",
                required: ["amanda", "dumps", "warnings", "error"],
                properties: { amanda: { type: "string" }, dumps: { type: "integer" }, warnings: { type: "array", items: { type: "string" } }, error: { type: ["string", "null"] } },
              },
            },
            ...errors,
          },
        },
      },
      async (req: FastifyRequest<{ Body: { amanda?: string } | null }>) => {
        const only = req.body?.amanda;
        if (only && !ctx.config.amanda.some((a) => a.name === only)) throw new NotFoundError(`no Amanda config named ${only} in the Lifeboat config`);
        return refreshCatalogs(ctx.config.amanda, ctx.store, { only, log: ctx.log.child({ svc: "catalog" }) });
      },
    );

  };
}

/**
 * The dumps, under DUMPS_BASE: one dump's record (admin) and the stream the rescue agent
 * restores from (raw or decompressed, Range, HEAD; the Amanda CRC-32C each stream was
 * checked against logged and recorded in the audit log).
 */
export function dumpRoutes(ctx: ServerContext, opts: CatalogRouteOptions = {}): FastifyPluginAsync {
  const admin = requireAdmin(ctx);
  const streamBytes = counter(ctx.metrics, "lifeboat_dump_stream_bytes_total", "Bytes of dump data sent");
  const streams = counter(ctx.metrics, "lifeboat_dump_streams_total", "Dump streams by result", ["result"]);
  // Clones restoring the same profile at once read each vtape part once.
  const shared = sharedDumpReads();

  return async (app) => {
    app.get(
      "/:id",
      {
        preHandler: admin,
        schema: { summary: "One dump's full catalog record", tags: ["catalog"], security, params: idParams, response: { 200: { type: "object", additionalProperties: true }, ...errors } },
      },
      async (req: FastifyRequest<{ Params: { id: string } }>) => {
        const d = await ctx.store.catalog.get(req.params.id);
        if (!d) throw new NotFoundError(`no dump ${req.params.id} in the catalog`);
        return d;
      },
    );

    const streamAuth = requireToken<FastifyRequest<{ Params: { id: string } }>>(ctx, {
      admin: true,
      job: async (req, token) => (opts.authorizeStream ? opts.authorizeStream(token, req.params.id) : false),
      message: "admin or job bearer token required",
    });

    app.route({
      method: ["GET", "HEAD"],
      url: "/:id/stream",
      preHandler: streamAuth,
      schema: {
        summary: "The data of one dump: as stored (default) or decompressed (?decompress=1); Range and HEAD on raw streams",
        description:
          `A custom compressor named in a dump's header is run only when it is one of ${CUSTOM_DECOMPRESSORS.join(", ")} (bare or in /usr/bin or /bin); any other is refused with 422 and the raw stream still works.`,
        tags: ["catalog"],
        security,
        params: idParams,
        querystring: { type: "object", properties: { decompress: { type: "string", enum: ["0", "1", "true", "false"] } } },
        produces: ["application/octet-stream"],
      },
      handler: async (req: FastifyRequest<{ Params: { id: string }; Querystring: { decompress?: string } }>, reply) => {
        const d = await ctx.store.catalog.get(req.params.id);
        if (!d) throw new NotFoundError(`no dump ${req.params.id} in the catalog`);
        const decompress = req.query.decompress === "1" || req.query.decompress === "true";
        const amanda = ctx.config.amanda.find((a) => a.name === d.amanda);
        const log = req.log.child({ dump: d.id, name: dumpName(d) });
        const refuse = (err: DumpStreamError) => {
          log.warn({ err: err.message }, "dump stream refused");
          streams.inc({ result: "refused" });
          // Answered by the error handler: err.status, "unavailable".
          return reply.send(err);
        };
        // An encrypted dump: the key of its Amanda config, when Lifeboat holds one that decrypts it.
        let key: AmandaKey | undefined;
        let decryption: Decryption | null = null;
        if (d.encrypted) {
          key = await ctx.store.amandaKeys.get(d.amanda);
          const dec = decryptionFor(d, keyHolding(key ? [{ amanda: d.amanda, hasPassphrase: key.passphrase !== null, hasSecretKey: key.secretKey !== null }] : []));
          if (dec && "refused" in dec) return refuse(new DumpStreamError(dec.refused, 422));
          decryption = dec;
        }
        // Range only where bytes can be addressed: raw and file-backed, or decrypted (read from the start and skipped to the range) when Amanda recorded its size.
        const rangeable = !decompress && (decryption ? decryptedCrc(d) !== null : d.location.kind !== "tape");
        let range: [number, number] | undefined;
        if (rangeable && decryption && req.headers.range !== undefined) {
          const total = decryptedCrc(d)!.size;
          range = parseRange(req.headers.range, total);
          if (!range) return reply.code(416).header("content-range", `bytes */${total}`).send();
        } else if (rangeable && req.headers.range !== undefined) {
          // The size on disk decides (a 2.x log only knows kilobytes): open once to learn it, read nothing.
          let total: number | null;
          try {
            const probe = openDumpStream(d);
            total = probe.totalSize;
            probe.stream.destroy();
          } catch (err) {
            if (err instanceof DumpStreamError) return refuse(err);
            throw err;
          }
          if (total !== null) {
            range = parseRange(req.headers.range, total);
            if (!range) return reply.code(416).header("content-range", `bytes */${total}`).send();
          }
        }
        if (req.method === "HEAD" && d.location.kind === "tape") {
          // Do not start amfetchdump (and a tape load) just to answer HEAD.
          const len = decompress ? d.crc.native?.size : d.sizeBytes;
          if (len != null) reply.header("content-length", String(len));
          return reply.type("application/octet-stream").send();
        }
        let s;
        try {
          s = openDumpStream(d, { decompress, start: range?.[0], end: range?.[1], dumpUser: d.location.kind === "tape" && amanda ? dumpUserOf(amanda) : undefined, decrypt: key, shared });
        } catch (err) {
          if (err instanceof DumpStreamError) return refuse(err);
          throw err;
        }
        reply.type("application/octet-stream");
        reply.header("x-lifeboat-dump", d.id);
        reply.header("x-lifeboat-compression", decompress ? "none" : d.compression);
        if (s.seekable) reply.header("accept-ranges", "bytes");
        if (range) reply.code(206).header("content-range", `bytes ${range[0]}-${range[1]}/${s.totalSize}`);
        if (s.length !== null) reply.header("content-length", String(s.length));
        if (req.method === "HEAD") {
          s.stream.destroy();
          return reply.send();
        }
        if (decryption)
          // The escrowed key is used: audited (which config's key, for which dump and who asked), never the key itself.
          await ctx.store.audit.append({
            actor: `stream:${req.ip}`,
            action: "amanda.key.used",
            target: `amanda:${decryption.amanda}`,
            detail: { dump: d.id, name: dumpName(d), side: decryption.side, program: decryption.program },
          });
        let bytes = 0;
        const started = Date.now();
        const tap = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            bytes += chunk.length;
            cb(null, chunk);
          },
        });
        const done = (error: string | null) => {
          // The stream's checksum is the CRC-32C Amanda recorded, checked on every byte sent (stream.ts);
          // a second hash per stream would cost a core for what that check already proves.
          const detail = {
            crc32c: s.checked && !error ? `${s.checked.crc}:${s.checked.size}` : null,
            bytes,
            range: range ?? null,
            decompress,
            decryptedWith: decryption?.amanda ?? null,
            via: s.via,
            ms: Date.now() - started,
            error,
          };
          streamBytes.inc(bytes);
          streams.inc({ result: error ? "failed" : "ok" });
          if (error) log.error(detail, "dump stream failed");
          else log.info(detail, "dump stream sent");
          void ctx.store.audit
            .append({ actor: `stream:${req.ip}`, action: error ? "dump.stream.failed" : "dump.stream", target: `dump:${d.id}`, detail })
            .catch((e: unknown) => log.error({ err: errorMessage(e) }, "cannot record the stream in the audit log"));
        };
        let finished = false;
        s.stream.on("error", (err) => {
          if (finished) return;
          finished = true;
          tap.destroy(err);
          done(err.message);
        });
        tap.on("end", () => {
          if (finished) return;
          finished = true;
          done(null);
        });
        reply.raw.on("close", () => {
          if (!finished) {
            finished = true;
            s.stream.destroy();
            done("client closed the connection");
          }
        });
        return reply.send(s.stream.pipe(tap));
      },
    });
  };
}
