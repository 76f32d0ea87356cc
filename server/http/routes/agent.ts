import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import type { ServerContext } from "../../context.ts";
import { ConflictError, NotFoundError } from "../../errors.ts";
import { JOB_ENDED_STATUS, type JobEnded, agentEventSchema, helloSchema, jobEndedSchema } from "../../plan/agent-api.ts";
import { isActive } from "../../jobs/job-state.ts";
import { requesterAddress } from "../../jobs/boot-service.ts";
import type { JobRecord } from "../../store/types.ts";
import { hashToken, tokensEqual } from "../../tokens.ts";
import { bearer, requireToken } from "../auth.ts";
import { HttpError, errorResponses } from "../errors.ts";
import { jsonSchema } from "../schema.ts";

type JobRequest = FastifyRequest<{ Params: { job: string; uuid?: string } }>;

const params = { type: "object", required: ["job"], properties: { job: { type: "string" } } } as const;
const okReply = { type: "object", properties: { state: { type: "string" } } } as const;
const security = [{ bearer: [] }];
/** The refusals every state-changing agent route may answer (410: the job ended, stop). */
const refusals = { ...errorResponses(401, 409), [JOB_ENDED_STATUS]: jsonSchema(jobEndedSchema) };

/**
 * The rescue agent's routes under AGENT_BASE (contract: server/plan/agent-api.ts). Each needs the job's
 * current boot token; a token sees its own job only. A transition the job's state does not
 * allow is a 409 with the reason, unless the job has ended: then the agent gets the distinct
 * JOB_ENDED_STATUS answer that tells it to stop (server/plan/agent-api.ts).
 */
export function agentRoutes(ctx: ServerContext): FastifyPluginAsync {
  // The job each authorised request acts on, as the token check found it.
  const jobOf = new WeakMap<FastifyRequest, JobRecord>();
  const jobToken = requireToken<JobRequest>(ctx, {
    job: async (req, token) => {
      const job = await ctx.store.jobs.get(req.params.job);
      if (!job?.tokenHash || !tokensEqual(hashToken(token), job.tokenHash)) return false;
      jobOf.set(req, job);
      return true;
    },
    message: "job token required",
  });
  /** Runs a handler for an authorised job; a refused transition is a 409, or JOB_ENDED_STATUS once the job ended. */
  const forJob =
    (handler: (job: JobRecord, req: JobRequest, reply: FastifyReply) => Promise<unknown>) =>
    async (req: JobRequest, reply: FastifyReply) => {
      const job = jobOf.get(req)!;
      req.log = req.log.child({ job: job.id, mac: job.mac });
      try {
        return await handler(job, req, reply);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        const now = (await ctx.store.jobs.get(job.id)) ?? job;
        if (isActive(now.state)) throw err;
        req.log.info({ state: now.state, url: req.url }, "agent call on an ended job: told to stop");
        const ended: Omit<JobEnded, "error" | "message"> = { state: now.state as JobEnded["state"] };
        throw new HttpError(JOB_ENDED_STATUS, "job-ended", `job ${job.id} is ${now.state}: stop, write nothing more`, ended);
      }
    };

  return async (app) => {
    app.addHook("preHandler", jobToken);
    app.post(
      `/:job/hello`,
      { schema: { summary: "Agent: the disks and hardware it sees", tags: ["agent"], security, params, body: jsonSchema(helloSchema), response: { 200: okReply, ...refusals } } },
      forJob(async (job, req) => {
        const hello = helloSchema.parse(req.body);
        const next = await ctx.jobs.hello(job.id, hello);
        req.log.info({ disks: hello.disks.length }, "agent hello");
        return { state: next.state };
      }),
    );

    app.get(
      `/:job/plan`,
      { schema: { summary: "Agent: the plan as a POSIX sh script, or 409 with why not yet", tags: ["agent"], security, params, response: { 200: { type: "string" }, ...refusals } } },
      forJob(async (job, req, reply) => {
        const plan = await ctx.jobs.plan(job.id, hashToken(bearer(req)!));
        if (!plan.ok) throw new HttpError(409, "plan-refused", plan.reason);
        return reply.type("text/x-shellscript").send(plan.script);
      }),
    );

    app.post(
      `/:job/events`,
      { schema: { summary: "Agent: one progress event", tags: ["agent"], security, params, body: jsonSchema(agentEventSchema), response: { 200: okReply, ...refusals } } },
      forJob(async (job, req) => ({ state: (await ctx.jobs.agentEvent(job.id, agentEventSchema.parse(req.body))).state })),
    );

    app.post(
      `/:job/heartbeat`,
      { schema: { summary: "Agent: still alive", tags: ["agent"], security, params, response: { 200: okReply, ...refusals } } },
      forJob(async (job) => ({ state: (await ctx.jobs.heartbeat(job.id)).state })),
    );

    app.get(
      `/:job/keys/:uuid`,
      {
        schema: {
          summary: "Agent: the LUKS passphrase the admin supplied for a container; once, and only to the boot its plan was served to (409 otherwise)",
          tags: ["agent"],
          security,
          params: { type: "object", required: ["job", "uuid"], properties: { job: { type: "string" }, uuid: { type: "string" } } },
          response: { 200: { type: "string" }, ...errorResponses(404), ...refusals },
        },
      },
      forJob(async (job, req, reply) => {
        const uuid = req.params.uuid ?? "";
        const secret = await ctx.jobs.serveKey(job.id, uuid, hashToken(bearer(req)!), requesterAddress(req.ip));
        if (secret === undefined) throw new NotFoundError(`no key for LUKS ${uuid} in job ${job.id}`);
        req.log.info({ uuid }, "LUKS key served");
        return reply.type("text/plain").send(secret);
      }),
    );

    // One upload is capped here (413 beyond it), all of a job's together by the job service.
    app.addContentTypeParser("text/plain", { parseAs: "string", bodyLimit: ctx.config.jobs.agentLogMaxBytes }, (_req, body, done) => done(null, body));
    app.post(
      `/:job/log`,
      { schema: { summary: "Agent: its whole log (text/plain), at the end; 413 beyond jobs.agentLogMaxBytes, or jobs.agentLogJobMaxBytes for all of a job's", tags: ["agent"], security, params, response: { 200: okReply, ...errorResponses(401, 413) } } },
      forJob(async (job, req) => {
        await ctx.jobs.agentLog(job.id, String(req.body ?? ""));
        return { state: job.state };
      }),
    );
  };
}
