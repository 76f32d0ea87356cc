import { fileURLToPath } from "node:url";
import { execa } from "execa";

export const AGENT_DIR = fileURLToPath(new URL("../../../rescue-image/agent/", import.meta.url));

/**
 * Runs sh code with the agent's lib.sh and steps.sh sourced, under `shell` (dash is the
 * image's /bin/sh; busybox sh is checked too where the code must not depend on dash).
 * Positional parameters are passed through untouched.
 */
export async function agentSh(
  code: string,
  opts: { args?: string[]; env?: Record<string, string>; shell?: string[]; input?: string; timeout?: number } = {},
): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const shell = opts.shell ?? ["dash"];
  const script = `. '${AGENT_DIR}lib.sh'; . '${AGENT_DIR}steps.sh'\n${code}`;
  const r = await execa(shell[0]!, [...shell.slice(1), "-c", script, "agent-test", ...(opts.args ?? [])], {
    reject: false,
    env: { LB_RUN: "/nonexistent-lb-run", ...opts.env },
    ...(opts.input === undefined ? { stdin: "ignore" as const } : { input: opts.input }),
    stripFinalNewline: false,
    timeout: opts.timeout ?? 30_000,
  });
  return { exitCode: r.exitCode ?? 1, stdout: String(r.stdout), stderr: String(r.stderr) };
}
