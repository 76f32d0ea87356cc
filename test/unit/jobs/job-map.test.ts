import { describe, expect, it } from "vitest";
import { createPlanner } from "../../../server/jobs/job-plan.ts";
import { JobService } from "../../../server/jobs/job-service.ts";
import { createLogger } from "../../../server/log.ts";
import type { Hello } from "../../../server/plan/agent-api.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { fixtureLayout, newDisk } from "../recovery/fixtures.ts";

/**
 * Issue 15 item 5, through the job service and the real planner on an in-memory store:
 * `jobs map` keeps each target as the identity it had among the disks the agent reported,
 * and a later boot whose disks differ from what the admin looked at gets no plan.
 */

const GiB = 1024 ** 3;
const MAC = "52:54:00:15:05:01";

async function setup() {
  const store = new SqliteStore(":memory:");
  await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: [MAC], amandaConfig: null, dleMap: {} });
  // Two QEMU disks (serials QM00005/6 identify nothing): a new machine always needs a mapping.
  await store.layouts.add("web1", fixtureLayout("multi-disk"));
  await store.profiles.put({ name: "web1", host: "web1", layoutVersion: null, at: null, options: {} });
  const jobs = new JobService(store, { server: "test", expireHours: 1, heartbeatTimeoutSeconds: 600, stalledFailHours: 24, log: createLogger("silent", { pretty: false }), planner: createPlanner(store) });
  const job = await jobs.arm({ mac: MAC, profile: "web1", actor: "test" });
  return { store, jobs, job };
}

const hello = (disks: Hello["disks"]): Hello => ({ disks, hardware: { macs: [MAC] } });
const small = () => newDisk("vda", 1 * GiB, { serial: "NEW-A" });
const big = () => newDisk("vdb", 4 * GiB, { serial: "NEW-B" });

describe("jobs map: the target's identity, and a new look when the disks change", () => {
  it("before the agent reported its disks, a kernel name is refused in one line; serial: is taken", async () => {
    const { jobs, job } = await setup();
    await expect(jobs.map(job.id, { sda: "vda" }, "admin")).rejects.toThrow(
      `job ${job.id}: mapping sda=vda: a kernel name may name another disk at the next boot; map once the machine has reported its disks (lifeboat jobs plan JOB shows them), or name the target by serial:…, wwn:… or by-id:…`,
    );
    const mapped = await jobs.map(job.id, { sda: "serial:NEW-A", sdb: "serial:NEW-B" }, "admin");
    expect(mapped.mapping).toEqual({
      sda: { name: null, serial: "NEW-A", wwn: null, byId: [], sizeBytes: null, seen: null },
      sdb: { name: null, serial: "NEW-B", wwn: null, byId: [], sizeBytes: null, seen: null },
    });
    await jobs.hello(job.id, hello([big(), small()].map((t, i) => ({ ...t, name: `vd${"ab"[i]}`, path: `/dev/vd${"ab"[i]}` }))));
    const r = await jobs.plan(job.id, "h");
    expect(r.ok, r.ok ? "" : r.reason).toBe(true);
    // By serial, whatever the kernel called them on this boot.
    expect((r.ok ? r.detail : null) as { mapping: Array<{ captured: string; targetPath: string }> }).toMatchObject({
      mapping: [
        { captured: "sda", targetPath: "/dev/vdb" },
        { captured: "sdb", targetPath: "/dev/vda" },
      ],
    });
  });

  it("a mapping made against one boot's disks is refused at a boot whose disks differ, until mapped again", async () => {
    const { store, jobs, job } = await setup();
    await jobs.hello(job.id, hello([small(), big()]));
    expect(await jobs.plan(job.id, "h")).toMatchObject({ ok: false, reason: expect.stringMatching(/serial QM00005 is QEMU's default ATA serial, which identifies no disk/) });
    const mapped = await jobs.map(job.id, { sda: "vda", sdb: "vdb" }, "admin");
    expect(mapped.mapping!.sda).toMatchObject({ name: "vda", serial: "NEW-A", sizeBytes: 1 * GiB, seen: expect.stringMatching(/^[0-9a-f]{16}$/) });
    const audit = await store.audit.list({ target: `job:${job.id}` });
    expect(audit.find((a) => a.action === "job.map")!.detail).toMatchObject({ mapping: { sda: "vda", sdb: "vdb" }, resolved: { sda: { serial: "NEW-A" } } });

    // The machine boots again with a USB stick plugged in: not the disks the admin looked at.
    await jobs.hello(job.id, hello([small(), big(), newDisk("sdc", 16 * GiB, { bus: "usb", removable: true })]));
    const stale = await jobs.plan(job.id, "h");
    expect(stale).toEqual({
      ok: false,
      reason: "mapping sda=vda (serial NEW-A): the machine reports other disks than when this mapping was made (now: vda, vdb, sdc (removable/USB)): look at them again and map again",
    });
    expect((await jobs.get(job.id)).error).toBe(stale.ok ? null : stale.reason);
    await jobs.map(job.id, { sda: "vda", sdb: "vdb" }, "admin");
    const again = await jobs.plan(job.id, "h");
    expect(again.ok, again.ok ? "" : again.reason).toBe(true);
    expect(again.ok && again.script).not.toContain("/dev/sdc");
  });

  it("a mapping stored by kernel name by an older Lifeboat is not trusted", async () => {
    const { store, jobs, job } = await setup();
    await jobs.hello(job.id, hello([small(), big()]));
    await store.jobs.update(job.id, { mapping: { sda: "vda", sdb: "vdb" } as never });
    expect(await jobs.plan(job.id, "h")).toEqual({ ok: false, reason: `job ${job.id}: its disk mapping names disks by kernel name (saved by an older Lifeboat); map them again` });
  });
});
