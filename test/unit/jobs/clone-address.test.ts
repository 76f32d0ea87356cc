import { describe, expect, it } from "vitest";
import { createPlanner } from "../../../server/jobs/job-plan.ts";
import { JobService } from "../../../server/jobs/job-service.ts";
import { createLogger } from "../../../server/log.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { fixtureLayout } from "../recovery/fixtures.ts";

/**
 * Issue 21 item 4 through the job service and the real planner on an in-memory store: clones
 * of a profile with an address pattern each get their own address (set_address on the captured
 * default-route NIC), and an address another active job's machine is to have is refused.
 */
async function setup(nics = [{ name: "ens3", mac: "52:54:00:21:04:01", driver: "virtio_net", defaultRoute: true }, { name: "ens4", mac: "52:54:00:21:04:02", driver: "virtio_net", defaultRoute: false }]) {
  const store = new SqliteStore(":memory:");
  await store.hosts.add({ name: "tpl", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
  const layout = { ...fixtureLayout("btrfs-subvols"), dles: {} };
  layout.system.nics = nics;
  await store.layouts.add("tpl", layout);
  await store.profiles.put({ name: "web", host: "tpl", layoutVersion: null, at: null, options: { hostnamePattern: "web-{n}", cloneAddress: { pattern: "10.0.5.{n+20}/24", gateway: "10.0.5.1", dns: ["10.0.5.2"] } } });
  const planner = createPlanner(store);
  const jobs = new JobService(store, { server: "test", expireHours: 1, heartbeatTimeoutSeconds: 600, stalledFailHours: 24, log: createLogger("silent", { pretty: false }), planner });
  return { store, jobs, planner };
}

const mac = (n: number) => `52:54:00:21:04:1${n}`;

describe("clones' own addresses from the profile's pattern", () => {
  it("clone n gets 10.0.5.{n+20}, written by set_address on the default-route NIC, shown with the plan's network lines", async () => {
    const { store, jobs, planner } = await setup();
    const armed = [];
    for (const n of [1, 2, 3, 4]) armed.push(await jobs.arm({ mac: mac(n), kind: "clone", profile: "web", hostname: `web-${n}`, cloneNumber: n, actor: "test" }));
    expect(armed.map((j) => j.options.address)).toEqual([21, 22, 23, 24].map((h) => ({ address: `10.0.5.${h}/24`, gateway: "10.0.5.1", dns: ["10.0.5.2"] })));
    const plan = await planner(armed[2]!, (await store.profiles.get("web"))!);
    if (!plan.ok) throw new Error(plan.reason);
    expect(plan.script).toMatch(/^set_address ens3 10\.0\.5\.23\/24 10\.0\.5\.1 10\.0\.5\.2$/m);
    expect(plan.detail.network).toContain("address after the restore: 10.0.5.23/24 via 10.0.5.1, DNS 10.0.5.2 on ens3");
    await store.close();
  });

  it("an address another active job's machine is to have is refused in one line; once that job ends it is free", async () => {
    const { store, jobs } = await setup();
    const first = await jobs.arm({ mac: mac(1), kind: "clone", profile: "web", cloneNumber: 1, actor: "test" });
    await expect(jobs.arm({ mac: mac(2), kind: "clone", profile: "web", cloneNumber: 1, actor: "test" })).rejects.toThrow(
      `clone 1 of profile web: 10.0.5.21 is already the address of job ${first.id} (${mac(1)}, armed); cancel it or change the profile's address pattern`,
    );
    await jobs.cancel(first.id, "test");
    expect((await jobs.arm({ mac: mac(2), kind: "clone", profile: "web", cloneNumber: 1, actor: "test" })).options.address?.address).toBe("10.0.5.21/24");
    await store.close();
  });

  it("a layout that does not say which NIC carried the default route gets no plan, naming its NICs", async () => {
    const { store, jobs, planner } = await setup([
      { name: "ens3", mac: "52:54:00:21:04:01", driver: "e1000", defaultRoute: false },
      { name: "ens4", mac: "52:54:00:21:04:02", driver: "e1000", defaultRoute: false },
    ]);
    const job = await jobs.arm({ mac: mac(1), kind: "clone", profile: "web", cloneNumber: 1, actor: "test" });
    expect(await planner(job, (await store.profiles.get("web"))!)).toMatchObject({ ok: false, reason: expect.stringContaining("address 10.0.5.21/24: the layout does not say which NIC carried the default route (ens3, ens4;") });
    await store.close();
  });
});
