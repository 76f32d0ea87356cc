import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import { afterAll } from "vitest";
import { tempDir } from "../../helpers/tmp.ts";
import { agentSh } from "../../unit/rescue/agent-sh.ts";
import { cleanupLoopsAfterAll } from "../recovery/loopdev.ts";

/**
 * A scratch agent for running its step functions on this host's loop devices, inside a
 * describe: its run directory (LB_RUN) and target root (LB_TARGET) in a temporary directory,
 * the job `job-NAME`, `arm()`/`disarm()` for the disk-write gate and `step(code, args)` to run
 * sh with lib.sh and steps.sh loaded. Mounts, loop devices and the directory go afterwards.
 */
export function stepHarness(name: string, timeoutMs = 120_000) {
  const dir = tempDir(`lifeboat-${name}-`);
  cleanupLoopsAfterAll();
  const run = join(dir, "run");
  const target = join(dir, "target");
  mkdirSync(join(run, "verified"), { recursive: true });
  mkdirSync(target, { recursive: true });
  afterAll(() => execa("umount", ["-R", "-l", target], { reject: false }));
  const job = `job-${name}`;
  const env = { LB_RUN: run, LB_TARGET: target, LB_JOB: job };
  return {
    dir,
    run,
    target,
    arm: () => writeFileSync(join(run, "armed"), job),
    disarm: () => writeFileSync(join(run, "armed"), ""),
    step: (code: string, args: string[] = []) => agentSh(code, { env, args, timeout: timeoutMs }),
  };
}
