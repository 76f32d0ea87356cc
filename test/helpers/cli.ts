import { fileURLToPath } from "node:url";
import { execa } from "execa";

export const lifeboatBin = fileURLToPath(new URL("../../bin/lifeboat.js", import.meta.url));

/** Runs the real `lifeboat` CLI as a user would; never throws on a non-zero exit. */
export async function lifeboat(
  args: string[],
  opts: { env?: Record<string, string>; input?: string; cwd?: string } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const r = await execa(lifeboatBin, args, {
    reject: false,
    ...(opts.input === undefined ? { stdin: "ignore" as const } : { input: opts.input }),
    env: { NO_COLOR: "1", ...opts.env },
    cwd: opts.cwd,
  });
  return { exitCode: r.exitCode ?? 1, stdout: r.stdout, stderr: r.stderr };
}
