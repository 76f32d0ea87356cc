import { describe, expect, it } from "vitest";
import { nextRunDelay, toPrune } from "../../../server/bundle/schedule.ts";

const A = "a".repeat(32);
const B = "b".repeat(32);

describe("bundle schedule (pure)", () => {
  it("keeps the newest N bundles of each server, and never touches other files", () => {
    const files = [
      `lifeboat-${A}-20261201T000000Z.bundle`,
      `lifeboat-${A}-20261203T000000Z.bundle.gpg`,
      `lifeboat-${A}-20261202T000000Z.bundle`,
      `lifeboat-${B}-20261101T000000Z.bundle`,
      "notes.txt",
      `.lifeboat-${A}-20261204T000000Z.bundle.part`,
    ];
    expect(toPrune(files, 2)).toEqual([`lifeboat-${A}-20261201T000000Z.bundle`]);
    expect(toPrune(files, 1).sort()).toEqual([`lifeboat-${A}-20261201T000000Z.bundle`, `lifeboat-${A}-20261202T000000Z.bundle`]);
  });

  it("runs now when none ran or the last is older than everyHours, else when it is due", () => {
    const now = new Date("2026-12-05T12:00:00Z");
    expect(nextRunDelay(null, 24, now)).toBe(0);
    expect(nextRunDelay("2026-12-04T11:00:00Z", 24, now)).toBe(0);
    expect(nextRunDelay("2026-12-05T06:00:00Z", 24, now)).toBe(18 * 3_600_000);
    expect(nextRunDelay("2026-12-05T11:30:00Z", 0.5, now)).toBe(0);
  });
});
