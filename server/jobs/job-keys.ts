/**
 * When a job's agent may have a LUKS passphrase the admin supplied (`jobs key`). Pure.
 *
 * Only the boot the plan was served to (the same token), only while the plan runs, and each
 * key once: the store deletes it as it hands it out. Keys go with the job when it ends
 * (JobLifecycle.commit drops them for every state that is not active), and a stalled job's
 * with it when the stall limit (jobs.stalledFailHours) fails it.
 */
import type { JobRecord } from "../store/types.ts";
import { STREAMING_STATES } from "./job-state.ts";

/** Why this token may not have a key of this job now, or undefined when it may. */
export function keyRefusal(job: JobRecord, tokenHash: string): string | undefined {
  if (job.planTokenHash !== tokenHash) return `job ${job.id}: the plan has not been served to this boot: keys come after the plan`;
  if (!STREAMING_STATES.includes(job.state)) return `job ${job.id} is ${job.state}: keys are served while its plan runs`;
  return undefined;
}

/** Why a key that is not (any more) in the store is missing: served already, or never supplied. */
export function missingKey(job: JobRecord, uuid: string, servedBefore: boolean): { served: boolean; message: string } {
  return servedBefore
    ? { served: true, message: `job ${job.id}: the key for LUKS ${uuid} was served already (each key once); supply it again with lifeboat jobs key` }
    : { served: false, message: `no key for LUKS ${uuid} in job ${job.id}` };
}
