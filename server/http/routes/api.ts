import { planForPeople } from "../../jobs/job-plan.ts";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { NotFoundError, UserError } from "../../errors.ts";
import { normalizeMac } from "../../mac.ts";
import { type ArmRequest, cloneHostname } from "../../jobs/job-service.ts";
import { jobView, jobViewSchema } from "../../jobs/job-views.ts";
import { serverView } from "../../jobs/servers.ts";
import { ACTIVE_STATES } from "../../jobs/job-state.ts";
import { ONE_TIME_CODE_DEFAULT_HOURS, ONE_TIME_CODE_MAX_HOURS } from "../../jobs/boot-policy.ts";
import type { JobRecord, JobState } from "../../store/types.ts";
import { type StoredMapping, resolveMapping } from "../../plan/disks.ts";
import {
  armBodySchema,
  assignBodySchema,
  cloneWindowBodySchema,
  mapBodySchema,
  profileBodySchema,
} from "../api-schemas.ts";
import { requireAdmin } from "../auth.ts";
import { HttpError, errorResponses } from "../errors.ts";
import { jsonSchema } from "../schema.ts";

const security = [{ bearer: [] }];
const nameParams = { type: "object", required: ["name"], properties: { name: { type: "string" } } } as const;
const idParams = { type: "object", required: ["id"], properties: { id: { type: "string" } } } as const;
const errors = errorResponses(400, 401, 404, 409);
const anyObject = { type: "object", additionalProperties: true } as const;
const str = { type: "string" } as const;
const nullableStr = { type: ["string", "null"] } as const;
/** Response shapes the OpenAPI document shows (additional fields pass: the store may grow). */
const profile = {
  type: "object",
  additionalProperties: true,
  required: ["name", "host", "layoutVersion", "at", "options", "createdAt"],
  properties: { name: str, host: str, layoutVersion: { type: ["integer", "null"] }, at: nullableStr, options: anyObject, createdAt: str },
} as const;
const assignment = { type: "object", additionalProperties: true, required: ["mac", "profile"], properties: { mac: str, profile: str, createdAt: str } } as const;
const removed = { type: "object", required: ["removed"], properties: { removed: str } } as const;
const auditEntry = {
  type: "object",
  additionalProperties: true,
  required: ["id", "at", "actor", "action", "target"],
  properties: { id: { type: "integer" }, at: str, actor: str, action: str, target: str, detail: {} },
} as const;
const jobEvent = { type: "object", additionalProperties: true, required: ["id", "job", "at", "type"], properties: { id: { type: "integer" }, job: str, at: str, type: str, data: {} } } as const;
/** The clone window (PUT answers it; GET and DELETE add `open`, alone when it is closed). */
const cloneWindow = {
  type: "object",
  additionalProperties: true,
  properties: { open: { type: "boolean" }, profile: str, until: str, hostnamePattern: nullableStr, openedBy: str, only: { type: "array", items: str }, armed: { type: "integer" } },
} as const;

/**
 * The admin API: profiles, assignments, jobs (arm, cancel, map, plan, events,
 * live stream) and the audit log. Every route needs the admin bearer token, in the
 * Authorization header only (a token in a URL ends up in logs).
 */
