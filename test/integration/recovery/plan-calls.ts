import { execa } from "execa";
import { STEP_FUNCTIONS, type Step, type StepName } from "../../../server/plan/steps.ts";

/** sh stubs for every step function: each prints its name and arguments, NUL-terminated. */
const stubs = Object.keys(STEP_FUNCTIONS)
  .map((fn) => `${fn}() { printf '%s\\0' ${fn} "$#" "$@"; }`)
  .join("\n");

/**
 * Runs a rendered plan through a real shell where every step function only prints what it
 * received, and returns the calls: exactly the arguments the agent's functions would get.
 */
export async function planCalls(script: string, shell = "sh"): Promise<Step[]> {
  const r = await execa(shell, ["-c", `${stubs}\n${script}`], { stdin: "ignore", stripFinalNewline: false });
  const fields = r.stdout.split("\0");
  fields.pop();
  const calls: Step[] = [];
  for (let i = 0; i < fields.length; ) {
    const fn = fields[i++] as StepName;
    const n = Number(fields[i++]);
    calls.push({ fn, args: fields.slice(i, i + n) });
    i += n;
  }
  return calls;
}
