/**
 * The shell around the wave scheduler and the after-end decision (power-service.ts followUp):
 * a real store and job service, machines whose BMCs are stand-ins (what each was told, kept
 * across a "restart" like a real BMC's), and serve's follow-up started and stopped as serve does.
 */
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Service } from "../../../server/context.ts";
import { JobService } from "../../../server/jobs/job-service.ts";
import { jobView } from "../../../server/jobs/job-views.ts";
import { createLogger } from "../../../server/log.ts";
import { type PowerDriver, PowerError, type PowerState } from "../../../server/power/power.ts";
import { PowerService, powerHistory } from "../../../server/power/power-service.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import type { HostRecord, JobRecord } from "../../../server/store/types.ts";
import { standInPlan } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

interface Machine {
  power: PowerState;
  boot: string;
  calls: string[];
  /** Its BMC does not answer. */
  silent?: boolean;
}
const machines = new Map<string, Machine>();

/** A stand-in BMC driver over `machines` (what ipmitool would do to a real one). */
function standInDriver(host: HostRecord): PowerDriver {
  const m = machines.get(host.name)!;
  const act = (call: string, f: () => void) => async () => {
    if (m.silent) throw new PowerError("unreachable", `BMC of ${host.name} does not answer`);
    m.calls.push(call);
    f();
  };
  return {
    kind: "ipmi",
    can: { status: true, off: true, cycle: true, oneTimeBoot: true },
    status: async () => {
      if (m.silent) throw new PowerError("unreachable", `BMC of ${host.name} does not answer`);
      return m.power;
    },
    on: act("on", () => (m.power = "on")),
    off: act("off", () => (m.power = "off")),
    cycle: act("cycle", () => (m.power = "on")),
    setOneTimeBoot: async (via, firmware) => act(`set-boot ${via} ${firmware}`, () => (m.boot = `${via} ${firmware}`))(),
    clearOneTimeBoot: act("clear-boot", () => (m.boot = "none")),
  };
}

const log = createLogger("silent", { pretty: false });
const running: Array<{ follow: Service; store: SqliteStore }> = [];

/** What `serve` builds: the store, the job service, the power service with 2 slots, and its follow-up started. */
async function serve(file: string) {
  const store = new SqliteStore(file);
  const jobs = new JobService(store, { server: "test", expireHours: 24, heartbeatTimeoutSeconds: 60, stalledFailHours: 12, log, planner: async () => standInPlan("plan_begin 3 web 2\nplan_done reboot\n", 2) });
  const power = new PowerService(store, jobs, { bootInterface: "", waveSize: 2, log, driver: standInDriver });
  const follow = power.followUp();
  await follow.start();
  running.push({ follow, store });
  return { store, jobs, power };
}
async function stop() {
  for (const { follow, store } of running.splice(0)) {
    await follow.stop(5000);
    await store.close();
  }
}
afterEach(stop);

