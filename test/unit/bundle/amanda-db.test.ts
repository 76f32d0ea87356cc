import { describe, expect, it } from "vitest";
import { type AmandaPlaces, placesOf, putBackPlan } from "../../../server/bundle/amanda-db.ts";

const places: AmandaPlaces = {
  configDir: "/etc/amanda/daily",
  logdir: "/var/log/amanda/daily",
  indexdir: "/var/lib/amanda/daily/index",
  tapelist: "/etc/amanda/daily/tapelist",
  diskfile: "/etc/amanda/daily/disklist",
  includes: ["/etc/amanda/template.d/dumptypes"],
  changerFiles: ["/srv/vtapes/state"],
  dumpuser: "backup",
};

describe("putBackPlan: which bundle files go back where", () => {
  it("writes what is missing, leaves what is the same, and refuses other bytes without --force", () => {
    const files = [
      { path: "/etc/amanda/daily/amanda.conf", state: "missing" as const },
      { path: "/var/log/amanda/daily/log.20261201010101.0", state: "same" as const },
      { path: "/var/lib/amanda/daily/index/web1/_/20261201010101_0.gz", state: "differs" as const },
      { path: "/etc/amanda/template.d/dumptypes", state: "missing" as const },
      { path: "/srv/vtapes/state", state: "missing" as const },
    ];
    expect(putBackPlan(places, files, false)).toEqual({
      write: ["/etc/amanda/daily/amanda.conf", "/etc/amanda/template.d/dumptypes", "/srv/vtapes/state"],
      unchanged: ["/var/log/amanda/daily/log.20261201010101.0"],
      conflicts: ["/var/lib/amanda/daily/index/web1/_/20261201010101_0.gz"],
      outside: [],
    });
    expect(putBackPlan(places, files, true).write).toContain("/var/lib/amanda/daily/index/web1/_/20261201010101_0.gz");
  });

  it("never writes outside the config's places: other files, traversal, the places' parents, relative paths", () => {
    const hostile = ["/etc/shadow", "/etc/amanda/daily/../../shadow", "/etc/amanda/dailyX/amanda.conf", "/etc/amanda", "/srv/vtapes/slot1/00001.X", "etc/amanda/daily/x", "/var/log/amanda/daily"];
    const plan = putBackPlan(places, hostile.map((path) => ({ path, state: "missing" as const })), true);
    expect(plan.outside).toEqual(hostile);
    expect(plan.write).toEqual([]);
  });
});

describe("placesOf: setup.json as the export wrote it, checked", () => {
  it("takes a well-formed one", () => {
    expect(placesOf({ ...places, name: "daily", vtapeRoot: "/srv/vtapes", holdingDirs: [] })).toEqual(places);
  });
  it("refuses relative or climbing paths and odd user names, in one line", () => {
    expect(placesOf({ ...places, logdir: "log" })).toBe("logdir is not an absolute path");
    expect(placesOf({ ...places, configDir: "/etc/amanda/../x" })).toBe("configDir is not an absolute path");
    expect(placesOf({ ...places, includes: ["/ok", "../no"] })).toBe("includes is not a list of absolute paths");
    expect(placesOf({ ...places, dumpuser: "root; rm -rf /" })).toBe("dumpuser is not a user name");
    expect(placesOf(null)).toBe("not an object");
  });
});
