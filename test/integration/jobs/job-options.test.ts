/**
 * The plan builder's choices (new UUIDs, which partition grows) reach a served plan from a
 * profile and from the job (issue 17 item 8): through the admin API, the job service and the
 * real planner, and the agent's routes. The choices themselves are tested in
 * test/unit/recovery/plan.test.ts; here, that nothing on the way drops them.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { bootToken, seedHost, testServer } from "../../helpers/server.ts";
import { fixtureLayout, newDisk } from "../../unit/recovery/fixtures.ts";

const GiB = 1024 ** 3;
// A GPT disk: ESP (sda1), ext4 root (sda2), swap (sda3); no DLEs, so no restore chains are needed.
const layout = { ...fixtureLayout("gpt-uefi"), dles: {} };
const captured = layout.disks[0]!;
/** The new machine's disk, four times the captured one, named by serial in the profiles. */
const bigger = newDisk("vda", 4 * GiB, { serial: "NEW-1" });

/** [number, start, size] of each partition the plan's sfdisk script makes. */
const partitions = (script: string) => [...script.matchAll(/(\d+) : start=\s*(\d+), size=\s*(\d+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
const fixFstab = (script: string) => script.split("\n").filter((l) => l.startsWith("fix_fstab "));

describe("plan choices from profiles and jobs reach the served plan", () => {
  let server: RunningServer;
  let n = 0;
  const admin = () => ({ authorization: `Bearer ${server.ctx.adminToken}` });
  const inject = (method: string, url: string, payload?: unknown, headers: Record<string, string> = admin()) =>
    server.app.inject({ method: method as "GET", url, headers, payload: payload as object });

  beforeAll(async () => {
    server = await testServer();
    await seedHost(server, "web1", "52:54:00:17:08:00", layout);
    const mapping = { sda: "serial:NEW-1" };
    for (const [name, options] of Object.entries({ plain: { mapping }, fresh: { mapping, newUuids: true } }))
      expect((await inject("PUT", `/api/v1/profiles/${name}`, { host: "web1", options })).statusCode).toBe(200);
  });
  afterAll(async () => server.stop(0));

  /** Arms a job (the body's options as given), boots its machine with the bigger disk and fetches the plan its agent gets. */
  async function served(profile: string, options?: unknown): Promise<{ job: JobView; plan: { statusCode: number; body: string } }> {
    const mac = `52:54:00:17:08:${(++n).toString(16).padStart(2, "0")}`;
    const armed = await inject("POST", "/api/v1/jobs", { mac, profile, ...(options ? { options } : {}) });
    expect(armed.statusCode, armed.body).toBe(200);
    const [job] = armed.json<JobView[]>();
    const token = await bootToken(server, { id: job!.id, mac });
    const agent = { authorization: `Bearer ${token}` };
    const base = `/api/v1/agent/jobs/${job!.id}`;
    expect((await inject("POST", `${base}/hello`, { disks: [bigger], hardware: { macs: [mac] } }, agent)).statusCode).toBe(200);
    const plan = await inject("GET", `${base}/plan`, undefined, agent);
    return { job: job!, plan: { statusCode: plan.statusCode, body: plan.body } };
  }

  it("a profile's newUuids: fix_fstab for each filesystem and swap UUID in the served plan, none without it", async () => {
    const { plan: plainPlan } = await served("plain");
    expect(plainPlan.statusCode, plainPlan.body).toBe(200);
    expect(fixFstab(plainPlan.body)).toEqual([]);

    const old = [...layout.filesystems.map((f) => f.uuid), layout.swap[0]!.uuid];
    const { plan } = await served("fresh");
    expect(plan.statusCode, plan.body).toBe(200);
    expect(fixFstab(plan.body).map((l) => l.split(" ")[1])).toEqual(expect.arrayContaining(old));
  });

  it("a job's grow and newUuids, over its profile's: the named partition takes the rest of the bigger disk", async () => {
    const { plan: byDefault } = await served("plain");
    const { job, plan } = await served("plain", { grow: "/dev/sda2", newUuids: true });
    expect(job.options).toEqual({ grow: "/dev/sda2", newUuids: true });
    expect(plan.statusCode, plan.body).toBe(200);
    expect(fixFstab(plan.body)).not.toEqual([]);
    const before = partitions(byDefault.body);
    const after = partitions(plan.body);
    const [, root, swap] = captured.table!.partitions;
    const lastUsable = bigger.sizeBytes / 512 - 34;
    // By default the last partition (swap) takes the rest; with grow, the root does and swap ends where it fits.
    expect(before[2]![1]! + before[2]![2]! - 1).toBe(lastUsable);
    expect(after[1]![2]! / root!.size).toBeGreaterThan(after[2]![2]! / swap!.size);
    expect(after[1]![2]!).toBeGreaterThan(before[1]![2]!);
    expect(after[2]![2]!).toBeLessThan(before[2]![2]!);
  });

  it("a grow naming no captured partition refuses the plan in one line", async () => {
    const { plan } = await served("plain", { grow: "/dev/sda9" });
    expect(plan.statusCode).toBe(409);
    expect(JSON.parse(plan.body)).toEqual({ error: "plan-refused", message: `grow /dev/sda9: layout of ${layout.hostname} has no partition by that name` });
  });

  it("bad values are refused with a one-line 400, for profiles and jobs alike (one schema)", async () => {
    const partition = "options.grow: expected a captured partition, e.g. /dev/sda2 or /dev/nvme0n1p3";
    const cases: Array<[unknown, string]> = [
      [{ newUuids: "yes" }, "body/options/newUuids must be boolean"],
      [{ grow: "sda2" }, partition],
      [{ grow: "/dev/sda2; reboot" }, partition],
      [{ grow: "/dev/../sda2" }, partition],
    ];
    for (const [options, message] of cases) {
      const profile = await inject("PUT", "/api/v1/profiles/bad", { host: "web1", options });
      const job = await inject("POST", "/api/v1/jobs", { mac: "52:54:00:17:08:ff", profile: "plain", options });
      for (const r of [profile, job]) {
        expect(r.statusCode, r.body).toBe(400);
        const body = r.json<{ message: string }>();
        expect(body.message).toBe(message);
      }
    }
    expect((await inject("GET", "/api/v1/profiles/bad")).statusCode).toBe(404);
    expect((await inject("GET", "/api/v1/jobs?mac=52:54:00:17:08:ff")).json()).toEqual([]);
  });
});
