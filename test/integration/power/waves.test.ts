/**
 * Clones at scale for real: three machines, each with its own OpenIPMI ipmi_sim as its BMC,
 * armed with `jobs arm --clone web --macs FILE --power` on a server whose power.waveSize is 2.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { type IpmiSim, ipmiSimUnavailable, startIpmiSim } from "../../helpers/ipmi-sim.ts";

const PASSWORD = "rack-bmc-Pa55";
const MACS = ["52:54:00:c1:00:01", "52:54:00:c1:00:02", "52:54:00:c1:00:03"];
const planner: Planner = async (job) => standInPlan(`plan_begin 3 ${job.profile} 1\nplan_done reboot\n`, 1);

describeNeeding(await ipmiSimUnavailable(), "clones powered in waves through three ipmi_sim BMCs", () => {
  const sims: IpmiSim[] = [];
  let server: RunningServer;
  let dataDir: string;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", dataDir, "--server", server.httpUrl]);
  const sets = (sim: IpmiSim) => sim.calls().filter((c) => c.includes(" set "));
  async function until(what: string, f: () => boolean): Promise<void> {
    const end = Date.now() + 20_000;
    while (!f()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  beforeAll(async () => {
    dataDir = tempDir();
    server = await testServer({ dataDir, planner, config: (c) => (c.power.waveSize = 2) });
    await seedHost(server, "template", "52:54:00:c1:00:ff", { disks: [], boot: { firmware: "bios" } });
    expect((await cli("profiles", "set", "web", "--host", "template")).exitCode).toBe(0);
    const pw = join(tempDir(), "bmc-password");
    writeFileSync(pw, `${PASSWORD}\n`, { mode: 0o600 });
    for (const [i, mac] of MACS.entries()) {
      const sim = await startIpmiSim(tempDir(), "admin", PASSWORD);
      sims.push(sim);
      await seedHost(server, `rack${i + 1}`, mac);
      const set = await cli("hosts", "power-config", `rack${i + 1}`, "--ipmi", "127.0.0.1", "--port", String(sim.port), "--user", "admin", "--password-file", pw);
      expect(set.exitCode, set.stderr).toBe(0);
    }
  }, 90_000);
  afterAll(async () => {
    await server?.stop(0);
    for (const sim of sims) await sim.stop();
  });

  it("two at a time: the third machine is powered when a powered one's job ends, whose boot flag is then cleared", { timeout: 90_000 }, async () => {
    const file = join(tempDir(), "rack.txt");
    writeFileSync(file, `# rack C1\n${MACS.join("\n")}\n`);
    const arm = await cli("jobs", "arm", "--clone", "web", "--macs", file, "--power");
    expect(arm.exitCode, arm.stderr).toBe(0);
    expect(arm.stdout).toMatch(new RegExp(`^# the plan for ${MACS[0]} \\(the first of 3\\)\\nplan_begin 3 web 1\\nplan_done reboot\\n\\n3 jobs armed, powered in waves`));
    for (const [i, status] of ["powered 1/3", "powered 2/3", "waiting 3/3"].entries()) expect(arm.stdout).toMatch(new RegExp(`^job-\\w+\\s+${MACS[i]}\\s.*${status}$`, "m"));
    // The first two got a one-time PXE boot (BIOS: no efiboot), then power; the third was not touched.
    expect(sims.map(sets)).toEqual([["0x20 set boot pxe", "0x20 set power 1"], ["0x20 set boot pxe", "0x20 set power 1"], []]);

    const list = JSON.parse((await cli("jobs", "list", "--active", "--json")).stdout) as JobView[];
    const job = (mac: string) => list.find((j) => j.mac === mac)!;
    expect(MACS.map((m) => job(m).powerWave?.status)).toEqual(["powered", "powered", "waiting"]);
    expect((await cli("jobs", "list", "--active")).stdout).toMatch(new RegExp(`^${job(MACS[2]!).id}\\s+${MACS[2]}\\s+clone\\s+web\\s+armed\\s.*waiting 3/3\\s+-$`, "m"));

    // rack1's job ends (cancelled): its slot goes to rack3, and its boot flag is cleared.
    expect((await cli("jobs", "cancel", job(MACS[0]!).id)).exitCode).toBe(0);
    await until("rack3 powered", () => sims[2]!.power() === "on");
    await until("rack1's flag cleared", () => sets(sims[0]!).includes("0x20 set boot none"));
    expect(sets(sims[2]!)).toEqual(["0x20 set boot pxe", "0x20 set power 1"]);
    expect(sets(sims[0]!)).toEqual(["0x20 set boot pxe", "0x20 set power 1", "0x20 set boot none"]);
    const shown = (await cli("jobs", "show", job(MACS[2]!).id)).stdout;
    expect(shown).toMatch(/^power: {5}powered, 3 of 3 in wave-\w+: set a one-time PXE boot \(BIOS\), then power on$/m);
    for (const j of list) await cli("jobs", "cancel", j.id);
  });
});
