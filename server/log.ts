import pino, { type Logger } from "pino";

export type { Logger };

/**
 * JSON lines by default (for journald and log shippers); pretty when stdout is a terminal.
 * Subsystems take child loggers (`log.child({ svc: "dhcp", mac })`) so every line carries its context.
 */
export function createLogger(level: string, opts: { pretty?: boolean; destination?: number } = {}): Logger {
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level,
      transport: { target: "pino-pretty", options: { colorize: true, destination: opts.destination ?? 1 } },
    });
  }
  return pino({ level }, pino.destination(opts.destination ?? 1));
}
