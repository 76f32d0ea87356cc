/**
 * The closing line CI reads, from a real vitest child process over a tiny fixture project
 * (test/fixtures/summary-reporter): each way a run can fail must show as failed.
 */
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../fixtures/summary-reporter/", import.meta.url));
const REPORTER = fileURLToPath(new URL("../../summary-reporter.ts", import.meta.url));

/** Runs vitest on some fixture files; the exit code and the last line of its output. */
async function run(...files: string[]) {
  // The child is a run of its own, not a worker of this one.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("VITEST") && k !== "NODE_ENV" && k !== "TEST"));
  const r = await execa("npx", ["vitest", "run", "--root", FIXTURES, "--reporter=default", `--reporter=${REPORTER}`, ...files], {
    cwd: REPO,
    env: { ...env, NO_COLOR: "1" },
    extendEnv: false,
    reject: false,
    all: true,
    stdin: "ignore",
  });
  const lines = r.stdout.trimEnd().split("\n");
  return { exitCode: r.exitCode, last: lines.at(-1), all: String(r.all) };
}

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
