import { type Command, Option } from "commander";
import { type ConfigOverrides, loadConfig } from "../config/load.ts";
import { DHCP_MODES } from "../config/schema.ts";
import { UserError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { startServer } from "../serve.ts";
import { type GlobalOptions, withGlobals } from "./common.ts";

interface ServeOptions extends GlobalOptions {
  name?: string;
  listen?: string;
  interface?: string;
  httpPort?: string;
  publicUrl?: string;
  tftpPort?: string;
  tftpRoot?: string;
  tftp?: boolean;
  dhcp?: ConfigOverrides["dhcp"];
}

function port(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UserError(`${flag}: expected a port 0-65535, got ${JSON.stringify(v)}`, 2);
  return n;
}

export function registerServe(program: Command): void {
  const cmd = program
    .command("serve")
    .description("run the Lifeboat server: HTTP API and boot files, TFTP and DHCP as configured")
    .option("--name <name>", "this server's name among the servers of one store (name; default: the host name)")
    .option("--listen <address>", "address HTTP and TFTP bind to (listen.address)")
    .option("--interface <name>", "interface the boot services answer on (listen.interface)")
    .option("--http-port <port>", "HTTP port (http.port; 0 picks a free one)")
    .option("--public-url <url>", "URL booting machines reach this server at (http.publicUrl)")
    .option("--tftp-port <port>", "TFTP port (tftp.port)")
    .option("--tftp-root <dir>", "directory served over TFTP (tftp.root)")
    .option("--no-tftp", "do not start the TFTP service")
    .addOption(new Option("--dhcp <mode>", "DHCP mode (dhcp.mode)").choices([...DHCP_MODES]))
    .addHelpText(
      "after",
      "\nStops cleanly on SIGTERM or SIGINT; in-flight streams get 5 s to finish.\nThe admin token is created at first start in <data-dir>/admin-token (mode 0600).",
    );
  withGlobals(cmd).action(async (_o, c: Command) => {
    const o = c.optsWithGlobals<ServeOptions>();
    const config = loadConfig({
      file: o.config,
      overrides: {
        dataDir: o.dataDir,
        name: o.name,
        listen: o.listen,
        interface: o.interface,
        httpPort: port(o.httpPort, "--http-port"),
        publicUrl: o.publicUrl,
        tftpPort: port(o.tftpPort, "--tftp-port"),
        tftpRoot: o.tftpRoot,
        tftp: o.tftp === false ? false : undefined,
        dhcp: o.dhcp,
        logLevel: o.logLevel,
      },
    });
    const log = createLogger(config.log.level);
    log.info({ config: config.source, dataDir: config.dataDir }, "starting lifeboat");
    let server;
    try {
      server = await startServer(config, log);
    } catch (err) {
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      if (e.code === "EADDRINUSE" || e.code === "EACCES")
        throw new UserError(`cannot listen on ${e.address ?? "?"}:${e.port ?? "?"}: ${e.code === "EADDRINUSE" ? "address in use" : "permission denied"}`);
      throw err;
    }
    await new Promise<void>((resolve) => {
      const onSignal = (sig: string) => {
        log.info({ signal: sig }, "stopping");
        process.off("SIGTERM", onSignal);
        process.off("SIGINT", onSignal);
        void server.stop(5000).then(resolve);
      };
      process.on("SIGTERM", onSignal);
      process.on("SIGINT", onSignal);
    });
    log.info("stopped");
    log.flush();
  });
}
