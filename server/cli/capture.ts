import type { Command } from "commander";

export function registerCapture(program: Command): Command {
  return program.command("capture").description("host capture: the capture script and uploaded layouts");
}
