import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { TooLargeError, UserError } from "../../errors.ts";
import { AGENT_BASE, JOB_ENDED_STATUS, type JobEnded, agentEventSchema, helloSchema, jobEndedSchema } from "../../plan/agent-api.ts";
import { isActive } from "../../jobs/job-state.ts";
import { requesterAddress } from "../../jobs/boot-service.ts";
import type { JobRecord } from "../../store/types.ts";
import { hashToken, tokensEqual } from "../../tokens.ts";
import { bearer } from "../auth.ts";
import { errorSchema, jsonSchema } from "../schema.ts";

type JobRequest = FastifyRequest<{ Params: { job: string; uuid?: string } }>;

const params = { type: "object", required: ["job"], properties: { job: { type: "string" } } } as const;
const okReply = { type: "object", properties: { state: { type: "string" } } } as const;
const security = [{ bearer: [] }];
/** The refusals every state-changing agent route may answer (410: the job ended, stop). */
const refusals = { 401: errorSchema, 409: errorSchema, [JOB_ENDED_STATUS]: jsonSchema(jobEndedSchema) };

/**
 * The rescue agent's routes (contract: server/plan/agent-api.ts). Each needs the job's
 * current boot token; a token sees its own job only. A transition the job's state does not
 * allow is a 409 with the reason, unless the job has ended: then the agent gets the distinct
 * JOB_ENDED_STATUS answer that tells it to stop (server/plan/agent-api.ts).
 */
export function agentRoutes(ctx: ServerContext): FastifyPluginAsync {
  const authorize = async (req: JobRequest, reply: FastifyReply): Promise<JobRecord | undefined> => {
    const job = await ctx.store.jobs.get(req.params.job);
    const token = bearer(req);
    if (!job || !token || !job.tokenHash || !tokensEqual(hashToken(token), job.tokenHash)) {
      req.log.warn({ job: req.params.job, ip: req.ip }, "agent call with a wrong or missing job token");
      void reply.code(401).send({ error: "unauthorized", message: "job token required" });
      return undefined;
    }
    req.log = req.log.child({ job: job.id, mac: job.mac });
    return job;
  };
  /** Runs a handler for an authorized job; a refused transition is a 409, or JOB_ENDED_STATUS once the job ended. */
  const forJob =
    (handler: (job: JobRecord, req: JobRequest, reply: FastifyReply) => Promise<unknown>) =>
    async (req: JobRequest, reply: FastifyReply) => {
      const job = await authorize(req, reply);
      if (!job) return reply;
      try {
        return await handler(job, req, reply);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        if (err instanceof TooLargeError) return reply.code(413).send({ error: "too-large", message: err.message });
        const now = (await ctx.store.jobs.get(job.id)) ?? job;
        if (!isActive(now.state)) {
          req.log.info({ state: now.state, url: req.url }, "agent call on an ended job: told to stop");
          const body: JobEnded = { error: "job-ended", state: now.state as JobEnded["state"], message: `job ${job.id} is ${now.state}: stop, write nothing more` };
          return reply.code(JOB_ENDED_STATUS).send(body);
        }
        return reply.code(409).send({ error: "conflict", message: err.message });
      }
    };

  return async (app) => {
    app.post(
      `${AGENT_BASE}/:job/hello`,
      { schema: { summary: "Agent: the disks and hardware it sees", tags: ["agent"], security, params, body: jsonSchema(helloSchema), response: { 200: okReply, ...refusals } } },
      forJob(async (job, req) => {
        const hello = helloSchema.parse(req.body);
        const next = await ctx.jobs.hello(job.id, hello);
        req.log.info({ disks: hello.disks.length }, "agent hello");
        return { state: next.state };
      }),
    );

    app.get(
      `${AGENT_BASE}/:job/plan`,
      { schema: { summary: "Agent: the plan as a POSIX sh script, or 409 with why not yet", tags: ["agent"], security, params, response: { 200: { type: "string" }, ...refusals } } },
      forJob(async (job, req, reply) => {
        const plan = await ctx.jobs.plan(job.id, hashToken(bearer(req)!));
        if (!plan.ok) return reply.code(409).send({ error: "plan-refused", message: plan.reason });
        return reply.type("text/x-shellscript").send(plan.script);
      }),
    );

    app.post(
      `${AGENT_BASE}/:job/events`,
      { schema: { summary: "Agent: one progress event", tags: ["agent"], security, params, body: jsonSchema(agentEventSchema), response: { 200: okReply, ...refusals } } },
      forJob(async (job, req) => ({ state: (await ctx.jobs.agentEvent(job.id, agentEventSchema.parse(req.body))).state })),
    );

    app.post(
      `${AGENT_BASE}/:job/heartbeat`,
      { schema: { summary: "Agent: still alive", tags: ["agent"], security, params, response: { 200: okReply, ...refusals } } },
      forJob(async (job) => ({ state: (await ctx.jobs.heartbeat(job.id)).state })),
    );

    app.get(
      `${AGENT_BASE}/:job/keys/:uuid`,
      {
        schema: {
          summary: "Agent: the LUKS passphrase the admin supplied for a container; once, and only to the boot its plan was served to (409 otherwise)",
          tags: ["agent"],
          security,
          params: { type: "object", required: ["job", "uuid"], properties: { job: { type: "string" }, uuid: { type: "string" } } },
          response: { 200: { type: "string" }, 404: errorSchema, ...refusals },
        },
      },
      forJob(async (job, req, reply) => {
        const uuid = req.params.uuid ?? "";
        const secret = await ctx.jobs.serveKey(job.id, uuid, hashToken(bearer(req)!), requesterAddress(req.ip));
        if (secret === undefined) return reply.code(404).send({ error: "not-found", message: `no key for LUKS ${uuid} in job ${job.id}` });
        req.log.info({ uuid }, "LUKS key served");
        return reply.type("text/plain").send(secret);
      }),
    );

    // One upload is capped here (413 beyond it), all of a job's together by the job service.
    app.addContentTypeParser("text/plain", { parseAs: "string", bodyLimit: ctx.config.jobs.agentLogMaxBytes }, (_req, body, done) => done(null, body));
    app.post(
      `${AGENT_BASE}/:job/log`,
      { schema: { summary: "Agent: its whole log (text/plain), at the end; 413 beyond jobs.agentLogMaxBytes, or jobs.agentLogJobMaxBytes for all of a job's", tags: ["agent"], security, params, response: { 200: okReply, 401: errorSchema, 413: errorSchema } } },
      forJob(async (job, req) => {
        await ctx.jobs.agentLog(job.id, String(req.body ?? ""));
        return { state: job.state };
      }),
    );
  };
}
