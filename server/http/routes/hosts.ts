import type { FastifyPluginAsync, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { NotFoundError } from "../../errors.ts";
import { hashToken, newToken } from "../../tokens.ts";
import { hostsRecoverability } from "../../jobs/recoverability.ts";
import { jobView, jobViewSchema } from "../../jobs/job-views.ts";
import { drillBodySchema, hostBodySchema, hostView, powerActionBodySchema, powerConfigBodySchema, splitPowerConfig } from "../api-schemas.ts";
import { requireAdmin } from "../auth.ts";
import { errorResponses } from "../errors.ts";
import { jsonSchema } from "../schema.ts";

const security = [{ bearer: [] }];
const nameParams = { type: "object", required: ["name"], properties: { name: { type: "string" } } } as const;
const errors = errorResponses(400, 401, 404);
/** A BMC that does not answer or refuses: 502, one line naming it. */
const powerErrors = errorResponses(400, 401, 404, 502);
const host = {
  type: "object",
  required: ["name", "macs", "smbiosUuid", "amandaConfig", "dleMap", "createdAt"],
  properties: {
    name: { type: "string" },
    macs: { type: "array", items: { type: "string" } },
    smbiosUuid: { type: ["string", "null"] },
    amandaConfig: { type: ["string", "null"] },
    dleMap: { type: "object", additionalProperties: { type: "string" } },
    createdAt: { type: "string" },
  },
} as const;
/** A host's power config as shown: the password never, only whether one is stored. */
const powerConfig = {
  type: "object",
  additionalProperties: true,
  required: ["host", "kind", "target", "hasPassword"],
  properties: { host: { type: "string" }, kind: { type: "string", enum: ["ipmi", "redfish", "wol"] }, target: { type: "string" }, hasPassword: { type: "boolean" } },
} as const;
const powerResult = {
  type: "object",
  required: ["host", "via", "target", "action", "state"],
  properties: { host: { type: "string" }, via: { type: "string" }, target: { type: "string" }, action: { type: "string" }, state: { type: "string", enum: ["on", "off", "unknown"] } },
} as const;
const withToken = { ...host, required: [...host.required, "token"], properties: { ...host.properties, token: { type: "string" } } } as const;

/**
 * Hosts: the list, and the admin's changes (add, remove, a new capture token), each audited.
 * Layouts are uploaded in routes/capture.ts. A capture token is shown once, in the answer.
 */
export function hostRoutes(ctx: ServerContext): FastifyPluginAsync {
  const admin = requireAdmin(ctx);
  const actor = (req: FastifyRequest) => `api:${req.ip}`;
  const recoverabilityOpts = { dataDir: ctx.config.dataDir, layoutMaxAgeDays: ctx.config.recoverability.layoutMaxAgeDays };

  return async (app) => {
    app.addHook("preHandler", admin);

    app.get(
      "",
      {
        schema: {
          summary: "List hosts with their MACs, last capture and recoverability: can each be recovered right now, and if not, why (reasons[])",
          tags: ["hosts"],
          security,
          response: { 200: { type: "array", items: { type: "object", additionalProperties: true } }, ...errors },
        },
      },
      async () =>
        Promise.all(
          (await hostsRecoverability(ctx.store, recoverabilityOpts)).map(async ({ host: h, recoverability }) => {
            const versions = await ctx.store.layouts.versions(h.name);
            return { ...hostView(h), layouts: versions.length, lastCapture: versions.at(-1)?.capturedAt ?? null, recoverability };
          }),
        ),
    );

    app.post(
      "",
      { schema: { summary: "Register a host; the answer holds its capture token (shown once)", tags: ["hosts"], security, body: jsonSchema(hostBodySchema), response: { 200: withToken, ...errors } } },
      async (req) => {
        const body = hostBodySchema.parse(req.body);
        const token = newToken();
        const h = await ctx.store.hosts.add({ ...body, tokenHash: hashToken(token) });
        await ctx.store.audit.append({ actor: actor(req), action: "host.add", target: `host:${h.name}`, detail: { macs: h.macs } });
        return { ...hostView(h), token };
      },
    );

    app.delete(
      "/:name",
      { schema: { summary: "Remove a host and its layouts", tags: ["hosts"], security, params: nameParams, response: { 200: { type: "object", required: ["removed"], properties: { removed: { type: "string" } } }, ...errors } } },
      async (req: FastifyRequest<{ Params: { name: string } }>) => {
        if (!(await ctx.store.hosts.remove(req.params.name))) throw new NotFoundError(`no host named ${req.params.name}`);
        await ctx.store.audit.append({ actor: actor(req), action: "host.rm", target: `host:${req.params.name}`, detail: null });
        return { removed: req.params.name };
      },
    );

    app.post(
      "/:name/token",
      {
        schema: {
          summary: "Issue a new capture token for a host (the old one stops working); shown once",
          tags: ["hosts"],
          security,
          params: nameParams,
          response: { 200: { type: "object", required: ["name", "token"], properties: { name: { type: "string" }, token: { type: "string" } } }, ...errors },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string } }>) => {
        const h = await ctx.store.hosts.get(req.params.name);
        if (!h) throw new NotFoundError(`no host named ${req.params.name}`);
        const token = newToken();
        await ctx.store.hosts.update(h.name, { tokenHash: hashToken(token) });
        await ctx.store.audit.append({ actor: actor(req), action: "host.token", target: `host:${h.name}`, detail: null });
        return { name: h.name, token };
      },
    );

    app.post(
      "/:name/drill",
      {
        schema: {
          summary:
            "Start a recovery drill of the host: a job of kind drill restores its chains through the rescue image and its plan into a throwaway QEMU machine on this server, then boots the restored disk; one at a time (409 while one runs). The answer is the drill's job; its drill-result event and the host's recoverability hold the result",
          tags: ["hosts", "jobs"],
          security,
          params: nameParams,
          body: jsonSchema(drillBodySchema),
          response: { 200: jobViewSchema, ...errorResponses(400, 401, 404, 409) },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string } }>) => {
        const body = drillBodySchema.parse(req.body ?? {});
        const job = await ctx.drills.start({ host: req.params.name, at: body.at, ready: body.ready, checks: body.checks, address: body.address, actor: actor(req) });
        await ctx.store.audit.append({ actor: actor(req), action: "host.drill", target: `host:${req.params.name}`, detail: { job: job.id, at: body.at ?? null } });
        return jobView(job);
      },
    );

    app.put(
      "/:name/power-config",
      {
        schema: {
          summary: "Set how Lifeboat powers a host: IPMI, Redfish (the BMC password is sealed in the store, never shown again) or Wake-on-LAN",
          tags: ["hosts", "power"],
          security,
          params: nameParams,
          body: jsonSchema(powerConfigBodySchema),
          response: { 200: powerConfig, ...errors },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string } }>) => {
        const { config, password } = splitPowerConfig(powerConfigBodySchema.parse(req.body));
        return ctx.power.configure(req.params.name, config, password, actor(req));
      },
    );

    app.get(
      "/:name/power-config",
      { schema: { summary: "How Lifeboat powers a host (never the password)", tags: ["hosts", "power"], security, params: nameParams, response: { 200: powerConfig, ...errors } } },
      async (req: FastifyRequest<{ Params: { name: string } }>) => ctx.power.view(req.params.name),
    );

    app.post(
      "/:name/power",
      {
        schema: {
          summary: "Power status, on, off or cycle through the host's power config (audited; on does nothing to a machine that is on)",
          tags: ["hosts", "power"],
          security,
          params: nameParams,
          body: jsonSchema(powerActionBodySchema),
          response: { 200: powerResult, ...powerErrors },
        },
      },
      async (req: FastifyRequest<{ Params: { name: string } }>) => ctx.power.act(req.params.name, powerActionBodySchema.parse(req.body).action, actor(req)),
    );
  };
}