async function seed(store: SqliteStore, names: string[]) {
  if (!(await store.hosts.get("template"))) {
    await store.hosts.add({ name: "template", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    await store.layouts.add("template", { disks: [], boot: { firmware: "uefi" } });
    await store.profiles.put({ name: "web", host: "template", layoutVersion: null, at: null, options: {} });
  }
  for (const [i, name] of names.entries()) {
    await store.hosts.add({ name, tokenHash: "x", smbiosUuid: null, macs: [macOf(name)], amandaConfig: null, dleMap: {} });
    await store.power.put(name, { kind: "ipmi", address: `10.0.0.${i + 10}`, port: 623, user: "admin", cipherSuite: 3 }, "pw");
    machines.set(name, { power: "off", boot: "none", calls: [] });
  }
}
const macOf = (name: string) => `52:54:00:f0:00:${name.replace(/\D/g, "").padStart(2, "0")}`;
const clone = (name: string) => ({ mac: macOf(name), kind: "clone" as const, profile: "web", actor: "test" });

async function until(what: string, f: () => boolean | Promise<boolean>): Promise<void> {
  const end = Date.now() + 5000;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("clones powered in waves, and the boot override cleared after the end", () => {
  it("five clones, two slots: two powered, the next when a job ends; the batch survives a restart", { timeout: 20_000 }, async () => {
    const file = join(tempDir(), "lifeboat.db");
    let { store, jobs, power } = await serve(file);
    const names = ["m1", "m2", "m3", "m4", "m5"];
    await seed(store, names);
    const armed = await power.armWave(names.map(clone), false, "test");
    expect(armed.map((j) => [j.state, j.powerWave?.status, j.powerWave?.position])).toEqual([
      ["armed", "powered", 1],
      ["armed", "powered", 2],
      ["armed", "waiting", 3],
      ["armed", "waiting", 4],
      ["armed", "waiting", 5],
    ]);
    expect(armed[0]!.powerWave!.note).toBe("set a one-time PXE boot (UEFI), then power on");
    expect(names.map((n) => machines.get(n)!.calls)).toEqual([["set-boot pxe uefi", "on"], ["set-boot pxe uefi", "on"], [], [], []]);
    // The API and jobs list show where each one is.
    expect(jobView(armed[2]!).powerWave).toMatchObject({ status: "waiting", position: 3, of: 5, force: false });

    // m1's job ends (cancelled here; done, failed and expired alike): its slot goes to m3, its boot flag is cleared.
    await jobs.cancel(armed[0]!.id, "admin");
    await until("m3 powered", () => machines.get("m3")!.power === "on");
    await until("m1's boot flag cleared", () => machines.get("m1")!.boot === "none");
    expect(machines.get("m1")!.calls).toEqual(["set-boot pxe uefi", "on", "clear-boot"]);
    expect(powerHistory(await jobs.events(armed[0]!.id)).map((h) => h.step)).toEqual(["status", "set-boot", "on", "clear-boot"]);
    expect((await jobs.get(armed[3]!.id)).powerWave!.status).toBe("waiting");

    // Lifeboat stops; while it is down, m2's job fails. Started again, it goes on from the store.
    await stop();
    const offline = new SqliteStore(file);
    await offline.jobs.update(armed[1]!.id, { state: "failed", error: "test" });
    await offline.close();
    ({ store, jobs, power } = await serve(file));
    await until("m4 powered", () => machines.get("m4")!.power === "on");
    await until("m2's boot flag cleared", () => machines.get("m2")!.boot === "none");
    expect((await Promise.all(armed.map((j) => jobs.get(j.id)))).map((j) => [j.state, j.powerWave!.status])).toEqual([
      ["cancelled", "powered"],
      ["failed", "powered"],
      ["armed", "powered"],
      ["armed", "powered"],
      ["armed", "waiting"],
    ]);
    // Nobody was powered twice, and m5 waits for a slot.
    expect(names.map((n) => machines.get(n)!.calls.filter((c) => c === "on").length)).toEqual([1, 1, 1, 1, 0]);
  });

  it("at its turn: a machine that is on is not cycled (its job cancelled), a silent BMC leaves its job armed, the next is powered", { timeout: 20_000 }, async () => {
    const { store, jobs, power } = await serve(join(tempDir(), "lifeboat.db"));
    await seed(store, ["m6", "m7", "m8", "m9"]);
    machines.get("m6")!.power = "on";
    machines.get("m7")!.silent = true;
    const armed: JobRecord[] = await power.armWave(["m6", "m7", "m8", "m9"].map(clone), false, "test");
    expect(armed.map((j) => [j.state, j.powerWave!.status, j.powerWave!.note])).toEqual([
      ["cancelled", "refused", "m6 is on: not power-cycled without --force (its job cancelled)"],
      ["armed", "failed", `BMC of m7 does not answer; ${armed[1]!.id} stays armed: power m7 on by hand`],
      ["armed", "powered", "set a one-time PXE boot (UEFI), then power on"],
      ["armed", "powered", "set a one-time PXE boot (UEFI), then power on"],
    ]);
    expect(machines.get("m6")!.calls).toEqual([]);
    // The cancelled job never had a boot flag set: nothing to clear.
    expect(powerHistory(await jobs.events(armed[0]!.id)).map((h) => h.step)).toEqual(["status"]);
    // Every MAC needs a host with a power config, checked before anything is armed.
    await store.hosts.add({ name: "bare", tokenHash: "x", smbiosUuid: null, macs: ["52:54:00:f0:00:99"], amandaConfig: null, dleMap: {} });
    await expect(power.armWave([clone("m99"), { ...clone("x"), mac: "52:54:00:f0:01:00" }], false, "test")).rejects.toThrow(
      "host bare (52:54:00:f0:00:99) has no power config (lifeboat hosts power-config bare --ipmi|--redfish|--wol); nothing armed",
    );
    expect(await store.jobs.activeForMac("52:54:00:f0:00:99")).toBeUndefined();
  });
});
