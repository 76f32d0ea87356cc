/**
 * Amanda's own commands run only as the config's dump user (they refuse any other). Lifeboat
 * runs two of them: `amadmin` (`CONFIG find`, the catalog cross-check; `CONFIG export`, Amanda's
 * database in a recovery bundle) and `amfetchdump` (physical tapes, dumps not on disk). This
 * is the one contract for them, pure: the argument shapes Lifeboat builds, the check the dump-user helper applies to what arrives on its socket
 * (the same shapes, nothing else), how each run is reached, and the helper's framing.
 *
 * The helper (config/lifeboat-amanda.socket + lifeboat-amanda@.service, one instance per
 * connection as the dump user) exists because the `lifeboat` service cannot switch users:
 * NoNewPrivileges and a bounding set without CAP_SETUID rule out runuser and sudo alike.
 */
import { UserError } from "../errors.ts";

/** Where the dump-user helper listens unless an Amanda config names another (`amanda[].helperSocket`). */
export const DEFAULT_HELPER_SOCKET = "/run/lifeboat-amanda.sock";

/** What it takes to run a command as a config's dump user. */
export interface DumpUserAccess {
  dumpuser: string;
  /** The dump-user helper's socket; "" when there is none. */
  helperSocket: string;
}

/** Debian's dump user and the default helper socket: what is used when a config's amanda.conf cannot say. */
export function defaultDumpUserAccess(helperSocket: string = DEFAULT_HELPER_SOCKET): DumpUserAccess {
  return { dumpuser: "backup", helperSocket };
}

/** How one run is reached: runuser (as root), directly (already the dump user), or the helper. */
export type RunVia = { kind: "runuser"; user: string } | { kind: "direct" } | { kind: "helper"; socket: string };

/** Pure: the way to run an Amanda command as `access.dumpuser`, given who this process is; a one-line UserError when there is none. */
export function runVia(command: string, access: DumpUserAccess, self: { uid: number; user: string | null }): RunVia {
  if (self.uid === 0) return { kind: "runuser", user: access.dumpuser };
  if (self.user === access.dumpuser) return { kind: "direct" };
  if (access.helperSocket) return { kind: "helper", socket: access.helperSocket };
  throw new UserError(
    `${command} runs only as the dump user ${access.dumpuser} and Lifeboat runs as ${self.user ?? `uid ${self.uid}`}; no dump-user helper is configured (amanda[].helperSocket is "")`,
  );
}

/** `amadmin CONFIG find`. */
export function amadminFindArgv(config: string): string[] {
  return ["amadmin", config, "find"];
}

/** `amadmin CONFIG export`: the config's curinfo database as text (what `amadmin import` reads). */
export function amadminExportArgv(config: string): string[] {
  return ["amadmin", config, "export"];
}

/** `amfetchdump -a -p [-l] --exact-match CONFIG HOST DISK DATESTAMP LEVEL`: -l keeps it compressed (raw, as stored). */
export function amfetchdumpArgv(d: { amanda: string; host: string; disk: string; datestamp: string; level: number }, raw: boolean): string[] {
  return ["amfetchdump", "-a", "-p", ...(raw ? ["-l"] : []), "--exact-match", d.amanda, d.host, d.disk, d.datestamp, String(d.level)];
}

// What a name may be. None may start with "-" (getopt would read it as an option, such as
// amfetchdump's -o, which overrides any config setting) or hold a control character.
const CONFIG = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const HOST = /^[A-Za-z0-9_][A-Za-z0-9._:-]*$/;
const DATESTAMP = /^\d{8}(\d{6})?$/;
const LEVEL = /^(\d|[1-9]\d|[1-3]\d\d)$/; // Amanda's DUMP_LEVELS: 0-399

function badDisk(disk: string): boolean {
  return disk === "" || disk.startsWith("-") || disk.length > 4096 || [...disk].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);
}

/**
 * Pure: null when argv is one of the shapes above with well-formed names, else why not
 * (one line). The helper runs nothing else: no other command, option, order or count.
 */
export function refuseArgv(argv: unknown): string | null {
  if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === "string")) return "the request is not a list of strings";
  const a = argv as string[];
  const shape = a.map((x) => (x.length > 40 ? `${x.slice(0, 40)}…` : x)).join(" ");
  if (a[0] === "amadmin") {
    if (a.length !== 3 || (a[2] !== "find" && a[2] !== "export")) return `only "amadmin CONFIG find" or "amadmin CONFIG export" is run, not "${shape}"`;
    return CONFIG.test(a[1]!) ? null : `bad Amanda config name ${JSON.stringify(a[1])}`;
  }
  if (a[0] === "amfetchdump") {
    const raw = a[3] === "-l";
    const fixed = raw ? ["-a", "-p", "-l", "--exact-match"] : ["-a", "-p", "--exact-match"];
    const rest = a.slice(1 + fixed.length);
    if (fixed.some((f, i) => a[1 + i] !== f) || rest.length !== 5)
      return `only "amfetchdump -a -p [-l] --exact-match CONFIG HOST DISK DATESTAMP LEVEL" is run, not "${shape}"`;
    const [config, host, disk, datestamp, level] = rest as [string, string, string, string, string];
    if (!CONFIG.test(config)) return `bad Amanda config name ${JSON.stringify(config)}`;
    if (!HOST.test(host)) return `bad host name ${JSON.stringify(host)}`;
    if (badDisk(disk)) return `bad disk name ${JSON.stringify(disk.slice(0, 80))}`;
    if (!DATESTAMP.test(datestamp)) return `bad datestamp ${JSON.stringify(datestamp)}`;
    if (!LEVEL.test(level)) return `bad level ${JSON.stringify(level)}`;
    return null;
  }
  return `only amadmin and amfetchdump are run, not ${JSON.stringify(String(a[0]).slice(0, 40))}`;
}

/**
 * The helper's wire format. Request: the argv as one line of JSON. Reply: frames of
 * [type u8][length u32 BE][payload]: "O" stdout bytes, "E" stderr bytes, then one "X" with
 * the exit status (i32 BE; 128+N for signal N, 126 for a refused request).
 */
export const MAX_REQUEST_BYTES = 16 * 1024;
export const REFUSED_STATUS = 126;
const MAX_FRAME_BYTES = 16 * 1024 * 1024;
export type FrameType = "O" | "E" | "X";

export function frame(type: FrameType, payload: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, "latin1");
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function exitFrame(status: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(status);
  return frame("X", b);
}

/** Incremental frame reader: push bytes, get the complete frames in order. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Array<{ type: string; payload: Buffer }> {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Array<{ type: string; payload: Buffer }> = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      // The helper sends what one pipe read gave (64 KiB); anything far larger is not its reply.
      if (len > MAX_FRAME_BYTES) throw new Error(`a reply frame of ${len} bytes`);
      if (this.buf.length < 5 + len) break;
      out.push({ type: this.buf.toString("latin1", 0, 1), payload: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }

  /** Bytes of an unfinished frame (a reply cut short). */
  get pending(): number {
    return this.buf.length;
  }
}

/** Pure: the one line an Amanda command's failure becomes: its last stderr lines, joined. */
export function failureLine(command: string, status: number, stderr: string): string {
  const tail = stderr.trim().split("\n").filter(Boolean).slice(-3).join(" / ");
  return `${command} failed (exit ${status})${tail ? `: ${tail}` : ""}`;
}
