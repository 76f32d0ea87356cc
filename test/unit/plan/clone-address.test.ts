import { describe, expect, it } from "vitest";
import { addressStep } from "../../../server/plan/plan-stages.ts";
import { step } from "../../../server/plan/steps.ts";
import { addressPatternProblem, cloneAddress, cloneStaticAddress } from "../../../server/plan/clone-address.ts";

describe("clone addresses from a pattern (issue 21 item 4)", () => {
  it("expands {n} and {n+K} in one octet", () => {
    expect([1, 2, 3, 4].map((n) => cloneAddress("10.0.5.{n+20}/24", n))).toEqual(["10.0.5.21/24", "10.0.5.22/24", "10.0.5.23/24", "10.0.5.24/24"]);
    expect(cloneAddress("10.0.{n}.7/16", 9)).toBe("10.0.9.7/16");
  });
  it("refuses what is not a pattern, in one line", () => {
    for (const p of ["10.0.5.21/24", "10.0.5.{n}", "10.0.{n}.{n}/24", "10.0.5.{m}/24", "10.0.5.{n-1}/24", "10.0.300.{n}/24", "10.0.5.{n}/33", "10.0.{n}/24", "a.b.c.{n}/24"])
      expect(addressPatternProblem(p), p).toMatch(/^address pattern [^\n]+$/);
    expect(addressPatternProblem("10.0.5.{n+20}/24")).toBeNull();
  });
  it("a clone whose octet leaves 1-254 is refused, naming it", () => {
    expect(() => cloneAddress("10.0.5.{n+250}/24", 5)).toThrow("clone 5: address pattern 10.0.5.{n+250}/24 gives 255 for its {n} octet, outside 1-254");
    expect(cloneAddress("10.0.5.{n+250}/24", 4)).toBe("10.0.5.254/24");
  });
  it("a clone's static address carries the profile's gateway and DNS servers, and only those it gives", () => {
    expect(cloneStaticAddress({ pattern: "10.0.5.{n+20}/24", gateway: "10.0.5.1", dns: ["10.0.5.2", "10.0.5.3"] }, 2)).toEqual({ address: "10.0.5.22/24", gateway: "10.0.5.1", dns: ["10.0.5.2", "10.0.5.3"] });
    expect(cloneStaticAddress({ pattern: "10.0.5.{n+20}/24", dns: [] }, 1)).toEqual({ address: "10.0.5.21/24" });
    expect(() => cloneStaticAddress({ pattern: "10.0.5.{n+250}/24" }, 5)).toThrow("clone 5:");
  });
  it("the builder's set_address goes on the captured NIC that carried the default route, not the first", () => {
    const nics = [{ name: "enp0s3", mac: "52:54:00:5e:00:93", defaultRoute: false }, { name: "enp0s4", mac: "52:54:00:5e:00:94", defaultRoute: true }];
    expect(addressStep(nics, cloneStaticAddress({ pattern: "10.0.3.{n+20}/24", gateway: "10.0.3.2" }, 1))).toEqual({
      step: step("set_address", { name: "enp0s4", address: "10.0.3.21/24", gateway: "10.0.3.2", dns: "" }),
      note: "address after the restore: 10.0.3.21/24 via 10.0.3.2 on enp0s4",
    });
    expect(addressStep([{ ...nics[1]!, defaultRoute: false }], { address: "10.0.3.21/24" })).toMatchObject({ step: { fn: "set_address", args: ["enp0s4", "10.0.3.21/24", "", ""] } });
    expect(addressStep(nics.map((n) => ({ ...n, defaultRoute: false })), { address: "10.0.3.21/24" })).toEqual({ problem: expect.stringContaining("does not say which NIC carried the default route (enp0s3, enp0s4;") });
  });
});
