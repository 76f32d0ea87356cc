/**
 * The edge that runs `amadmin find` and `amfetchdump` as the dump user (dumpuser.ts says how
 * and which): through runuser as root, directly as that user, or through the dump-user
 * helper's socket from the unprivileged service. Either way the caller gets the command's
 * stdout as a stream that ends only once the command exited 0, and is destroyed with one line
 * (the command's last stderr lines, or why it could not be reached) otherwise. The helper's
 * side of the socket is serveHelperConnection.
 */
import { Socket, connect } from "node:net";
import { constants, userInfo } from "node:os";
import { type Duplex, PassThrough, type Readable } from "node:stream";
import { finished } from "node:stream/promises";
import { execa } from "execa";
import { UserError } from "../errors.ts";
import {
  type DumpUserAccess,
  FrameReader,
  MAX_REQUEST_BYTES,
  REFUSED_STATUS,
  exitFrame,
  failureLine,
  frame,
  refuseArgv,
  runVia,
} from "./dumpuser.ts";

const STDERR_KEEP = 64 * 1024;

function self(): { uid: number; user: string | null } {
  let user: string | null = null;
  try {
    user = userInfo().username;
  } catch {
    /* a uid with no passwd entry */
  }
  return { uid: process.getuid?.() ?? -1, user };
}

/** Runs argv (a shape dumpuser.ts builds) as access.dumpuser; throws a one-line UserError when there is no way to. */
export function runAsDumpUser(argv: string[], access: DumpUserAccess): Readable {
  const via = runVia(argv[0]!, access, self());
  if (via.kind === "helper") return viaHelper(argv, via.socket, access.dumpuser);
  return viaProcess(via.kind === "runuser" ? ["runuser", "-u", via.user, "--", ...argv] : argv, argv[0]!);
}

function statusOf(r: { exitCode?: number; signal?: string }): number {
  return r.exitCode ?? 128 + (r.signal ? (constants.signals as Record<string, number>)[r.signal] ?? 0 : 0);
}

/** A child process's stdout, held open until the process exited: the exit status decides end or error. */
function viaProcess(cmd: string[], name: string): Readable {
  const out = new PassThrough();
  const proc = execa(cmd[0]!, cmd.slice(1), { stdin: "ignore", reject: false, buffer: { stdout: false, stderr: true } });
  proc.stdout.pipe(out, { end: false });
  void Promise.all([proc, finished(proc.stdout).catch(() => undefined)]).then(([r]) => {
    if (!r.failed) out.end();
    else if ((r as { code?: string }).code === "ENOENT") out.destroy(new UserError(`${name} failed: ${cmd[0]} not found on PATH (is amanda-server installed?)`));
    else out.destroy(new UserError(failureLine(name, statusOf(r), String(r.stderr ?? ""))));
  });
  out.on("close", () => proc.kill());
  return out;
}

/** The same through the dump-user helper: one connection per run, the argv as one JSON line, framed replies. */
function viaHelper(argv: string[], socket: string, dumpuser: string): Readable {
  const name = argv[0]!;
  const out = new PassThrough();
  const conn = connect(socket);
  const reader = new FrameReader();
  let connected = false;
  let stderr = "";
  let status: number | null = null;
  let waiting = false;
  conn.on("connect", () => {
    connected = true;
    conn.write(`${JSON.stringify(argv)}\n`);
  });
  conn.on("data", (chunk: Buffer) => {
    let frames;
    try {
      frames = reader.push(chunk);
    } catch (err) {
      out.destroy(new UserError(`${name}: the dump-user helper on ${socket} sent ${(err as Error).message}`));
      return;
    }
    for (const f of frames) {
      if (f.type === "O") {
        if (!out.write(f.payload) && !waiting) {
          waiting = true;
          conn.pause();
          out.once("drain", () => {
            waiting = false;
            conn.resume();
          });
        }
      } else if (f.type === "E") stderr = (stderr + f.payload.toString()).slice(-STDERR_KEEP);
      else if (f.type === "X") status = f.payload.readInt32BE(0);
    }
  });
  conn.on("error", (err: NodeJS.ErrnoException) => {
    out.destroy(
      new UserError(
        connected
          ? `${name}: the connection to the dump-user helper on ${socket} failed: ${err.code ?? err.message}`
          : `${name} runs only as the dump user ${dumpuser}: the dump-user helper is not listening on ${socket} (${err.code ?? err.message}; install config/lifeboat-amanda.socket, see the README's systemd section)`,
      ),
    );
  });
  conn.on("close", () => {
    if (out.destroyed) return;
    if (status === 0) out.end();
    else if (status !== null) out.destroy(new UserError(failureLine(name, status, stderr)));
    else out.destroy(new UserError(`${name}: the dump-user helper on ${socket} closed the connection before the command ended`));
  });
  out.on("close", () => conn.destroy());
  return out;
}

