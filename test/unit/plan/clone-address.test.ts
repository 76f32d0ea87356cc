import { describe, expect, it } from "vitest";
import { addressPatternProblem, cloneAddress } from "../../../server/plan/clone-address.ts";

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
});
