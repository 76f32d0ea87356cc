import type { Command } from "commander";

export function registerImage(program: Command): Command {
  return program.command("image").description("the rescue kernel and initramfs");
}