/**
 * The helper's side of one connection (conn is the accepted socket): reads the argv line,
 * refuses anything but the shapes dumpuser.ts allows (frame "E" with why, status 126), else
 * runs it and relays stdout/stderr as frames with backpressure, then the exit status. A client
 * that goes away stops the command. Resolves with a line for the helper's log.
 */
export function serveHelperConnection(conn: Duplex): Promise<string> {
  return new Promise((resolve) => {
    let req = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      req = Buffer.concat([req, chunk]);
      const nl = req.indexOf(10);
      if (nl < 0 && req.length <= MAX_REQUEST_BYTES) return;
      conn.off("data", onData);
      conn.pause();
      let argv: unknown = null;
      let why: string | null = nl < 0 ? `a request longer than ${MAX_REQUEST_BYTES} bytes` : null;
      if (!why) {
        try {
          argv = JSON.parse(req.subarray(0, nl).toString("utf8"));
          why = refuseArgv(argv);
        } catch {
          why = "the request is not one line of JSON";
        }
      }
      if (why) {
        conn.end(Buffer.concat([frame("E", Buffer.from(`lifeboat dump-user helper refused: ${why}\n`)), exitFrame(REFUSED_STATUS)]));
        resolve(`refused: ${why}`);
        return;
      }
      run(argv as string[]);
    };
    const run = (argv: string[]) => {
      const proc = execa(argv[0]!, argv.slice(1), { stdin: "ignore", reject: false, buffer: false });
      let errBytes = 0;
      let waiting = false;
      proc.stdout.on("data", (c: Buffer) => {
        if (!conn.write(frame("O", c)) && !waiting) {
          waiting = true;
          proc.stdout.pause();
          conn.once("drain", () => {
            waiting = false;
            proc.stdout.resume();
          });
        }
      });
      proc.stderr.on("data", (c: Buffer) => {
        if ((errBytes += c.length) <= STDERR_KEEP) conn.write(frame("E", c));
      });
      const gone = () => proc.kill();
      conn.on("close", gone);
      conn.on("error", gone);
      void Promise.all([proc, finished(proc.stdout).catch(() => undefined), finished(proc.stderr).catch(() => undefined)]).then(([r]) => {
        const status = (r as { code?: string }).code === "ENOENT" ? 127 : statusOf(r);
        if ((r as { code?: string }).code === "ENOENT") conn.write(frame("E", Buffer.from(`${argv[0]} not found on PATH (is amanda-server installed?)\n`)));
        conn.off("close", gone);
        if (!conn.destroyed) conn.end(exitFrame(status));
        resolve(`${JSON.stringify(argv)}: exit ${status}`);
      });
    };
    conn.on("data", onData);
    conn.on("error", () => resolve("the client's connection failed"));
    conn.on("end", () => {
      if (req.indexOf(10) < 0) resolve("the client left before its request");
    });
  });
}

/** The helper process (bin/lifeboat-amanda-helper.js): fd 0 is the accepted connection (systemd Accept=yes, or inetd style). */
export async function helperMain(): Promise<void> {
  const conn = new Socket({ fd: 0, readable: true, writable: true });
  const line = await serveHelperConnection(conn);
  process.stderr.write(`lifeboat-amanda-helper: ${line}\n`);
}
