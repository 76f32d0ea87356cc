import { describe, expect, it } from "vitest";
import { type KernelArgs, parseKernelArgs, renderKernelArgs } from "../../../server/plan/cmdline.ts";
import { agentSh } from "./agent-sh.ts";

const parseInSh = (shell: string[], cmdline: string) =>
  agentSh(`lb_parse_cmdline "$1"; printf '%s\\n' "$LB_SERVER" "$LB_JOB" "$LB_TOKEN" "$LB_MAC"`, { shell, args: [cmdline] });

const cases: KernelArgs[] = [
  { server: "http://10.0.0.5:8080", job: "job-0123456789", token: "AbC_-x.y~".replace("~", "z"), mac: "52:54:00:12:34:56" },
  { server: "http://[fd00::1]:8080", job: "j", token: "t%2B/+=,@:x" },
  { server: "https://lifeboat.example.org", job: "job-[0-9]", token: "a[b]c" },
];

describe("kernel command line: renderKernelArgs (server) → the agent's lb_parse_cmdline (sh)", () => {
  for (const shell of [["dash"], ["busybox", "sh"]]) {
    it(`${shell.join(" ")} reads what the server renders, among other kernel words`, async () => {
      for (const args of cases) {
        const line = `BOOT_IMAGE=vmlinuz initrd=initramfs console=ttyS0 ${renderKernelArgs(args)} quiet lifeboat.other=1`;
        const r = await parseInSh(shell, line);
        expect(r.exitCode).toBe(0);
        const [server, job, token, mac] = r.stdout.split("\n");
        const ts = parseKernelArgs(line);
        expect({ server, job, token, mac }).toEqual({ server: ts.server, job: ts.job, token: ts.token, mac: ts.mac ?? "" });
      }
    });
  }

  it("falls back to pxelinux's BOOTIF for the MAC and normalises it", async () => {
    const r = await parseInSh(["dash"], "BOOTIF=01-52-54-00-AB-CD-EF lifeboat.server=http://s/ lifeboat.job=j lifeboat.token=t");
    expect(r.stdout.split("\n")).toEqual(["http://s", "j", "t", "52:54:00:ab:cd:ef", ""]);
  });

  it("a missing key is empty (the agent then waits and says which key is missing)", async () => {
    const r = await parseInSh(["dash"], "console=ttyS0 lifeboat.server=http://s");
    expect(r.stdout.split("\n")).toEqual(["http://s", "", "", "", ""]);
  });
});
