import type { Command } from "commander";

export function registerJobs(program: Command): Command {
  return program.command("jobs").description("recovery and clone jobs: arm, plan, watch, cancel");
}
