import rateLimit from "@fastify/rate-limit";
import swagger from "@fastify/swagger";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from "fastify";
import type { ServerContext } from "../context.ts";
import { answerErrors } from "./errors.ts";
import { agentRoutes } from "./routes/agent.ts";
import { apiRoutes } from "./routes/api.ts";
import { bootRoutes } from "./routes/boot.ts";
import { amandaRoutes } from "./routes/amanda.ts";
import { bundleRoutes } from "./routes/bundles.ts";
import { catalogRoutes, dumpRoutes } from "./routes/catalog.ts";
import { captureRoutes, captureScriptRoutes } from "./routes/capture.ts";
import { healthRoutes } from "./routes/health.ts";
import { hostRoutes } from "./routes/hosts.ts";
import { webRoutes } from "./routes/web.ts";
import { registerJobMetrics, registerRecoverabilityMetrics } from "../jobs/job-metrics.ts";
import { registerBundleMetrics } from "../bundle/schedule.ts";
import { countResponseBytes } from "./response-bytes.ts";
import { AGENT_BASE, DUMPS_BASE } from "../plan/agent-api.ts";

/** Where the admin API lives. */
export const API_BASE = "/api/v1";

/** One line per request, at debug: a busy boot server would drown its info log otherwise. */
class RequestsAtDebug extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(err: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    req.log.debug(
      { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime), err },
      "request",
    );
  }
}

/**
 * Builds the fastify app with every route group registered. No socket: `serve` listens,
 * tests call `app.inject()`. Each route declares its JSON schema; together they are the
 * OpenAPI document at /api/v1/openapi.json.
 */
export async function buildApp(ctx: ServerContext): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: ctx.log.child({ svc: "http" }) as FastifyBaseLogger,
    logController: new RequestsAtDebug(),
    // Dump streams can be long: no overall request timeout.
    requestTimeout: 0,
    bodyLimit: 16 * 1024 * 1024,
    // Schemas made from zod carry defaults inside unions, which strict ajv refuses to compile;
    // zod applies those defaults itself when the handler parses the body.
    ajv: { customOptions: { strict: false } },
  });
  // Per client address; generous enough for agents' heartbeats and a busy admin page,
  // low enough that guessing tokens goes nowhere. Boot files and streams are few per client.
  await app.register(rateLimit, { max: 1200, timeWindow: "1 minute" });
  countResponseBytes(app, ctx.metrics);
  registerJobMetrics(ctx.metrics, ctx.store);
  registerRecoverabilityMetrics(ctx.metrics, ctx.store, { dataDir: ctx.config.dataDir, layoutMaxAgeDays: ctx.config.recoverability.layoutMaxAgeDays });
  registerBundleMetrics(ctx.metrics, ctx.config, ctx.store);
  answerErrors(app);
  await app.register(swagger, {
    // Shared schemas (the error body) appear in the document under their $id.
    refResolver: { buildLocalReference: (json, _base, _fragment, i) => (typeof json.$id === "string" ? json.$id : `def-${i}`) },
    openapi: {
      info: { title: "Lifeboat API", version: "1" },
      components: {
        securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      },
    },
  });
  // Each group is a plugin under its prefix; health, the page, boot files and capture.sh sit at the root (firmware and hosts ask for fixed paths).
  await app.register(healthRoutes(ctx));
  await app.register(webRoutes(ctx));
  await app.register(bootRoutes(ctx));
  await app.register(captureScriptRoutes());
  await app.register(agentRoutes(ctx), { prefix: AGENT_BASE });
  await app.register(apiRoutes(ctx), { prefix: API_BASE });
  await app.register(hostRoutes(ctx), { prefix: `${API_BASE}/hosts` });
  await app.register(captureRoutes(ctx), { prefix: `${API_BASE}/hosts` });
  await app.register(catalogRoutes(ctx), { prefix: `${API_BASE}/catalog` });
  await app.register(bundleRoutes(ctx), { prefix: `${API_BASE}/bundles` });
  await app.register(amandaRoutes(ctx), { prefix: `${API_BASE}/amanda` });
  await app.register(dumpRoutes(ctx, { authorizeStream: (token, dumpId) => ctx.jobs.mayStream(token, dumpId) }), { prefix: DUMPS_BASE });
  app.get(`${API_BASE}/openapi.json`, { schema: { hide: true } }, async () => app.swagger());
  return app;
}
