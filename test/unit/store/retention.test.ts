/** Issue 16.2: what the store keeps: layout versions per host, events of ended jobs, the agent log caps (pure and store parts). */
import { describe, expect, it } from "vitest";
import { TooLargeError } from "../../../server/errors.ts";
import { agentLogRefusal, applyRetention, eventsCutoff } from "../../../server/jobs/retention.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import type { JobRecord, JobState } from "../../../server/store/types.ts";

const DAY = 86_400_000;

async function storeWithJob(id: string, state: JobState, store = new SqliteStore(":memory:")) {
  const job: Omit<JobRecord, "createdAt" | "updatedAt"> = {
    id, mac: `52:54:00:00:00:${id.padStart(2, "0").slice(-2)}`, kind: "recover", profile: "p", state, step: 0, steps: 0, bytesDone: 0, bytesTotal: 0,
    tokenHash: null, hostname: null, at: null, hello: null, mapping: null, plan: null, error: null, armedBy: "test", expiresAt: new Date(Date.now() + DAY).toISOString(), lastHeartbeatAt: null,
    planTokenHash: null, trustHttpBoot: false, options: {}, powerWave: null, server: null,
  };
  await store.jobs.create(job);
  await store.jobs.addEvent(id, "armed", {});
  await store.jobs.addEvent(id, "agent-log", { text: "x".repeat(100) });
  return store;
}

describe("retention", () => {
  it("eventsCutoff: D days before now; 0 days keeps everything", () => {
    expect(eventsCutoff(new Date("2026-03-31T00:00:00Z"), 30)).toBe("2026-03-01T00:00:00.000Z");
    expect(eventsCutoff(new Date(), 0)).toBeNull();
  });

  it("keeps the newest N layout versions of each host and every version a profile pins; numbering goes on", async () => {
    const store = new SqliteStore(":memory:");
    for (const host of ["a", "b"]) {
      await store.hosts.add({ name: host, tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
      for (let v = 1; v <= 5; v++) await store.layouts.add(host, { v });
    }
    await store.profiles.put({ name: "pinned", host: "a", layoutVersion: 1, at: null, options: {} });
    expect(await applyRetention(store, { layoutVersions: 2, endedJobDays: 0 })).toEqual({ layoutVersions: 5, jobEvents: 0 });
    expect((await store.layouts.versions("a")).map((l) => l.version)).toEqual([1, 4, 5]);
    expect((await store.layouts.versions("b")).map((l) => l.version)).toEqual([4, 5]);
    expect((await store.layouts.add("b", { v: 6 })).version).toBe(6);
    expect(await store.layouts.prune(2)).toBe(1);
    expect((await store.layouts.versions("b")).map((l) => l.version)).toEqual([5, 6]);
  });

  it("deletes the events and logs of jobs ended more than D days ago, never of an active job; the job rows stay", async () => {
    const store = await storeWithJob("1", "done");
    await storeWithJob("2", "running", store);
    await storeWithJob("3", "cancelled", store);
    const policy = { layoutVersions: 50, endedJobDays: 30 };
    expect(await applyRetention(store, policy, new Date(Date.now() + 29 * DAY))).toEqual({ layoutVersions: 0, jobEvents: 0 });
    expect(await applyRetention(store, policy, new Date(Date.now() + 31 * DAY))).toEqual({ layoutVersions: 0, jobEvents: 4 });
    expect(await store.jobs.events("1")).toEqual([]);
    expect(await store.jobs.events("3")).toEqual([]);
    expect((await store.jobs.events("2")).map((e) => e.type)).toEqual(["armed", "agent-log"]);
    expect((await store.jobs.get("1"))?.state).toBe("done");
  });

  it("agent logs: the bytes a job stores are counted; past the cap a one-line refusal naming the key", async () => {
    const store = await storeWithJob("1", "running");
    const stored = await store.jobs.eventBytes("1", "agent-log");
    expect(stored).toBe(JSON.stringify({ text: "x".repeat(100) }).length);
    expect(agentLogRefusal("1", stored, 100, stored + 100)).toBeUndefined();
    const r = agentLogRefusal("1", stored, 101, stored + 100);
    expect(r).toBeInstanceOf(TooLargeError);
    expect(r?.message).toBe(`job 1: its agent logs would take ${stored + 101} bytes, more than jobs.agentLogJobMaxBytes (${stored + 100})`);
  });
});
