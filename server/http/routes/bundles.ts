import type { Readable } from "node:stream";
import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { bundlesView, bundlesViewSchema, receiveBundle } from "../../bundle/schedule.ts";
import { requireAdmin } from "../auth.ts";
import { errorResponses } from "../errors.ts";

const security = [{ bearer: [] }];
const str = { type: "string" } as const;

/**
 * Recovery bundles (server/bundle/schedule.ts): each target's last success and failure and
 * the bundles other servers pushed here (GET), and the push itself (PUT, a raw body streamed
 * to the data dir under bundle.maxReceiveBytes). The admin token guards both.
 */
export function bundleRoutes(ctx: ServerContext): FastifyPluginAsync {
  return async (app) => {
    app.addHook("preHandler", requireAdmin(ctx));
    // The body stays a stream: a bundle may be far larger than the JSON body limit.
    app.addContentTypeParser("application/octet-stream", (_req, payload, done) => done(null, payload));
    app.get("/", { schema: { summary: "Recovery bundles: each target's last success and failure, and bundles received", tags: ["bundles"], security, response: { 200: bundlesViewSchema, ...errorResponses(401) } } }, async () =>
      bundlesView(ctx.config, ctx.store),
    );
    app.put(
      "/:file",
      {
        bodyLimit: ctx.config.bundle.maxReceiveBytes,
        schema: {
          summary: "Keep a recovery bundle another Lifeboat server pushes (application/octet-stream; damaged ones refused, the newest bundle.keep per server kept)",
          tags: ["bundles"],
          security,
          params: { type: "object", required: ["file"], properties: { file: str } },
          response: { 200: { type: "object", required: ["file", "bytes"], properties: { file: str, bytes: { type: "integer" } } }, ...errorResponses(400, 401, 413) },
        },
      },
      async (req: FastifyRequest<{ Params: { file: string } }>) => {
        const kept = await receiveBundle(ctx.config, req.params.file, req.body as Readable);
        await ctx.store.audit.append({ actor: `api:${req.ip}`, action: "bundle.received", target: `bundle:${kept.file}`, detail: { bytes: kept.bytes } });
        return kept;
      },
    );
  };
}
