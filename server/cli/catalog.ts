import type { Command } from "commander";

export function registerCatalog(program: Command): Command {
  return program.command("catalog").description("the Amanda catalog: dumps, restore chains and dump streams");
}
