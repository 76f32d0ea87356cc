import { describe, expect, it } from "vitest";
import { createPlanner, planForPeople, restoreChains } from "../../../server/jobs/job-plan.ts";
import type { EndState } from "../../../server/plan/steps.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { fixtureLayout, sameMachine } from "../recovery/fixtures.ts";
import { dump, job } from "./job-fixture.ts";

const none = new Map<string, { hasPassphrase: boolean; hasSecretKey: boolean }>();

describe("restore chains for a job", () => {
  const catalog = [
    dump({ disk: "/", level: 0, datestamp: "20261101000000" }),
    dump({ disk: "/", level: 1, datestamp: "20261102000000" }),
    dump({ disk: "/home", level: 0, datestamp: "20261101000000", compression: "none", program: "DUMP" }),
    dump({ disk: "/srv", level: 0, datestamp: "20261101000000", compression: "custom", compressProgram: "/usr/bin/zstd" }),
  ];

  it("maps each DLE to its mount point, parents first, with program and compression the agent undoes", () => {
    const chains = restoreChains(catalog, "web1", { "/home": "/home", "/": "/", "/srv": "/srv" }, null, none);
    expect(chains.map((c) => [c.mountpoint, c.program, c.dumps.map((d) => `${d.level}:${d.compression}`)])).toEqual([
      ["/", "gtar", ["0:gzip", "1:gzip"]],
      ["/srv", "gtar", ["0:zstd"]],
      ["/home", "dump", ["0:none"]],
    ]);
  });

  it("honours the point in time", () => {
    expect(restoreChains(catalog, "web1", { "/": "/" }, "20261101", none)[0]!.dumps.map((d) => d.level)).toEqual([0]);
  });

  it("an encrypted dump: decrypted with its config's key, refused by name without it (dump and missing key)", () => {
    const simple = dump({ disk: "/", level: 0, datestamp: "20261101000000", encrypted: true, encryption: { side: "server", program: "/usr/sbin/amcryptsimple" } });
    const gpg = dump({ disk: "/", level: 0, datestamp: "20261101000000", encrypted: true, encryption: { side: "client", program: "/usr/sbin/amgpgcrypt" } });
    const { amanda } = simple;
    expect(() => restoreChains([simple], "web1", { "/": "/" }, null, none)).toThrow(
      `web1:"/" L0 20261101000000 is encrypted server-side with /usr/sbin/amcryptsimple; Lifeboat holds no passphrase for Amanda config ${amanda}: lifeboat amanda key set ${amanda} --passphrase-file FILE`,
    );
    const passOnly = new Map([[amanda, { hasPassphrase: true, hasSecretKey: false }]]);
    expect(restoreChains([simple], "web1", { "/": "/" }, null, passOnly)[0]!.dumps[0]!.decrypt).toEqual({ amanda, side: "server", program: "amcryptsimple" });
    expect(() => restoreChains([gpg], "web1", { "/": "/" }, null, passOnly)).toThrow(
      `is encrypted client-side with /usr/sbin/amgpgcrypt; Lifeboat holds no OpenPGP secret key for Amanda config ${amanda} (a client-side key, kept on host web1)`,
    );
    const other = dump({ disk: "/", level: 0, datestamp: "20261101000000", encrypted: true, encryption: { side: "server", program: "/usr/sbin/amcrypt-ossl" } });
    expect(() => restoreChains([other], "web1", { "/": "/" }, null, passOnly)).toThrow("which Lifeboat does not decrypt (amcryptsimple, amgpgcrypt)");
    expect(restoreChains(catalog, "web1", { "/": "/" }, null, none)[0]!.dumps.every((d) => d.decrypt === undefined)).toBe(true);
    expect(() =>
      restoreChains([dump({ disk: "/", level: 0, datestamp: "20261101000000", compression: "custom", compressProgram: "/opt/lzfoo" })], "web1", { "/": "/" }, null, none),
    ).toThrow("compression custom (/opt/lzfoo) is not one the rescue agent can undo");
  });

  it("a DLE with no dumps is an error naming it, never a partial plan", () => {
    expect(() => restoreChains(catalog, "web1", { "/": "/", "/var": "/var" }, null, none)).toThrow('no dumps of web1:"/var" in the catalog');
  });
});

describe("the planner's end state: the job's, else the profile's, else reboot", () => {
  it("ends the plan with plan_done and the end state it serves", async () => {
    const store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    await store.layouts.add("web1", { ...fixtureLayout("btrfs-subvols"), dles: {} });
    const planner = createPlanner(store);
    const profile = async (endState?: EndState) => store.profiles.put({ name: "p", host: "web1", layoutVersion: null, at: null, options: endState ? { endState } : {} });
    const cases: Array<[EndState | undefined, EndState | undefined, EndState]> = [
      [undefined, undefined, "reboot"],
      ["poweroff", undefined, "poweroff"],
      ["poweroff", "hold", "hold"],
      [undefined, "poweroff", "poweroff"],
    ];
    for (const [fromProfile, fromJob, served] of cases) {
      const r = await planner(job({ profile: "p", options: fromJob ? { endState: fromJob } : {} }), await profile(fromProfile));
      expect(r.ok && [r.endState, r.script.trimEnd().split("\n").at(-1)], `${fromProfile} ${fromJob}`).toEqual([served, `plan_done ${served}`]);
    }
    await store.close();
  });
});

