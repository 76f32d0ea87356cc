/** Drills on a schedule (issue 24): the period's one parser, and which drill is due now (pure). */
import { describe, expect, it } from "vitest";
import { profileBodySchema } from "../../../server/http/api-schemas.ts";
import { parseConfig } from "../../../server/config/load.ts";
import { everyProblem, parseEvery } from "../../../server/drill/every.ts";
import { type DrillScheduleEntry, RETRY_AFTER_REFUSAL_MS, dueDrill, hostEvery } from "../../../server/drill/schedule.ts";

const H = 3_600_000;
const D = 24 * H;
const now = new Date("2026-12-06T12:00:00Z");
const ago = (ms: number) => new Date(now.getTime() - ms).toISOString();
const entry = (host: string, every: number | null, lastEndedAt: string | null, refusedAt: string | null = null): DrillScheduleEntry => ({ host, everyMs: every, lastEndedAt, refusedAt });

describe("drill schedule periods", () => {
  it("reads minutes, hours, days and weeks; off and empty are never", () => {
    expect(parseEvery("90m")).toBe(90 * 60_000);
    expect(parseEvery("12h")).toBe(12 * H);
    expect(parseEvery("7d")).toBe(7 * D);
    expect(parseEvery("2w")).toBe(14 * D);
    expect(parseEvery(" 7d ")).toBe(7 * D);
    expect(parseEvery("off")).toBeNull();
    expect(parseEvery("")).toBeNull();
  });
  it("refuses anything else in one line", () => {
    for (const bad of ["7", "d", "0d", "7 d", "1.5d", "-1d", "7days", "1y", "123456d"]) expect(everyProblem(bad), bad).toBe(`expected a period like 7d, 12h, 90m or 2w (or off), got ${JSON.stringify(bad)}`);
    expect(everyProblem("7d")).toBeNull();
    expect(everyProblem("off")).toBeNull();
  });
  it("a host's own profile's period wins over the config's", () => {
    expect(hostEvery("7d", undefined)).toBe(7 * D);
    expect(hostEvery("7d", "1d")).toBe(D);
    expect(hostEvery("7d", "off")).toBeNull();
    expect(hostEvery("off", "12h")).toBe(12 * H);
    expect(hostEvery("off", undefined)).toBeNull();
  });
  it("a profile and the config refuse a bad period, naming it", () => {
    const p = profileBodySchema.safeParse({ host: "web1", options: { drillEvery: "weekly" } });
    expect(p.success).toBe(false);
    expect(p.error?.issues[0]?.message).toBe('expected a period like 7d, 12h, 90m or 2w (or off), got "weekly"');
    expect(profileBodySchema.parse({ host: "web1", options: { drillEvery: "7d" } }).options.drillEvery).toBe("7d");
    expect(() => parseConfig("drill:\n  every: weekly\n", "lifeboat.yaml")).toThrow(/drill\.every.*expected a period like 7d/);
    expect(parseConfig("{}", "lifeboat.yaml").drill.every).toBe("off");
  });
});

describe("which drill is due now", () => {
  it("none while a drill runs", () => {
    expect(dueDrill([entry("web1", D, null)], now, true)).toBeUndefined();
  });
  it("a host never drilled is due at once; one drilled less than its period ago is not; at its period it is", () => {
    expect(dueDrill([entry("web1", 7 * D, null)], now, false)).toBe("web1");
    expect(dueDrill([entry("web1", 7 * D, ago(7 * D - 1000))], now, false)).toBeUndefined();
    expect(dueDrill([entry("web1", 7 * D, ago(7 * D))], now, false)).toBe("web1");
  });
  it("hosts not scheduled are never due", () => {
    expect(dueDrill([entry("web1", null, null), entry("db1", null, ago(100 * D))], now, false)).toBeUndefined();
  });
  it("the most overdue first: never drilled, then the longest past its period, then by name", () => {
    const hosts = [entry("a", 7 * D, ago(8 * D)), entry("b", D, ago(3 * D)), entry("c", 7 * D, null), entry("d", 7 * D, null)];
    expect(dueDrill(hosts, now, false)).toBe("c");
    expect(dueDrill(hosts.slice(0, 2), now, false)).toBe("b"); // 2 days overdue beats 1
  });
  it("a refused start is retried after an hour, or after the period when it is shorter", () => {
    expect(dueDrill([entry("web1", 7 * D, null, ago(RETRY_AFTER_REFUSAL_MS - 1000))], now, false)).toBeUndefined();
    expect(dueDrill([entry("web1", 7 * D, null, ago(RETRY_AFTER_REFUSAL_MS))], now, false)).toBe("web1");
    expect(dueDrill([entry("web1", 30 * 60_000, null, ago(30 * 60_000))], now, false)).toBe("web1");
    // Another host is not held back by one refused.
    expect(dueDrill([entry("web1", D, null, ago(1000)), entry("db1", D, ago(2 * D))], now, false)).toBe("db1");
  });
});
