import type { FastifyPluginAsync } from "fastify";
import type { ServerContext } from "../../context.ts";

export function healthRoutes(ctx: ServerContext): FastifyPluginAsync {
  return async (app) => {
    app.get(
      "/healthz",
      {
        schema: {
          summary: "Liveness: answers while the server runs",
          response: {
            200: {
              type: "object",
              required: ["status", "version"],
              properties: { status: { type: "string", const: "ok" }, version: { type: "string" } },
            },
          },
        },
      },
      async () => ({ status: "ok" as const, version: ctx.version }),
    );
    app.get("/metrics", { schema: { hide: true } }, async (_req, reply) => {
      reply.type(ctx.metrics.contentType);
      return ctx.metrics.metrics();
    });
  };
}
