import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { NotFoundError, UserError } from "../../errors.ts";
import { amandaKeyBodySchema } from "../api-schemas.ts";
import { requireAdmin } from "../auth.ts";
import { errorResponses } from "../errors.ts";
import { jsonSchema } from "../schema.ts";

const security = [{ bearer: [] }];
const errors = errorResponses(400, 401, 404);
const configParams = { type: "object", required: ["config"], properties: { config: { type: "string" } } } as const;
/** What is shown of a key: which config, what kind, when; never the key. */
const keyInfo = {
  type: "object",
  required: ["amanda", "hasPassphrase", "hasSecretKey", "updatedAt"],
  properties: { amanda: { type: "string" }, hasPassphrase: { type: "boolean" }, hasSecretKey: { type: "boolean" }, updatedAt: { type: "string" } },
} as const;

/**
 * The keys of encrypted Amanda dumps (server/amanda/decrypt.ts), under /api/v1/amanda: one per
 * configured Amanda config, sealed in the store, set and removed by the admin (audited), never
 * shown; the dump stream uses them (audited as amanda.key.used).
 */
export function amandaRoutes(ctx: ServerContext): FastifyPluginAsync {
  const actor = (req: FastifyRequest) => `api:${req.ip}`;
  const known = (config: string) => {
    if (!ctx.config.amanda.some((a) => a.name === config))
      throw new NotFoundError(`no Amanda config ${config} in Lifeboat's config (${ctx.config.amanda.map((a) => a.name).join(", ") || "none configured"})`);
  };
  return async (app) => {
    app.addHook("preHandler", requireAdmin(ctx));
    app.get(
      "/keys",
      { schema: { summary: "Which Amanda configs Lifeboat holds a key for (never the key)", tags: ["amanda"], security, response: { 200: { type: "array", items: keyInfo }, ...errors } } },
      async () => ctx.store.amandaKeys.list(),
    );
    app.put(
      "/keys/:config",
      {
        schema: {
          summary: "Escrow the passphrase and/or OpenPGP secret key of an Amanda config's encrypted dumps (sealed, never shown again; replaces the one before)",
          tags: ["amanda"],
          security,
          params: configParams,
          body: jsonSchema(amandaKeyBodySchema),
          response: { 200: keyInfo, ...errors },
        },
      },
      async (req: FastifyRequest<{ Params: { config: string } }>) => {
        known(req.params.config);
        const body = amandaKeyBodySchema.safeParse(req.body);
        if (!body.success) throw new UserError(`amanda key ${req.params.config}: ${body.error.issues.map((i) => i.message).join("; ")}`);
        const info = await ctx.store.amandaKeys.put(req.params.config, { passphrase: body.data.passphrase ?? null, secretKey: body.data.secretKey ?? null });
        await ctx.store.audit.append({
          actor: actor(req),
          action: "amanda.key.set",
          target: `amanda:${req.params.config}`,
          detail: { hasPassphrase: info.hasPassphrase, hasSecretKey: info.hasSecretKey },
        });
        return info;
      },
    );
    app.delete(
      "/keys/:config",
      { schema: { summary: "Forget an Amanda config's key (its encrypted dumps can no longer be planned)", tags: ["amanda"], security, params: configParams, response: { 204: { type: "null" }, ...errors } } },
      async (req: FastifyRequest<{ Params: { config: string } }>, reply) => {
        if (!(await ctx.store.amandaKeys.remove(req.params.config))) throw new NotFoundError(`Lifeboat holds no key for Amanda config ${req.params.config}`);
        await ctx.store.audit.append({ actor: actor(req), action: "amanda.key.removed", target: `amanda:${req.params.config}`, detail: {} });
        return reply.code(204).send();
      },
    );
  };
}
