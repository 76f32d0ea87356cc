import { Command, CommanderError } from "commander";
import { UserError, errorMessage } from "../errors.ts";
import { version } from "../version.ts";
import { registerAmanda } from "./amanda.ts";
import { registerAssign } from "./assign.ts";
import { registerCapture } from "./capture.ts";
import { registerCatalog } from "./catalog.ts";
import { registerDrill } from "./drill.ts";
import { registerHosts } from "./hosts.ts";
import { registerImage } from "./image.ts";
import { registerJobs } from "./jobs.ts";
import { registerLeases } from "./leases.ts";
import { registerProfiles } from "./profiles.ts";
import { registerServe } from "./serve.ts";
import { registerStore } from "./store.ts";

export function buildProgram(): Command {
  const program = new Command("lifeboat")
    .description(
      "Bare-metal disaster recovery for Linux machines backed up with Amanda:\n" +
        "network-boots a dead or new machine, recreates its disks and streams its restores.",
    )
    .version(version)
    // Program options only before the subcommand, so `hosts layout NAME --version N` reaches the subcommand.
    .enablePositionalOptions()
    .showHelpAfterError("(run with --help for usage)")
    .showSuggestionAfterError(true);
  registerServe(program);
  registerAssign(registerHosts(program));
  registerProfiles(program);
  registerJobs(program);
  registerLeases(program);
  registerDrill(program);
  registerCatalog(program);
  registerAmanda(program);
  registerImage(program);
  registerCapture(program);
  registerStore(program);
  program.addHelpText(
    "after",
    "\nEvery subcommand takes --config FILE and --data-dir DIR; listings take --json.\nRun `lifeboat <command> --help` for details.",
  );
  // Exit 2 for usage errors everywhere (commander's default is 1).
  const exitOverride = (cmd: Command) => {
    cmd.exitOverride();
    for (const sub of cmd.commands) exitOverride(sub);
  };
  exitOverride(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  // Whatever Lifeboat writes (store, keys, caches, logs) is its user's alone; what others
  // must read sets its own modes (the rescue image build runs under umask 022).
  process.umask(0o077);
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version "errors" are exits with code 0; usage problems were already printed.
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UserError) {
      process.stderr.write(`lifeboat: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`lifeboat: internal error: ${errorMessage(err)}\n`);
    if (process.env.LIFEBOAT_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}

const code = await main(process.argv);
// Long-running commands (serve) never return here until they stop.
process.exitCode = code;
