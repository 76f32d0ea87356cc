/**
 * The one rule for tests that need something a machine may lack (root, QEMU, network
 * namespaces, loop devices, Amanda, debootstrap, a shell): outside CI they are skipped and
 * the reason is printed; under CI (`CI` set, as `.ci/run` sets it) the missing thing is a
 * failure that names it, so nothing vanishes from a CI run. `missing` is what an
 * `*Unavailable()` helper returns: why the tests cannot run here, or null/undefined.
 */
import { describe, it } from "vitest";

export type Missing = string | null | undefined;

/** True when running under CI: `CI` set to anything but "", "0" or "false". */
export const underCi = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());

function failure(name: string, missing: string): Error {
  return new Error(`${name}: cannot run here under CI: ${missing}`);
}

/** `describe(name, body)` when nothing is missing; else skipped with the reason printed, or under CI one failing test naming it. */
export function describeNeeding(missing: Missing, name: string, body: () => void): void {
  if (!missing) describe(name, body);
  else if (underCi)
    describe(name, () => {
      it(`needs: ${missing}`, () => {
        throw failure(name, missing);
      });
    });
  else {
    console.warn(`SKIPPED "${name}": ${missing}`);
    describe.skip(name, body);
  }
}

/** `it(name, fn, timeout)` when nothing is missing; else skipped with the reason printed, or under CI a failure naming it. */
export function itNeeding(missing: Missing, name: string, fn: () => unknown, timeout?: number): void {
  if (!missing) it(name, fn, timeout);
  else if (underCi)
    it(name, () => {
      throw failure(name, missing);
    });
  else {
    console.warn(`SKIPPED "${name}": ${missing}`);
    it.skip(name, fn, timeout);
  }
}
