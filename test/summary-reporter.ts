import type { Reporter, TestCase, TestModule, TestRunEndReason, TestSuite } from "vitest/node";

/**
 * Ends the run with one line `N passed, N failed, N skipped`, the line CI reads
 * (vitest's own summary is not recognised). Every failure counts, not only failed tests:
 * a test that did not run because its file's or suite's beforeAll threw is failed (vitest
 * marks it skipped); an error outside any test (an afterAll that threw, a file that failed
 * to import) counts once for its file or suite; each unhandled error counts once. Whenever
 * vitest ends the run as failed or interrupted, the line says at least 1 failed.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<unknown>, reason: TestRunEndReason): void {
    const c = countRun(modules, unhandledErrors.length, reason);
    process.stdout.write(`\n${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped\n`);
  }
}

function countRun(modules: ReadonlyArray<TestModule>, unhandledErrors: number, reason: TestRunEndReason): { passed: number; failed: number; skipped: number } {
  let passed = 0;
  let failed = unhandledErrors;
  let skipped = 0;
  /** Whether the file or a suite around the test had an error of its own (a hook that threw). */
  const broken = (t: TestCase) => {
    for (let p: TestSuite | TestModule = t.parent; ; p = p.parent) {
      if (p.errors().length > 0) return true;
      if (p.type === "module") return false;
    }
  };
  for (const m of modules) {
    const tests = [...m.children.allTests()];
    for (const t of tests) {
      const s = t.result().state;
      if (s === "passed") passed++;
      else if (s === "failed" || broken(t)) failed++;
      else skipped++;
    }
    // An error of the file or a suite that no test's failure accounts for: one failure.
    for (const owner of [m, ...m.children.allSuites()]) {
      if (owner.errors().length === 0) continue;
      const inside = owner.type === "module" ? tests : [...owner.children.allTests()];
      if (!inside.some((t) => t.result().state !== "passed" && t.result().state !== "failed")) failed++;
    }
  }
  if (reason !== "passed" && failed === 0) failed = 1;
  return { passed, failed, skipped };
}