describe("the planner's network lines (issue 21): the rescue network and the NIC mapping, shown before the plan", () => {
  it("a dry run names the rescue network and the captured NICs; once the machine reported its NICs, the mapping and its map_nic steps", async () => {
    const store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    const layout = { ...fixtureLayout("btrfs-subvols"), dles: {} };
    layout.system.nics = [{ name: "ens3", mac: "52:54:00:21:00:01", driver: "e1000", defaultRoute: true }, { name: "ens4", mac: "52:54:00:21:00:02", driver: "e1000", defaultRoute: false }];
    await store.layouts.add("web1", layout);
    const profile = await store.profiles.put({ name: "p", host: "web1", layoutVersion: null, at: null, options: { nicMap: { ens4: "52:54:00:21:00:0a" } } });
    const planner = createPlanner(store);
    const rescueNet = { vlan: 20, address: "10.0.5.20/24", gateway: "10.0.5.1" };
    const dry = await planner(job({ profile: "p", options: { rescueNet } }), profile);
    if (!dry.ok) throw new Error(dry.reason);
    expect(planForPeople(dry)).toBe(
      "# rescue network: static 10.0.5.20/24 (gateway 10.0.5.1) on VLAN 20 on the NIC that booted\n" +
        "# NIC mapping: made once the machine reports its NICs (captured: ens3 52:54:00:21:00:01, ens4 52:54:00:21:00:02)\n" +
        dry.script,
    );
    expect(dry.script).toMatch(/^plan_begin /);
    const hello = { disks: sameMachine(layout), hardware: { firmware: "bios" as const, macs: ["52:54:00:21:00:0a", "52:54:00:21:00:0b"] } };
    const booted = await planner(job({ profile: "p", hello, mapping: null, options: {} }), profile);
    if (!booted.ok) throw new Error(booted.reason);
    expect(booted.detail.network).toEqual([
      "rescue network: DHCP on the NIC that booted",
      "NIC ens3 52:54:00:21:00:01 → 52:54:00:21:00:0b [by order]",
      "NIC ens4 52:54:00:21:00:02 → 52:54:00:21:00:0a [the admin's mapping]",
    ]);
    expect(booted.script).toContain("map_nic ens3 52:54:00:21:00:01 52:54:00:21:00:0b\nmap_nic ens4 52:54:00:21:00:02 52:54:00:21:00:0a\n");
    await store.close();
  });
});

describe("a dry run of a disk with nothing to match it by (issue 22: jobs arm --power on a virtio disk without a serial)", () => {
  it("stands the captured disk in for itself and says the real plan waits for a mapping; the booted machine's plan still does", async () => {
    const store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    const captured = fixtureLayout("btrfs-subvols");
    const disk = captured.disks[0]!;
    const layout = { ...captured, dles: {}, disks: [{ ...disk, serial: null, wwn: null, byId: [] }, ...captured.disks.slice(1)] };
    await store.layouts.add("web1", layout);
    const profile = await store.profiles.put({ name: "p", host: "web1", layoutVersion: null, at: null, options: {} });
    const planner = createPlanner(store);
    const dry = await planner(job({ profile: "p" }), profile);
    if (!dry.ok) throw new Error(dry.reason);
    const wait = `waits for a mapping: captured disk ${disk.name} has no serial, WWN or by-id; once the machine has reported its disks: lifeboat jobs map JOB ${disk.name}=TARGET`;
    expect(dry.detail.waits).toEqual([wait]);
    expect(planForPeople(dry)).toBe(`${dry.detail.network!.map((l) => `# ${l}\n`).join("")}# ${wait}\n${dry.script}`);
    expect(dry.script).toMatch(new RegExp(`^partition /dev/${disk.name} `, "m"));
    // Booted: the same disk without a serial is not taken on its name; the admin's mapping is needed.
    const hello = { disks: sameMachine(layout), hardware: { firmware: "bios" as const, macs: [] } };
    const booted = await planner(job({ profile: "p", hello, mapping: null }), profile);
    expect(booted).toEqual({ ok: false, reason: expect.stringContaining(`has no serial, WWN or by-id to match: give an explicit mapping ${disk.name}=TARGET`) });
    await store.close();
  });

  it("a captured disk with a serial is matched in the dry run as before, with no waiting line", async () => {
    const store = new SqliteStore(":memory:");
    await store.hosts.add({ name: "web1", tokenHash: "x", smbiosUuid: null, macs: [], amandaConfig: null, dleMap: {} });
    await store.layouts.add("web1", { ...fixtureLayout("btrfs-subvols"), dles: {} });
    const profile = await store.profiles.put({ name: "p", host: "web1", layoutVersion: null, at: null, options: {} });
    const dry = await createPlanner(store)(job({ profile: "p" }), profile);
    if (!dry.ok) throw new Error(dry.reason);
    expect(dry.detail.waits).toBeUndefined();
    expect(dry.detail.mapping.map((m) => m.matchedBy)).not.toContain("mapping");
    await store.close();
  });
});
