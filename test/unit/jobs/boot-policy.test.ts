import { describe, expect, it } from "vitest";
import { type BootState, DHCP_ANSWER_WINDOW_MS, bootFor } from "../../../server/jobs/boot-policy.ts";
import type { CloneWindow } from "../../../server/jobs/job-service.ts";
import { job, t0 } from "./job-fixture.ts";

const now = t0.getTime();
const mac = "52:54:00:00:00:01";
const armed = job();
/** Lifeboat's DHCP answered the machine a second ago at 10.0.0.5, and it asks from there. */
const base: BootState = { mac, requester: "10.0.0.5", now, dhcpMode: "proxy", found: { job: armed, via: "mac" }, answer: { at: now - 1000, address: "10.0.0.5" }, knownMachine: true };
const window: CloneWindow = { profile: "gold", until: new Date(now + 60_000).toISOString(), hostnamePattern: null, openedBy: "test", only: [], armed: 0 };
const cloneState: BootState = { ...base, found: undefined, cloneWindow: window, knownMachine: false };

describe("bootFor: who gets a boot token", () => {
  it("the address Lifeboat's DHCP just answered for the MAC gets the rescue system, spending the answer", () => {
    expect(bootFor(base)).toEqual({ kind: "rescue", job: armed, via: "mac", basis: "dhcp-answer", usesAnswer: true });
  });

  it("another address for the same MAC gets exit, refused (audited) with both addresses", () => {
    expect(bootFor({ ...base, requester: "10.0.0.66" })).toEqual({
      kind: "local",
      refused: true,
      job: armed,
      reason: `no token for job ${armed.id}: Lifeboat's DHCP answered ${mac} at 10.0.0.5, not 10.0.0.66`,
    });
  });

  it("no answer (a second request of the same boot: the first spent it), an old one, or one whose address was never seen: refused", () => {
    expect(bootFor({ ...base, answer: undefined })).toMatchObject({ kind: "local", refused: true, reason: expect.stringContaining("has not answered 52:54:00:00:00:01 since its last token") });
    expect(bootFor({ ...base, answer: { at: now - DHCP_ANSWER_WINDOW_MS - 1000, address: "10.0.0.5" } })).toMatchObject({ kind: "local", refused: true, reason: expect.stringContaining("121 s ago, longer than the 120 s") });
    expect(bootFor({ ...base, answer: { at: now, address: null } })).toMatchObject({ kind: "local", refused: true, reason: expect.stringContaining("never saw the address it took") });
  });

  it("dhcp.mode off: only a job the admin armed with trustHttpBoot, for any requester, the answer untouched", () => {
    const off = { ...base, dhcpMode: "off" as const, answer: undefined };
    expect(bootFor(off)).toMatchObject({ kind: "local", refused: true, reason: expect.stringMatching(/dhcp.mode is off.*not armed with --trust-http-boot\)$/) });
    const trusted = job({ trustHttpBoot: true });
    expect(bootFor({ ...off, found: { job: trusted, via: "mac" } })).toEqual({ kind: "rescue", job: trusted, via: "mac", basis: "trusted-http-boot", usesAnswer: false });
  });

  it("a drill's job never goes to a network boot, even one Lifeboat's DHCP vouches for or a trusted one", () => {
    const drill = job({ kind: "drill", trustHttpBoot: true });
    expect(bootFor({ ...base, found: { job: drill, via: "mac" } })).toEqual({
      kind: "local",
      refused: true,
      job: drill,
      reason: `job ${drill.id} is a drill: its machine is started by the server, never network-booted`,
    });
  });

  it("no active job: exit, not a refusal (nothing was at stake)", () => {
    expect(bootFor({ ...base, found: undefined })).toEqual({ kind: "local", reason: "no active job", refused: false });
  });
});

describe("bootFor: the clone window", () => {
  it("an unknown machine Lifeboat's DHCP answered becomes a clone", () => {
    expect(bootFor(cloneState)).toEqual({ kind: "clone", window, basis: "dhcp-answer", usesAnswer: true });
  });

  it("a known machine never does; nor a MAC outside the window's limits", () => {
    expect(bootFor({ ...cloneState, knownMachine: true })).toMatchObject({ kind: "local", refused: false });
    const limited = { ...window, only: ["00:25:90", "52:54:00:00:01"] };
    expect(bootFor({ ...cloneState, cloneWindow: limited })).toEqual({ kind: "local", refused: false, reason: "no active job; outside the clone window's limits (00:25:90, 52:54:00:00:01)" });
    // A whole-byte prefix, not a string prefix: 52:54:00:00:01 does not take 52:54:00:00:10:xx.
    expect(bootFor({ ...cloneState, mac: "52:54:00:00:10:01", cloneWindow: limited })).toMatchObject({ kind: "local" });
    expect(bootFor({ ...cloneState, mac: "52:54:00:00:01:07", cloneWindow: limited })).toMatchObject({ kind: "clone" });
    expect(bootFor({ ...cloneState, mac: "00:25:90:aa:bb:cc", cloneWindow: limited })).toMatchObject({ kind: "clone" });
  });

  it("a requester Lifeboat's DHCP did not answer arms no clone, refused (audited)", () => {
    expect(bootFor({ ...cloneState, requester: "10.0.0.66" })).toMatchObject({ kind: "local", refused: true, reason: expect.stringMatching(/^clone window: no clone armed: /) });
    expect(bootFor({ ...cloneState, dhcpMode: "off", answer: undefined })).toMatchObject({ kind: "local", refused: true });
  });
});
