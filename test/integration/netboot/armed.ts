/** A machine with an armed job, made the way the admin would (host, layout, profile, JobService.arm), straight on the store. */
import { createLogger } from "../../../server/log.ts";
import { JobService } from "../../../server/jobs/job-service.ts";
import type { JobRecord, Store } from "../../../server/store/types.ts";

export async function armForTest(store: Store, o: { host: string; macs: string[]; uuid?: string; jobMac?: string }): Promise<JobRecord> {
  await store.hosts.add({ name: o.host, tokenHash: "x", smbiosUuid: o.uuid ?? null, macs: o.macs, amandaConfig: null, dleMap: {} });
  await store.layouts.add(o.host, { disks: [] });
  await store.profiles.put({ name: `${o.host}-p`, host: o.host, layoutVersion: null, at: null, options: {} });
  const jobs = new JobService(store, { server: "test",
    expireHours: 1,
    heartbeatTimeoutSeconds: 600,
    stalledFailHours: 12,
    log: createLogger("silent", { pretty: false }),
    planner: async () => ({ ok: false, reason: "netboot tests need no plan" }),
  });
  return jobs.arm({ mac: o.jobMac ?? o.macs[0]!, profile: `${o.host}-p`, actor: "test" });
}
