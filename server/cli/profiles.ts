import type { Command } from "commander";

export function registerProfiles(program: Command): Command {
  return program.command("profiles").description("profiles: what a machine becomes (a host's layout and restore point, or a clone template)");
}
