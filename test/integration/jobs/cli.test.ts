import { writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Planner } from "../../../server/jobs/job-plan.ts";
import type { JobView } from "../../../server/jobs/job-views.ts";
import type { RunningServer } from "../../../server/serve.ts";
import { execa } from "execa";
import { hashToken } from "../../../server/tokens.ts";
import { lifeboat, lifeboatBin } from "../../helpers/cli.ts";
import { bootToken, dhcpAnswered, seedHost, standInPlan, testServer } from "../../helpers/server.ts";
import { tempDir } from "../../helpers/tmp.ts";

// Stand-in planner (the plan builder has its own tests): a two-step script.
const planner: Planner = async (job) => standInPlan(`plan_begin 1 ${job.profile} 2\nplan_done\n`, 2, { bytesTotal: 10 });

// Each CLI call is a real process (tsx start-up included): allow for a loaded machine.
describe("lifeboat CLI against a running server", { timeout: 180_000 }, () => {
  let server: RunningServer;
  let dataDir: string;
  const cli = (...args: string[]) => lifeboat([...args, "--data-dir", dataDir, "--server", server.httpUrl]);

  beforeAll(async () => {
    dataDir = tempDir();
    server = await testServer({ dataDir, planner });
    await seedHost(server, "web1", "52:54:00:ee:00:01");
  });
  afterAll(async () => server.stop(0));

  it("sets a profile, assigns it, arms, shows, plans, cancels, logs", async () => {
    const p = await cli("profiles", "set", "web", "--host", "web1", "--at", "20261130", "--json");
    expect(p.exitCode).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ name: "web", host: "web1", at: "20261130" });
    expect((await cli("hosts", "assign", "52-54-00-EE-00-02", "web")).stdout.trim()).toBe("52:54:00:ee:00:02 → web");
    const arm = await cli("jobs", "arm", "5254.00ee.0002", "--json");
    expect(arm.exitCode).toBe(0);
    const [job] = JSON.parse(arm.stdout) as JobView[];
    expect(job).toMatchObject({ mac: "52:54:00:ee:00:02", profile: "web", at: "20261130", state: "armed" });
    const list = JSON.parse((await cli("jobs", "list", "--active", "--json")).stdout) as JobView[];
    expect(list.map((j) => j.id)).toContain(job!.id);
    const table = (await cli("jobs", "list")).stdout;
    // Not booted yet: no server serves it (the last column).
    expect(table).toMatch(new RegExp(`^${job!.id}\\s+52:54:00:ee:00:02\\s+recover\\s+web\\s+armed\\s.*\\s-$`, "m"));
    expect(table.split("\n")[0]).toMatch(/\sSERVER$/);
    const shown = (await cli("jobs", "show", job!.id)).stdout;
    expect(shown).toContain("state:     armed");
    expect(shown).toContain("served by: no server yet (not booted)");
    expect((await cli("jobs", "plan", job!.id)).stdout).toBe("plan_begin 1 web 2\nplan_done"); // execa strips the last newline
    // Before the machine reported its disks a kernel name means nothing: refused in one line.
    const early = await cli("jobs", "map", job!.id, "sda=vdb");
    expect(early.exitCode).toBe(2);
    expect(early.stderr.trim()).toMatch(/^lifeboat: POST \/api\/v1\/jobs\/job-\w+\/map: 400 job job-\w+: mapping sda=vdb: a kernel name may name another disk at the next boot; .* serial:…, wwn:… or by-id:…$/);
    const mapped = await cli("jobs", "map", job!.id, "sda=serial:NEW-1", "sdb=none");
    expect(mapped.exitCode, mapped.stderr).toBe(0);
    expect(mapped.stdout.trim()).toBe(`${job!.id} mapping: sda=disk (serial NEW-1) sdb=none`);
    expect((await cli("jobs", "show", job!.id)).stdout).toContain("mapping:   sda=disk (serial NEW-1) sdb=none");
    expect((await cli("jobs", "cancel", job!.id)).stdout.trim()).toBe(`${job!.id} cancelled`);
    const log = (await cli("jobs", "log", job!.id)).stdout;
    expect(log).toMatch(/armed \{"by":"api:127\.0\.0\.1"/);
    expect(log).toMatch(/mapped/);
    expect(log).toMatch(/cancelled/);
  });

  it("arms clones from a MAC file and a range", async () => {
    const file = join(dataDir, "macs.txt");
    writeFileSync(file, "# rack 3\n52:54:00:ee:01:01\n52:54:00:ee:01:02\n\n");
    const a = await cli("jobs", "arm", "--clone", "web", "--macs", file, "--hostname-pattern", "web-{n}", "--json");
    expect(a.exitCode).toBe(0);
    expect((JSON.parse(a.stdout) as JobView[]).map((j) => j.hostname)).toEqual(["web-1", "web-2"]);
    const r = await cli("jobs", "arm", "--clone", "web", "--range", "52:54:00:ee:02:00-52:54:00:ee:02:03", "--json");
    expect((JSON.parse(r.stdout) as JobView[]).map((j) => j.mac)).toEqual(["52:54:00:ee:02:00", "52:54:00:ee:02:01", "52:54:00:ee:02:02", "52:54:00:ee:02:03"]);
    const win = await cli("jobs", "arm", "--clone", "web", "--any-unknown", "10", "--json");
    expect(JSON.parse(win.stdout)).toMatchObject({ profile: "web", armed: 0 });
    expect((await cli("jobs", "window")).stdout).toMatch(/^open until .*: any unknown machine becomes a clone of web \(0 so far\)$/);
    expect((await cli("jobs", "window", "--close")).stdout.trim()).toBe("closed");
    // Limited to a vendor OUI and one machine: only those become clones.
    const only = await cli("jobs", "arm", "--clone", "web", "--any-unknown", "10", "--only", "00-25-90, 52:54:00:EE:09:01", "--json");
    expect(JSON.parse(only.stdout)).toMatchObject({ profile: "web", only: ["00:25:90", "52:54:00:ee:09:01"] });
    expect((await cli("jobs", "window")).stdout).toMatch(/^open until .*: an unknown machine under 00:25:90, 52:54:00:ee:09:01 becomes a clone of web \(0 so far\)$/);
    dhcpAnswered(server, "52:54:00:ee:09:02");
    expect((await server.app.inject({ url: "/boot/ipxe?mac=52:54:00:ee:09:02" })).body).toMatch(/^exit 1$/m);
    dhcpAnswered(server, "52:54:00:ee:09:01");
    expect((await server.app.inject({ url: "/boot/ipxe?mac=52:54:00:ee:09:01" })).body).toContain("/boot/vmlinuz");
    expect((await cli("jobs", "window", "--close")).stdout.trim()).toBe("closed");
    const stray = await cli("jobs", "arm", "52:54:00:ee:09:03", "--only", "00:25:90");
    expect([stray.exitCode, stray.stderr.trim()]).toEqual([2, "lifeboat: --only goes with --any-unknown"]);
    const badPrefix = await cli("jobs", "arm", "--clone", "web", "--any-unknown", "10", "--only", "00:25:9");
    expect(badPrefix.exitCode).toBe(2);
    expect(badPrefix.stderr).toContain('not a MAC or MAC prefix: "00:25:9"');
    const bad = await cli("jobs", "arm", "--clone", "web", "--macs", join(dataDir, "nope.txt"));
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr.trim()).toBe(`lifeboat: ${join(dataDir, "nope.txt")}: cannot read (ENOENT)`);
  });

  it("watch follows a job to the end and exits 0 when done", async () => {
    await seedHost(server, "db1", "52:54:00:ee:03:01");
    const [job] = JSON.parse((await cli("jobs", "arm", "52:54:00:ee:03:01", "--json")).stdout) as JobView[];
    const watching = execa(lifeboatBin, ["jobs", "watch", job!.id, "--data-dir", dataDir, "--server", server.httpUrl], { reject: false, stdin: "ignore" });
    // Drive the job only once watch has its first snapshot, so it sees every step.
    await new Promise<void>((resolve) => {
      let seen = "";
      watching.stdout!.on("data", (d: Buffer) => {
        seen += d.toString();
        if (seen.includes(" armed")) resolve();
      });
    });
    const token = await bootToken(server, job!);
    const call = (path: string, body?: unknown) =>
      fetch(`${server.httpUrl}/api/v1/agent/jobs/${job!.id}/${path}`, {
        method: path === "plan" ? "GET" : "POST",
        headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    await call("hello", { disks: [] });
    await call("plan");
    for (const step of [1, 2]) {
      await call("events", { type: "step-start", step, of: 2, name: "x" });
      await call("events", { type: "step-end", step, of: 2, name: "x", exitStatus: 0 });
    }
    await call("events", { type: "done" });
    const w = await watching;
    expect(w.exitCode).toBe(0);
    expect(w.stdout).toMatch(/ done$/m);
    expect(w.stdout).toMatch(/step 2\/2 x: exit 0/);
  });

  it("hosts add, token, import-rear and rm change the running server's store through its API, audited", async () => {
    const add = await cli("hosts", "add", "db9", "--mac", "52-54-00-EE-09-01", "--dle", "Lab Docs=/srv/docs", "--json");
    expect(add.exitCode, add.stderr).toBe(0);
    const added = JSON.parse(add.stdout) as { name: string; macs: string[]; dleMap: Record<string, string>; token: string };
    expect(added).toMatchObject({ name: "db9", macs: ["52:54:00:ee:09:01"], dleMap: { "Lab Docs": "/srv/docs" } });
    expect((await server.ctx.store.hosts.get("db9"))!.tokenHash).toBe(hashToken(added.token));
    const again = await cli("hosts", "add", "db9");
    expect([again.exitCode, again.stderr.trim()]).toEqual([2, "lifeboat: POST /api/v1/hosts: 400 host db9 already exists"]);
    const badName = await cli("hosts", "add", "db 9");
    expect([badName.exitCode, badName.stderr.trim()]).toEqual([2, "lifeboat: POST /api/v1/hosts: 400 name: expected letters, digits, '.', '_' or '-'"]);

    const token = await cli("hosts", "token", "db9");
    expect(token.exitCode, token.stderr).toBe(0);
    expect((await server.ctx.store.hosts.get("db9"))!.tokenHash).toBe(hashToken(token.stdout.trim()));
    expect(token.stdout.trim()).not.toBe(added.token);

    const rear = fileURLToPath(new URL("../../fixtures/rear/lvm-xfs.disklayout.conf", import.meta.url));
    const imported = await cli("hosts", "import-rear", "db9", rear, "--json");
    expect(imported.exitCode, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout)).toMatchObject({ host: "db9", version: 1 });
    expect((await server.ctx.store.layouts.get("db9"))!.version).toBe(1);
    const noHost = await cli("hosts", "import-rear", "nohost", rear);
    expect([noHost.exitCode, noHost.stderr.trim()]).toEqual([2, "lifeboat: PUT /api/v1/hosts/nohost/layout: 404 no host named nohost"]);

    expect((await cli("hosts", "rm", "db9")).stdout.trim()).toBe("host db9 removed");
    expect(await server.ctx.store.hosts.get("db9")).toBeUndefined();
    const gone = await cli("hosts", "rm", "db9");
    expect([gone.exitCode, gone.stderr.trim()]).toEqual([2, "lifeboat: DELETE /api/v1/hosts/db9: 404 no host named db9"]);
    const audit = await server.ctx.store.audit.list({ target: "host:db9" });
    expect(audit.map((a) => [a.actor, a.action]).reverse()).toEqual([
      ["api:127.0.0.1", "host.add"],
      ["api:127.0.0.1", "host.token"],
      ["api:127.0.0.1", "host.layout"],
      ["api:127.0.0.1", "host.rm"],
    ]);
  });

  it("catalog refresh asks the server, which refreshes only its own Amanda configs", async () => {
    const none = await cli("catalog", "refresh", "--json");
    expect([none.exitCode, none.stderr.trim()]).toEqual([2, "lifeboat: the server has no Amanda configs (`amanda:` list in its config); to read one directory, use catalog list --amanda-dir DIR"]);
    const unknown = await cli("catalog", "refresh", "--amanda", "nope");
    expect([unknown.exitCode, unknown.stderr.trim()]).toEqual([2, "lifeboat: POST /api/v1/catalog/refresh: 404 no Amanda config named nope in the Lifeboat config"]);
  });

  it("profiles set and jobs arm take the plan choices (--new-uuids, --grow, --end-state); a bad one is a one-line 400", async () => {
    const p = await cli("profiles", "set", "web-fresh", "--host", "web1", "--new-uuids", "--grow", "/dev/sda2", "--end-state", "poweroff", "--json");
    expect(p.exitCode, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ name: "web-fresh", options: { newUuids: true, grow: "/dev/sda2", endState: "poweroff" } });
    expect((await cli("profiles", "list")).stdout).toMatch(/^web-fresh\s+web1\s+latest\s+newest\s+-\s+poweroff$/m);
    const arm = await cli("jobs", "arm", "52:54:00:ee:04:01", "--profile", "web-fresh", "--grow", "/dev/nvme0n1p3", "--end-state", "hold", "--json");
    expect(arm.exitCode, arm.stderr).toBe(0);
    const [job] = JSON.parse(arm.stdout) as JobView[];
    expect(job!.options).toEqual({ grow: "/dev/nvme0n1p3", endState: "hold" });
    expect((await cli("jobs", "show", job!.id)).stdout).toContain("options:   /dev/nvme0n1p3 grows, once done: hold");
    const endState = await cli("profiles", "set", "web-fresh", "--host", "web1", "--end-state", "halt");
    expect([endState.exitCode, endState.stderr.split("\n")[0]]).toEqual([2, "error: option '--end-state <state>' argument 'halt' is invalid. Allowed choices are reboot, poweroff, hold."]);
    const bad = await cli("jobs", "arm", "52:54:00:ee:04:02", "--profile", "web-fresh", "--grow", "sda2");
    expect([bad.exitCode, bad.stderr.trim()]).toEqual([2, "lifeboat: POST /api/v1/jobs: 400 options.grow: expected a captured partition, e.g. /dev/sda2 or /dev/nvme0n1p3"]);
    const window = await cli("jobs", "arm", "--clone", "web-fresh", "--any-unknown", "5", "--new-uuids");
    expect([window.exitCode, window.stderr.trim()]).toEqual([2, "lifeboat: --any-unknown takes the profile's --new-uuids/--grow/--end-state/--rescue-*/--nic-map: set them with lifeboat profiles set"]);
  });

  it("the rescue network (issue 21): set on a profile, taken by the job when armed, overridden per job, shown by jobs show and on the kernel command line of hosts boot-script; bad values are one-line errors", async () => {
    const p = await cli("profiles", "set", "web-net", "--host", "web1", "--rescue-bond", "52:54:00:EE:05:01,52-54-00-ee-05-02", "--rescue-bond-mode", "802.3ad",
      "--rescue-vlan", "20", "--rescue-ip", "10.0.5.20/24", "--rescue-gateway", "10.0.5.1", "--rescue-dns", "10.0.5.2", "--rescue-dns", "10.0.5.3", "--rescue-server", "http://10.0.5.1:8080/", "--json");
    expect(p.exitCode, p.stderr).toBe(0);
    const net = { bond: { mode: "802.3ad", macs: ["52:54:00:ee:05:01", "52:54:00:ee:05:02"] }, vlan: 20, address: "10.0.5.20/24", gateway: "10.0.5.1", dns: ["10.0.5.2", "10.0.5.3"], server: "http://10.0.5.1:8080" };
    expect(JSON.parse(p.stdout)).toMatchObject({ options: { rescueNet: net } });
    const arm = await cli("jobs", "arm", "52:54:00:ee:05:01", "--profile", "web-net", "--json");
    expect(arm.exitCode, arm.stderr).toBe(0);
    const [job] = JSON.parse(arm.stdout) as JobView[];
    expect(job!.options.rescueNet).toEqual(net);
    const words = "static 10.0.5.20/24 (gateway 10.0.5.1, DNS 10.0.5.2, 10.0.5.3) on VLAN 20 on bond 802.3ad of 52:54:00:ee:05:01, 52:54:00:ee:05:02; Lifeboat at http://10.0.5.1:8080";
    expect((await cli("jobs", "show", job!.id)).stdout).toContain(`network:   ${words} (the rescue system)`);
    const script = (await lifeboat(["hosts", "boot-script", "52:54:00:ee:05:01", "--data-dir", dataDir])).stdout;
    expect(script).toContain("lifeboat.server=http://10.0.5.1:8080 ");
    expect(script).toContain(" lifeboat.bond=802.3ad,52:54:00:ee:05:01,52:54:00:ee:05:02 lifeboat.vlan=20 lifeboat.ip=10.0.5.20/24 lifeboat.gw=10.0.5.1 lifeboat.dns=10.0.5.2,10.0.5.3");
    expect((await cli("jobs", "cancel", job!.id)).exitCode).toBe(0);
    // The NIC mapping for after the restore, checked like the rest.
    const nm = await cli("jobs", "arm", "52:54:00:ee:05:03", "--profile", "web-net", "--nic-map", "ens3=52-54-00-EE-05-09", "--json");
    expect(nm.exitCode, nm.stderr).toBe(0);
    const nmJob = (JSON.parse(nm.stdout) as JobView[])[0]!;
    expect(nmJob.options.nicMap).toEqual({ ens3: "52:54:00:ee:05:09" });
    expect((await cli("jobs", "show", nmJob.id)).stdout).toContain("NICs:      ens3=52:54:00:ee:05:09 (after the restore)");
    expect((await cli("jobs", "cancel", nmJob.id)).exitCode).toBe(0);
    // The job's own network wins over the profile's.
    const own = await cli("jobs", "arm", "52:54:00:ee:05:01", "--profile", "web-net", "--rescue-vlan", "30", "--json");
    expect(own.exitCode, own.stderr).toBe(0);
    expect((JSON.parse(own.stdout) as JobView[])[0]!.options.rescueNet).toEqual({ vlan: 30 });
    for (const [args, err] of [
      [["--rescue-ip", "10.0.5.20"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.rescueNet.address: expected an IPv4 address with its prefix, e.g. 10.0.5.20/24"],
      [["--rescue-gateway", "10.0.5.1"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.rescueNet: a gateway or DNS servers go with a static address (without one the rescue system takes them from DHCP)"],
      [["--rescue-bond", "52:54:00:ee:05:01"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.rescueNet.bond.macs: a bond needs two to eight NICs (MACs)"],
      [["--rescue-bond", "52:54:00:ee:05:01,nope"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.rescueNet.bond.macs.1: expected a MAC address"],
      [["--rescue-server", "http://10.0.5.1:8080/x y"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.rescueNet.server: expected Lifeboat's URL as the rescue system reaches it: scheme, host and port, e.g. http://10.0.20.1:8080"],
      [["--rescue-vlan", "4095"], 'lifeboat: --rescue-vlan: expected a VLAN id 1-4094, got "4095"'],
      [["--rescue-bond-mode", "802.3ad"], "lifeboat: --rescue-bond-mode goes with --rescue-bond MAC,MAC"],
      [["--nic-map", "../x=52:54:00:ee:05:09"], "lifeboat: PUT /api/v1/profiles/web-bad: 400 options.nicMap.../x: expected a NIC name (1-15 letters, digits, '_', '.', '-')"],
      [["--nic-map", "ens3"], 'lifeboat: --nic-map: expected NAME=MAC, got "ens3"'],
    ] as const) {
      const r = await cli("profiles", "set", "web-bad", "--host", "web1", ...args);
      expect([r.exitCode, r.stderr.trim()]).toEqual([2, err]);
    }
  });

  it("bad input and an unreachable server are one-line errors", async () => {
    const mac = await cli("jobs", "arm", "not-a-mac");
    expect(mac.exitCode).toBe(2);
    expect(mac.stderr.trim()).toBe('lifeboat: POST /api/v1/jobs: 400 not a MAC address: "not-a-mac" (expected six hex bytes, e.g. 52:54:00:12:34:56)');
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(port));
      });
    });
    const down = await lifeboat(["jobs", "list", "--data-dir", dataDir, "--server", `http://127.0.0.1:${closed}`]);
    expect(down.exitCode).toBe(1);
    expect(down.stderr.trim()).toBe(`lifeboat: cannot reach Lifeboat at http://127.0.0.1:${closed} (ECONNREFUSED); is \`lifeboat serve\` running? (--server URL)`);
  });
});
