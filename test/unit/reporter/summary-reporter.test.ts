/**
 * The closing line CI reads, from real vitest child processes over tiny fixture projects:
 * each way a run can fail must show as failed (test/fixtures/summary-reporter), and a test
 * that needs what the machine lacks is skipped with its reason, or under CI fails naming
 * it (test/fixtures/needs, test/helpers/needs.ts).
 */
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../fixtures/summary-reporter/", import.meta.url));
const NEEDS = fileURLToPath(new URL("../../fixtures/needs/", import.meta.url));
const REPORTER = fileURLToPath(new URL("../../summary-reporter.ts", import.meta.url));

/** Runs vitest on a fixture project (some of its files); the exit code, the last line of its output, all of it. */
async function vitest(root: string, files: string[], ci: boolean) {
  // The child is a run of its own, not a worker of this one; CI only when the test says so.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST") && !["NODE_ENV", "TEST", "CI"].includes(k)));
  const r = await execa("npx", ["vitest", "run", "--root", root, "--reporter=default", `--reporter=${REPORTER}`, ...files], {
    cwd: REPO,
    env: { ...env, NO_COLOR: "1", ...(ci ? { CI: "true" } : {}) },
    extendEnv: false,
    reject: false,
    all: true,
    stdin: "ignore",
  });
  const lines = r.stdout.trimEnd().split("\n");
  return { exitCode: r.exitCode, last: lines.at(-1), all: String(r.all) };
}

const run = (...files: string[]) => vitest(FIXTURES, files, false);

describe("the summary line counts every failure (real vitest runs over a fixture project)", () => {
  it("a clean run: passed and skipped tests, 0 failed, exit 0", async () => {
    const r = await run("passing.fixture.ts");
    expect(r.exitCode, r.all).toBe(0);
    expect(r.last).toBe("1 passed, 0 failed, 1 skipped");
  });

  it.each([
    // The suite's two tests never ran: vitest calls them skipped, the line calls them failed.
    ["failing-before-all.fixture.ts", "0 passed, 2 failed, 0 skipped"],
    ["failing-after-all.fixture.ts", "1 passed, 1 failed, 0 skipped"],
    ["failing-import.fixture.ts", "0 passed, 1 failed, 0 skipped"],
    ["unhandled-error.fixture.ts", "1 passed, 1 failed, 0 skipped"],
  ])("%s: vitest exits non-zero and the line says so (%s)", async (file, line) => {
    const r = await run(file);
    expect(r.exitCode, r.all).not.toBe(0);
    expect(r.last).toBe(line);
  });

  it("all of them together, beside a passing file", async () => {
    const r = await run();
    expect(r.exitCode, r.all).not.toBe(0);
    expect(r.last).toBe("3 passed, 5 failed, 1 skipped");
  });
});

describe("tests that need what this machine lacks (test/helpers/needs.ts)", () => {
  it("outside CI: skipped, each with its reason printed; the run passes", async () => {
    const r = await vitest(NEEDS, [], false);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.last).toBe("2 passed, 0 failed, 2 skipped");
    expect(r.all).toContain('SKIPPED "a suite that needs a frobnicator": the frobnicator is not installed here');
    expect(r.all).toContain('SKIPPED "a test that needs a quux device": no quux device here');
  });

  it("under CI: nothing skipped, each missing thing a failure that names it", async () => {
    const r = await vitest(NEEDS, [], true);
    expect(r.exitCode, r.all).not.toBe(0);
    expect(r.last).toBe("2 passed, 2 failed, 0 skipped");
    expect(r.all).toContain("a suite that needs a frobnicator: cannot run here under CI: the frobnicator is not installed here");
    expect(r.all).toContain("a test that needs a quux device: cannot run here under CI: no quux device here");
  });
});
