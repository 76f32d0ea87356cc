/** Test rows for a machine with an active job: host, profile and job written straight into the store. */
import type { JobRecord, Store } from "../../../server/store/types.ts";

export async function armForTest(store: Store, o: { host: string; macs: string[]; uuid?: string; jobMac?: string }): Promise<JobRecord> {
  await store.hosts.add({ name: o.host, tokenHash: "x", smbiosUuid: o.uuid ?? null, macs: o.macs, amandaConfig: null, dleMap: {} });
  await store.profiles.put({ name: `${o.host}-p`, host: o.host, layoutVersion: null, at: null, options: {} });
  return store.jobs.create({
    id: `job-${o.host}`,
    mac: o.jobMac ?? o.macs[0]!,
    kind: "recover",
    profile: `${o.host}-p`,
    state: "armed",
    step: 0,
    steps: 0,
    bytesDone: 0,
    bytesTotal: 0,
    tokenHash: null,
    hostname: null,
    at: null,
    hello: null,
    mapping: null,
    plan: null,
    error: null,
    armedBy: "test",
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    lastHeartbeatAt: null,
  });
}