export function apiRoutes(ctx: ServerContext): FastifyPluginAsync {
  const admin = requireAdmin(ctx);
  const actor = (req: FastifyRequest) => `api:${req.ip}`;
  const clonePattern = async (body: ReturnType<typeof armBodySchema.parse>) =>
    body.hostnamePattern ?? (body.profile ? (await ctx.store.profiles.get(body.profile))?.options.hostnamePattern : undefined);

  return async (app) => {
    app.addHook("preHandler", admin);

    // Profiles.
    app.get("/profiles", { schema: { summary: "List profiles", tags: ["profiles"], security, response: { 200: { type: "array", items: profile }, ...errors } } }, async () => ctx.store.profiles.list());
    app.get("/profiles/:name", { schema: { summary: "One profile", tags: ["profiles"], security, params: nameParams, response: { 200: profile, ...errors } } }, async (req: FastifyRequest<{ Params: { name: string } }>) => {
      const p = await ctx.store.profiles.get(req.params.name);
      if (!p) throw new NotFoundError(`no profile named ${req.params.name}`);
      return p;
    });
    app.put(
      "/profiles/:name",
      { schema: { summary: "Create or change a profile", tags: ["profiles"], security, params: nameParams, body: jsonSchema(profileBodySchema), response: { 200: profile, ...errors } } },
      async (req: FastifyRequest<{ Params: { name: string } }>) => {
        const body = profileBodySchema.parse(req.body);
        if (!(await ctx.store.hosts.get(body.host))) throw new NotFoundError(`no host named ${body.host}`);
        let mapping: StoredMapping | undefined;
        try {
          mapping = body.options.mapping && resolveMapping(body.options.mapping, null);
        } catch (err) {
          throw new UserError(`profile ${req.params.name}: mapping ${(err as Error).message}`);
        }
        const p = await ctx.store.profiles.put({ name: req.params.name, ...body, options: { ...body.options, mapping } });
        await ctx.store.audit.append({ actor: actor(req), action: "profile.put", target: `profile:${p.name}`, detail: body });
        return p;
      },
    );
    app.delete("/profiles/:name", { schema: { summary: "Remove a profile", tags: ["profiles"], security, params: nameParams, response: { 200: removed, ...errors } } }, async (req: FastifyRequest<{ Params: { name: string } }>) => {
      if (!(await ctx.store.profiles.remove(req.params.name))) throw new NotFoundError(`no profile named ${req.params.name}`);
      await ctx.store.audit.append({ actor: actor(req), action: "profile.rm", target: `profile:${req.params.name}`, detail: null });
      return { removed: req.params.name };
    });

    // Assignments: MAC → profile.
    app.get("/assignments", { schema: { summary: "List MAC → profile assignments", tags: ["profiles"], security, response: { 200: { type: "array", items: assignment }, ...errors } } }, async () => ctx.store.assignments.list());
    app.post("/assignments", { schema: { summary: "Assign a profile to a MAC", tags: ["profiles"], security, body: jsonSchema(assignBodySchema), response: { 200: assignment, ...errors } } }, async (req) => {
      const body = assignBodySchema.parse(req.body);
      await ctx.store.assignments.set(body.mac, body.profile);
      await ctx.store.audit.append({ actor: actor(req), action: "assign", target: `mac:${body.mac}`, detail: { profile: body.profile } });
      return body;
    });
    app.delete("/assignments/:mac", { schema: { summary: "Remove a MAC's assignment", tags: ["profiles"], security, params: { type: "object", properties: { mac: { type: "string" } } }, response: { 200: removed, ...errors } } }, async (req: FastifyRequest<{ Params: { mac: string } }>) => {
      const m = normalizeMac(req.params.mac);
      if (!(await ctx.store.assignments.remove(m))) throw new NotFoundError(`${m} has no assignment`);
      await ctx.store.audit.append({ actor: actor(req), action: "unassign", target: `mac:${m}`, detail: null });
      return { removed: m };
    });

    // The servers of this store (one, or several on PostgreSQL), as they last said they were alive.
    app.get(
      "/servers",
      {
        schema: {
          summary: "The servers of this store: name, URL, Amanda configs, last beat, alive",
          tags: ["servers"],
          security,
          response: {
            200: {
              type: "array",
              items: {
                type: "object",
                properties: { name: { type: "string" }, url: { type: "string" }, amanda: { type: "array", items: { type: "string" } }, startedAt: { type: "string" }, lastSeenAt: { type: "string" }, alive: { type: "boolean" } },
              },
            },
            ...errors,
          },
        },
      },
      async () => (await ctx.store.servers.list()).map((s) => serverView(s, Date.now())),
    );

    // Jobs.
    app.get(
      "/jobs",
      { schema: { summary: "List jobs (newest first)", tags: ["jobs"], security, querystring: { type: "object", properties: { state: { type: "string" }, mac: { type: "string" }, active: { type: "boolean" } } }, response: { 200: { type: "array", items: jobViewSchema }, ...errors } } },
      async (req: FastifyRequest<{ Querystring: { state?: string; mac?: string; active?: boolean } }>) => {
        const q = req.query;
        const state = q.active ? [...ACTIVE_STATES] : (q.state?.split(",") as JobState[] | undefined);
        return (await ctx.store.jobs.list({ state, mac: q.mac ? normalizeMac(q.mac) : undefined })).map(jobView);
      },
    );
    app.post(
      "/jobs",
      {
        schema: {
          summary:
            "Arm a recovery or clone job for one MAC, or clones for many; with power, also power the machine (502: its BMC failed, the job stays armed), or the many in waves of power.waveSize (answered once the first wave was powered)",
          tags: ["jobs"],
          security,
          body: jsonSchema(armBodySchema),
          response: { 200: { type: "array", items: jobViewSchema }, ...errors, ...errorResponses(502) },
        },
      },
      async (req) => {
        const body = armBodySchema.parse(req.body);
        const macs = (body.macs ?? [body.mac!]).map(normalizeMac);
        if (new Set(macs).size !== macs.length) throw new UserError("the same MAC is listed twice", 2);
        // Check every MAC first, so a batch is armed whole or not at all.
        for (const m of macs) {
          const busy = await ctx.store.jobs.activeForMac(m);
          if (busy) throw new UserError(`${m} already has an active job (${busy.id}, ${busy.state}): one per machine`, 2);
        }
        if (macs.length > 1 && !body.profile) throw new UserError("arming many MACs needs a profile", 2);
        const pattern = await clonePattern(body);
        const request = (m: string, i: number): ArmRequest => ({
          mac: m,
          kind: body.kind,
          profile: body.profile,
          at: body.at,
          expiresHours: body.expiresHours,
          hostname: body.kind === "clone" && pattern ? cloneHostname(pattern, i + 1, m) : undefined,
          cloneNumber: body.kind === "clone" ? i + 1 : undefined,
          options: body.options,
          trustHttpBoot: body.trustHttpBoot,
          actor: actor(req),
        });
        if (body.power && macs.length === 1) {
          const { job, power } = await ctx.power.armWithPower(request(macs[0]!, 0), body.power.force);
          return [{ ...jobView(job), power }];
        }
        if (body.power) return (await ctx.power.armWave(macs.map(request), body.power.force, actor(req))).map(jobView);
        const armed: JobRecord[] = [];
        for (const [i, m] of macs.entries()) armed.push(await ctx.jobs.arm(request(m, i)));
        return armed.map(jobView);
      },
    );
    app.post(
      "/plan-preview",
      {
        schema: {
          summary: "The plan a job would get, before arming it (same body as arming; for many MACs, the first one's plan)",
          tags: ["jobs"],
          security,
          body: jsonSchema(armBodySchema),
          response: { 200: { type: "string" }, ...errors },
        },
      },
      async (req, reply) => {
        const body = armBodySchema.parse(req.body);
        const m = normalizeMac(body.macs?.[0] ?? body.mac!);
        const pattern = await clonePattern(body);
        const hostname = body.kind === "clone" && pattern ? cloneHostname(pattern, 1, m) : undefined;
        const plan = await ctx.jobs.preview({ mac: m, kind: body.kind, profile: body.profile, at: body.at, hostname, cloneNumber: body.kind === "clone" ? 1 : undefined, options: body.options, actor: actor(req) });
        if (!plan.ok) throw new HttpError(409, "plan-refused", plan.reason);
        return reply.type("text/x-shellscript").send(planForPeople(plan));
      },
    );
    app.get("/jobs/:id", { schema: { summary: "One job", tags: ["jobs"], security, params: idParams, response: { 200: jobViewSchema, ...errors } } }, async (req: FastifyRequest<{ Params: { id: string } }>) =>
      jobView(await ctx.jobs.get(req.params.id)),
    );
    app.post("/jobs/:id/cancel", { schema: { summary: "Cancel an active job", tags: ["jobs"], security, params: idParams, response: { 200: jobViewSchema, ...errors } } }, async (req: FastifyRequest<{ Params: { id: string } }>) =>
      jobView(await ctx.jobs.cancel(req.params.id, actor(req))),
    );
    app.post(
      "/jobs/:id/code",
      {
        schema: {
          summary: "A one-time code for the job's machine booting from an ISO or USB stick (typed on its console, or carried by `image iso --host`); a new one ends the previous",
          tags: ["jobs"],
          security,
          params: idParams,
          body: { type: "object", additionalProperties: false, properties: { validHours: { type: "number", exclusiveMinimum: 0, maximum: ONE_TIME_CODE_MAX_HOURS } } },
          response: { 200: { type: "object", required: ["code", "job", "expiresAt"], properties: { code: str, job: str, expiresAt: str } }, ...errors },
        },
      },
      async (req: FastifyRequest<{ Params: { id: string }; Body: { validHours?: number } | undefined }>) =>
        ctx.boot.issueCode(req.params.id, req.body?.validHours ?? ONE_TIME_CODE_DEFAULT_HOURS, actor(req)),
    );
    app.post(
      "/jobs/:id/map",
      { schema: { summary: "Approve an explicit disk mapping (captured disk → target disk)", tags: ["jobs"], security, params: idParams, body: jsonSchema(mapBodySchema), response: { 200: jobViewSchema, ...errors } } },
      async (req: FastifyRequest<{ Params: { id: string } }>) => jobView(await ctx.jobs.map(req.params.id, mapBodySchema.parse(req.body).mapping, actor(req))),
    );
    app.put(
      "/jobs/:id/keys/:uuid",
      {
        schema: {
          summary: "Supply the LUKS passphrase for a captured container (needed before a plan with LUKS)",
          tags: ["jobs"],
          security,
          params: { type: "object", required: ["id", "uuid"], properties: { id: { type: "string" }, uuid: { type: "string" } } },
          body: { type: "object", required: ["passphrase"], properties: { passphrase: { type: "string", minLength: 1 } } },
          response: { 200: anyObject, ...errors },
        },
      },
      async (req: FastifyRequest<{ Params: { id: string; uuid: string }; Body: { passphrase: string } }>) => {
        await ctx.jobs.setKey(req.params.id, req.params.uuid, req.body.passphrase, actor(req));
        return { job: req.params.id, uuid: req.params.uuid };
      },
    );
    app.get(
      "/jobs/:id/plan",
      { schema: { summary: "The job's plan script (the one served to the agent, or a dry run against the disks it reported), after its network as comments: the rescue network and the NIC mapping", tags: ["jobs"], security, params: idParams, response: { 200: { type: "string" }, ...errors } } },
      async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
        const job = await ctx.jobs.get(req.params.id);
        if (job.plan) return reply.type("text/x-shellscript").send(planForPeople(job.plan));
        const dry = await ctx.jobs.dryRun(job.id);
        if (!dry.ok) throw new HttpError(409, "plan-refused", dry.reason);
        return reply.type("text/x-shellscript").send(planForPeople(dry));
      },
    );
    app.get(
      "/jobs/:id/events",
      { schema: { summary: "The job's history", tags: ["jobs"], security, params: idParams, querystring: { type: "object", properties: { after: { type: "integer" } } }, response: { 200: { type: "array", items: jobEvent }, ...errors } } },
      async (req: FastifyRequest<{ Params: { id: string }; Querystring: { after?: number } }>) => {
        await ctx.jobs.get(req.params.id);
        return ctx.jobs.events(req.params.id, req.query.after);
      },
    );
    const live = (filter: (j: JobRecord) => boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
      // Now, not with the first job: a browser's EventSource reports "open" only once headers arrive.
      res.flushHeaders();
      const send = (j: JobRecord, ev?: unknown) => res.write(`event: job\ndata: ${JSON.stringify({ job: jobView(j), event: ev ?? null })}\n\n`);
      const onJob = (j: JobRecord, ev?: unknown) => {
        if (filter(j)) send(j, ev);
      };
      for (const j of await ctx.store.jobs.list({ limit: 200 })) if (filter(j)) send(j);
      ctx.jobs.changes.on("job", onJob);
      const ping = setInterval(() => res.write(": ping\n\n"), 15_000);
      req.raw.on("close", () => {
        clearInterval(ping);
        ctx.jobs.changes.off("job", onJob);
      });
    };
    const liveSchema = (summary: string, params?: object) => ({ schema: { summary, tags: ["jobs"], security, ...(params ? { params } : {}) } });
    app.get("/live", liveSchema("Server-sent events: every job change"), live(() => true));
    app.get("/jobs/:id/live", liveSchema("Server-sent events: one job's changes", idParams), async (req: FastifyRequest<{ Params: { id: string } }>, reply) => {
      await ctx.jobs.get(req.params.id);
      return live((j) => j.id === req.params.id)(req, reply);
    });

    // The clone window: any unknown machine (under its MAC limits, if given) that network-boots while it is open becomes a clone.
    app.put(
      "/clone-window",
      { schema: { summary: "Open the clone window: unknown machines that network-boot in the next N minutes become clones of a profile", tags: ["jobs"], security, body: jsonSchema(cloneWindowBodySchema), response: { 200: cloneWindow, ...errors } } },
      async (req) => {
        const body = cloneWindowBodySchema.parse(req.body);
        return ctx.jobs.openCloneWindow(body, actor(req));
      },
    );
    app.get("/clone-window", { schema: { summary: "The open clone window, or {open: false}", tags: ["jobs"], security, response: { 200: cloneWindow, ...errors } } }, async () => {
      const w = await ctx.jobs.cloneWindow();
      return w ? { open: true, ...w } : { open: false };
    });
    app.delete("/clone-window", { schema: { summary: "Close the clone window", tags: ["jobs"], security, response: { 200: cloneWindow, ...errors } } }, async (req) => {
      await ctx.jobs.closeCloneWindow(actor(req));
      return { open: false };
    });

    app.get(
      "/audit",
      { schema: { summary: "The audit log, newest first", tags: ["audit"], security, querystring: { type: "object", properties: { target: { type: "string" }, limit: { type: "integer" } } }, response: { 200: { type: "array", items: auditEntry }, ...errors } } },
      async (req: FastifyRequest<{ Querystring: { target?: string; limit?: number } }>) => ctx.store.audit.list(req.query),
    );
  };
}
