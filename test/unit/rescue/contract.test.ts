import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { STEP_FUNCTIONS, type StepName, stepArity } from "../../../server/plan/steps.ts";
import { AGENT_DIR, agentSh } from "./agent-sh.ts";

const names = Object.keys(STEP_FUNCTIONS) as StepName[];
const source = readFileSync(`${AGENT_DIR}steps.sh`, "utf8");

/** The arity a step function declares in its first line: `lb_args NAME MIN MAX $#`. */
function declaredArity(fn: string): { min: number; max: number } | undefined {
  const m = new RegExp(`^${fn}\\(\\) \\{\\n  lb_args ${fn} (\\d+) (\\d+|-) \\$# \\|\\| return 2$`, "m").exec(source);
  if (!m) return undefined;
  return { min: Number(m[1]), max: m[2] === "-" ? Number.POSITIVE_INFINITY : Number(m[2]) };
}

describe("step functions: agent side of server/plan/steps.ts", () => {
  it("steps.sh declares every contract function with the contract's arity, and nothing else", () => {
    for (const fn of names) expect(declaredArity(fn), fn).toEqual(stepArity(fn));
    const defined = [...source.matchAll(/^([a-z_]+)\(\) \{\n  lb_args /gm)].map((m) => m[1]);
    expect(defined.sort()).toEqual([...names].sort());
  });

  it("sourcing the agent defines each one as a shell function, and LB_STEP_NAMES lists exactly them", async () => {
    const r = await agentSh(`for f in $LB_STEP_NAMES; do command -V "$f"; done; echo "$LB_STEP_NAMES"`);
    expect(r.exitCode).toBe(0);
    for (const fn of names) expect(r.stdout).toMatch(new RegExp(`^${fn} is a (shell )?function`, "m"));
    expect(r.stdout.trim().split("\n").at(-1)!.split(" ").sort()).toEqual([...names].sort());
  });

  it("calling a function with too few or too many arguments is refused before it does anything", async () => {
    for (const fn of names) {
      const { min, max } = stepArity(fn);
      const tries = [min > 0 ? min - 1 : undefined, Number.isFinite(max) ? max + 1 : undefined].filter((n) => n !== undefined);
      for (const n of tries) {
        const r = await agentSh(`${fn} "$@"`, { args: Array.from({ length: n }, (_, i) => `/nonexistent/arg${i}`) });
        expect(r.exitCode, `${fn} with ${n} args`).toBe(2);
        expect(r.stderr).toContain(`${fn}: expected ${min}`);
      }
    }
  });

  it("every step function has a resume guard", async () => {
    const r = await agentSh(`for f in $LB_STEP_NAMES; do command -V "guard_$f" >/dev/null || echo "missing guard_$f"; done`);
    expect(r.stdout).toBe("");
  });
});
