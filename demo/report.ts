/**
 * The demo's pure parts: its command line and its closing table (demo/main.ts prints them;
 * test/unit/demo/report.test.ts checks them).
 */
import { parseArgs } from "node:util";
import type { Figures } from "./whole-job.ts";

export const USAGE = `usage: bash scripts/demo [--firmware uefi|bios] [--secure-boot on|off] [--keep [--port N]] [--verbose]
  Runs Lifeboat's whole job on a private LAN (network namespaces; nothing on this host's own
  network): a Debian 12 server backed up by Amanda dies, network-boots Lifeboat and comes back
  as itself. Needs root, QEMU and the packages of scripts/apt-packages.txt (scripts/bootstrap).
  --firmware  the machine's firmware: uefi (OVMF, default) or bios (SeaBIOS)
  --secure-boot  UEFI: on (default: OVMF enforcing Secure Boot with Microsoft's keys; web1 boots
              through Debian's shim, before and after) or off
  --keep      afterwards, keep the server and forward its admin page to http://127.0.0.1:PORT/ until Ctrl-C
  --port      the forwarded port (default 8088)
  --verbose   show the build and boot log lines as well`;

export interface DemoOptions {
  firmware: "uefi" | "bios";
  /** UEFI with Secure Boot enforced (always false under BIOS). */
  secureBoot: boolean;
  keep: boolean;
  port: number;
  verbose: boolean;
}

/** The demo's arguments: its options, a request for help, or the one-line reason they are refused. */
export function parseDemoArgs(args: string[]): { options: DemoOptions } | { help: true } | { error: string } {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: { firmware: { type: "string", default: "uefi" }, "secure-boot": { type: "string" }, keep: { type: "boolean", default: false }, port: { type: "string" }, verbose: { type: "boolean", default: false }, help: { type: "boolean", short: "h", default: false } },
    }));
  } catch (err) {
    return { error: (err as Error).message };
  }
  if (values.help) return { help: true };
  if (values.firmware !== "uefi" && values.firmware !== "bios") return { error: `--firmware: uefi or bios, not ${values.firmware}` };
  const sb = values["secure-boot"];
  if (sb !== undefined && sb !== "on" && sb !== "off") return { error: `--secure-boot: on or off, not ${sb}` };
  if (sb === "on" && values.firmware === "bios") return { error: "--secure-boot on: only with --firmware uefi (BIOS has no Secure Boot)" };
  if (values.port !== undefined && !values.keep) return { error: "--port: only with --keep (the port the admin page is forwarded to)" };
  const port = Number(values.port ?? "8088");
  if (!/^\d+$/.test(values.port ?? "8088") || port < 1 || port > 65535) return { error: `--port: a TCP port, not ${values.port}` };
  return { options: { firmware: values.firmware, secureBoot: values.firmware === "uefi" && sb !== "off", keep: values.keep, port, verbose: values.verbose } };
}

const MiB = 1024 * 1024;

/** The closing table: each figure, and what it compares to. */
export function figuresTable(f: Figures): string {
  const rows: Array<[string, string, string]> = [
    ["time to recover (jobs arm --power → web1 answers from its restored disk)", `${f.recoverSeconds.toFixed(0)} s`, "nothing done in between"],
    ["bytes restored (2 chains: / and /home, level 0 + level 1)", `${(f.bytesRestored / MiB).toFixed(0)} MiB`, `Amanda wrote ${(f.backupBytes / MiB).toFixed(0)} MiB in ${f.backupSeconds.toFixed(0)} s`],
    ["guest restore rate (curl → tar onto ext4)", `${f.restoreMiBs.toFixed(1)} MiB/s`, `${f.restoreSeconds.toFixed(0)} s in restore_dump`],
  ];
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  return rows.map((r) => `  ${r[0].padEnd(w0)}  ${r[1].padStart(w1)}   ${r[2]}`).join("\n");
}
