/** Recoverability at a glance (issue 24): the pure decision, each reason named. */
import { describe, expect, it } from "vitest";
import type { ImageInfo } from "../../../rescue-image/build.ts";
import type { DrillSummary } from "../../../server/jobs/drill-record.ts";
import { type RecoverabilityInput, assessRecoverability } from "../../../server/jobs/recoverability.ts";
import { fixtureLayout } from "../recovery/fixtures.ts";
import { dump } from "./job-fixture.ts";

const now = new Date("2026-12-06T03:00:00Z");
const image = { builtAt: "2026-12-05T10:00:00Z", kernelVersion: "6.1.0-40-amd64" } as ImageInfo;
const drill = (p: Partial<DrillSummary> = {}): DrillSummary => ({
  job: "job-d1",
  host: "web1",
  endedAt: "2026-12-05T03:00:00Z",
  passed: true,
  reason: null,
  restoreSeconds: 120,
  bootSeconds: 60,
  recoverSeconds: 200,
  bytes: 1000,
  accel: "tcg",
  ...p,
});
const catalog = [
  dump({ disk: "/", level: 0, datestamp: "20261201000000" }),
  dump({ disk: "/", level: 1, datestamp: "20261202000000" }),
  dump({ disk: "/home", level: 0, datestamp: "20261201000000" }),
];

function input(p: Partial<RecoverabilityInput> = {}): RecoverabilityInput {
  return {
    host: { name: "web1", tokenHash: "h", smbiosUuid: null, macs: ["52:54:00:00:00:01"], amandaConfig: "daily", dleMap: { "/": "/", "/home": "/home" }, createdAt: "2026-11-01T00:00:00Z" },
    layout: { host: "web1", version: 3, capturedAt: "2026-12-05T03:17:00Z", document: fixtureLayout("gpt-uefi") },
    pinnedVersion: null,
    at: null,
    catalog,
    keys: new Map(),
    image,
    lastDrill: undefined,
    now,
    layoutMaxAgeDays: 8,
    ...p,
  };
}

describe("assessRecoverability", () => {
  it("a host with a fresh layout, complete chains and a built image is recoverable, with the facts behind it", () => {
    const r = assessRecoverability(input({ lastDrill: drill() }));
    expect(r.reasons).toEqual([]);
    expect(r.recoverable).toBe(true);
    expect(r.layout).toEqual({ version: 3, capturedAt: "2026-12-05T03:17:00Z", ageSeconds: 85_380 });
    expect(r.chains.map((c) => [c.dle, c.ok, c.levels, c.bytes])).toEqual([
      ["/", true, [0, 1], 200],
      ["/home", true, [0], 100],
    ]);
    expect(r.lastDrill).toMatchObject({ passed: true, ageSeconds: 86_400, recoverSeconds: 200 });
  });

  it("a chain missing a level names the gap", () => {
    const gap = [...catalog.filter((d) => !(d.disk === "/" && d.level === 1)), dump({ disk: "/", level: 2, datestamp: "20261204000000" })];
    const r = assessRecoverability(input({ catalog: gap }));
    expect(r.recoverable).toBe(false);
    expect(r.reasons).toEqual(['DLE "/" (/): chain of web1:"/" has a gap: no level 1 between web1:"/" L0 20261201000000 and web1:"/" L2 20261204000000']);
    expect(r.chains.find((c) => c.dle === "/")).toMatchObject({ ok: false, levels: [] });
  });

  it("a dump with a missing part is named with the part", () => {
    const problem = 'part 3 of web1:"/home" L0 20261201000000 is missing from the scanned volumes';
    const r = assessRecoverability(input({ catalog: catalog.map((d) => (d.disk === "/home" ? { ...d, problem, status: "partial" as const } : d)) }));
    expect(r.recoverable).toBe(false);
    // A partial dump is no candidate: the chain has no level 0 left, and the reason says which DLE.
    expect(r.reasons).toHaveLength(1);
    expect(r.reasons[0]).toMatch(/^DLE "\/home" \(\/home\): no level 0 of web1:"\/home"/);
  });

  it("a complete dump whose part went unreadable names it and why", () => {
    const problem = 'part 2 of web1:"/" L1 20261202000000 is missing from the scanned volumes';
    const r = assessRecoverability(input({ catalog: catalog.map((d) => (d.disk === "/" && d.level === 1 ? { ...d, problem } : d)) }));
    expect(r.reasons).toEqual([`DLE "/" (/): chain of web1:"/" needs web1:"/" L1 20261202000000, which cannot be read: ${problem}`]);
  });

  it("a DLE with no dumps at all is named", () => {
    const r = assessRecoverability(input({ host: { ...input().host, dleMap: { "/": "/", "/srv": "/srv" } } }));
    expect(r.reasons).toEqual(['DLE "/srv" (/srv): no dumps of web1:"/srv" in the catalog']);
  });

  it("no layout, an old layout, a pinned version gone, no DLE, no image: each is its own reason", () => {
    expect(assessRecoverability(input({ layout: undefined })).reasons).toEqual(["no layout captured (install capture.sh on it: lifeboat capture install)"]);
    expect(assessRecoverability(input({ layout: undefined, pinnedVersion: 2 })).reasons).toEqual(["layout version 2 (pinned by profile web1) is not stored"]);
    const old = assessRecoverability(input({ layout: { ...input().layout!, capturedAt: "2026-11-20T03:00:00Z" } }));
    expect(old.reasons).toEqual(["layout v3 is 16 days old (more than 8): is capture.sh still running on it?"]);
    expect(old.layout?.ageSeconds).toBe(16 * 86_400);
    expect(assessRecoverability(input({ host: { ...input().host, dleMap: {} } })).reasons).toEqual([
      "no DLE to restore: the layout names none and the host maps none (lifeboat hosts add --dle)",
    ]);
    const r = assessRecoverability(input({ image: undefined }));
    expect(r).toMatchObject({ recoverable: false, reasons: ["the rescue image is not built (lifeboat image build)"], image: null });
  });

  it("a layout the planner cannot read is a reason, not a crash", () => {
    const r = assessRecoverability(input({ layout: { ...input().layout!, document: { schema: "nonsense" } } }));
    expect(r.recoverable).toBe(false);
    expect(r.reasons[0]).toMatch(/^layout v3: /);
  });

  it("a failed last drill says why; a passed one or none blocks nothing", () => {
    const failed = assessRecoverability(input({ lastDrill: drill({ passed: false, reason: "no login prompt within 600 s; console: Kernel panic", recoverSeconds: null }) }));
    expect(failed.reasons).toEqual(["last drill (job-d1, 2026-12-05T03:00:00Z) failed: no login prompt within 600 s; console: Kernel panic"]);
    expect(assessRecoverability(input()).recoverable).toBe(true);
    expect(assessRecoverability(input()).lastDrill).toBeNull();
  });

  it("the restore point of the host's profile picks the chain", () => {
    const r = assessRecoverability(input({ at: "20261201" }));
    expect(r.chains.find((c) => c.dle === "/")?.levels).toEqual([0]);
    expect(assessRecoverability(input({ at: "20261130" })).reasons).toEqual([
      'DLE "/" (/): no level 0 of web1:"/" at 20261130235959 (oldest dump in the catalog: 20261201000000)',
      'DLE "/home" (/home): no level 0 of web1:"/home" at 20261130235959 (oldest dump in the catalog: 20261201000000)',
    ]);
  });
});
