/**
 * A drill's admin checks (issue 24): parsing, the checks' network, the verdict (pure), and the
 * TCP and SSH checks against real listeners on this host's loopback (no QEMU here: the drill's
 * forward is a port on loopback like these).
 */
import { createServer } from "node:net";
import { describe, expect, it } from "vitest";
import { drillBodySchema, profileBodySchema } from "../../../server/http/api-schemas.ts";
import { DHCP_GUEST, checkNetdev, checksVerdict, freePort, guestAddressProblem, parseCheck, runCheck } from "../../../server/drill/checks.ts";
import { drillQemuArgs } from "../../../server/drill/drill-plan.ts";

describe("drill checks: what the admin gives", () => {
  it("reads tcp:PORT and ssh:COMMAND", () => {
    expect(parseCheck("tcp:22")).toEqual({ kind: "tcp", port: 22, spec: "tcp:22" });
    expect(parseCheck("tcp:65535")).toMatchObject({ kind: "tcp", port: 65535 });
    expect(parseCheck("ssh:systemctl is-system-running")).toEqual({ kind: "ssh", command: "systemctl is-system-running", spec: "ssh:systemctl is-system-running" });
    expect(parseCheck("ssh:test -s /etc/x && echo ok: yes")).toMatchObject({ kind: "ssh", command: "test -s /etc/x && echo ok: yes" });
  });
  it("refuses anything else in one line", () => {
    for (const bad of ["tcp:0", "tcp:65536", "tcp:", "tcp:ssh", "udp:53", "ssh:", "ssh:  ", "ssh:a\nb", "cmd:true", "22", ""])
      expect(parseCheck(bad), JSON.stringify(bad)).toEqual({ problem: `check ${JSON.stringify(bad)}: expected tcp:PORT (1-65535) or ssh:COMMAND (one line)` });
  });
  it("the restored system's address: IPv4 with a prefix of 8 to 29", () => {
    expect(guestAddressProblem("10.0.5.20/24")).toBeNull();
    expect(guestAddressProblem(DHCP_GUEST)).toBeNull();
    for (const bad of ["10.0.5.20", "10.0.5.256/24", "10.0.5.20/30", "10.0.5.20/7", "fd00::1/64", "host/24"])
      expect(guestAddressProblem(bad), bad).toBe(`address ${JSON.stringify(bad)}: expected the restored system's IPv4 address with its prefix, e.g. 10.0.5.20/24 (prefix 8-29)`);
  });
  it("the API and a profile refuse bad checks and addresses with the same lines", () => {
    const b = drillBodySchema.safeParse({ checks: ["tcp:22", "udp:53"] });
    expect(b.error?.issues[0]?.message).toBe('check "udp:53": expected tcp:PORT (1-65535) or ssh:COMMAND (one line)');
    const p = profileBodySchema.safeParse({ host: "web1", options: { drillChecks: ["tcp:22"], drillAddress: "10.0.5.20" } });
    expect(p.error?.issues[0]?.message).toMatch(/^address "10\.0\.5\.20": expected/);
    expect(profileBodySchema.parse({ host: "web1", options: { drillChecks: ["tcp:22", "ssh:true"], drillAddress: "10.0.5.20/24" } }).options).toMatchObject({ drillChecks: ["tcp:22", "ssh:true"], drillAddress: "10.0.5.20/24" });
  });
});

describe("drill checks: the restored disk's network", () => {
  it("QEMU's user network in the guest's own subnet, restricted, each check's port forwarded from loopback to the guest's address", () => {
    expect(checkNetdev("10.231.60.10/24", [{ hostPort: 45022, guestPort: 22 }, { hostPort: 45080, guestPort: 80 }])).toBe(
      "user,id=n0,restrict=on,net=10.231.60.0/24,host=10.231.60.2,dns=10.231.60.3,dhcpstart=10.231.60.10,hostfwd=tcp:127.0.0.1:45022-10.231.60.10:22,hostfwd=tcp:127.0.0.1:45080-10.231.60.10:80",
    );
    // A system that takes its address by DHCP gets QEMU's usual one; QEMU keeps its .2 and .3.
    expect(checkNetdev(DHCP_GUEST, [{ hostPort: 1, guestPort: 22 }])).toBe("user,id=n0,restrict=on,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15,hostfwd=tcp:127.0.0.1:1-10.0.2.15:22");
    // The guest at .2: QEMU takes .3 and .1.
    expect(checkNetdev("192.168.0.2/16", [])).toBe("user,id=n0,restrict=on,net=192.168.0.0/16,host=192.168.0.3,dns=192.168.0.1,dhcpstart=192.168.0.2");
  });
  it("the disk's boot uses it; without checks, the plain restricted network", () => {
    const spec = { accel: ["-accel", "tcg"], firmware: "bios" as const, ovmfVars: "", memoryMiB: 512, cpus: 1, mac: "02:4c:42:00:00:01", disks: [{ captured: "sda", serial: "LBDRILL0", sizeBytes: 1, file: "/tmp/x.raw" }] };
    const net = checkNetdev("10.0.5.20/24", [{ hostPort: 40000, guestPort: 22 }]);
    const args = drillQemuArgs(spec, undefined, net);
    expect(args[args.indexOf("-netdev") + 1]).toBe(net);
    const plain = drillQemuArgs(spec);
    expect(plain[plain.indexOf("-netdev") + 1]).toBe("user,id=n0,restrict=on");
  });
});

describe("drill checks: the verdict", () => {
  it("passes when every check passed; else names those that failed", () => {
    expect(checksVerdict([])).toEqual({ passed: true, reason: null });
    expect(checksVerdict([{ check: "tcp:22", passed: true, detail: "answered" }])).toEqual({ passed: true, reason: null });
    expect(checksVerdict([{ check: "tcp:22", passed: true, detail: "answered" }, { check: "ssh:systemctl is-system-running", passed: false, detail: "exit 1: degraded" }])).toEqual({
      passed: false,
      reason: "the restored system came up, but a check failed: ssh:systemctl is-system-running: exit 1: degraded",
    });
    expect(checksVerdict([{ check: "tcp:22", passed: false, detail: "x" }, { check: "tcp:80", passed: false, detail: "y" }]).reason).toBe("the restored system came up, but 2 checks failed: tcp:22: x; tcp:80: y");
  });
});

describe("drill checks: made against real listeners on loopback", () => {
  it("tcp: a port that answers passes; one that closes at once or has nothing behind it fails, saying why", async () => {
    const answering = createServer((s) => s.end("SSH-2.0-OpenSSH_9.2\r\n"));
    const closing = createServer((s) => s.destroy());
    await new Promise<void>((r) => answering.listen(0, "127.0.0.1", r));
    await new Promise<void>((r) => closing.listen(0, "127.0.0.1", r));
    try {
      const port = (s: typeof answering) => (s.address() as { port: number }).port;
      expect(await runCheck({ kind: "tcp", port: 22, spec: "tcp:22" }, port(answering), Date.now(), "")).toEqual({ check: "tcp:22", passed: true, detail: "answered" });
      expect(await runCheck({ kind: "tcp", port: 22, spec: "tcp:22" }, port(closing), Date.now(), "")).toEqual({ check: "tcp:22", passed: false, detail: "connection closed at once: nothing listening" });
      const none = await freePort();
      const r = await runCheck({ kind: "tcp", port: 80, spec: "tcp:80" }, none, Date.now(), "");
      expect(r).toMatchObject({ check: "tcp:80", passed: false });
      expect(r.detail).toMatch(/^connection failed: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    } finally {
      answering.close();
      closing.close();
    }
  });
  it("a check stops trying, saying why, once the machine is gone", async () => {
    const started = Date.now();
    const r = await runCheck({ kind: "tcp", port: 22, spec: "tcp:22" }, await freePort(), Date.now() + 600_000, "", () => "the restored system stopped (QEMU exited 0)");
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r).toMatchObject({ check: "tcp:22", passed: false });
    expect(r.detail).toMatch(/^connection failed: .*ECONNREFUSED.*; the restored system stopped \(QEMU exited 0\)$/);
  });
  it("ssh: no SSH server behind the port fails with ssh's own exit 255 once the time is out", async () => {
    const r = await runCheck({ kind: "ssh", command: "true", spec: "ssh:true" }, await freePort(), Date.now(), "/nonexistent/key");
    expect(r).toMatchObject({ check: "ssh:true", passed: false });
    expect(r.detail).toMatch(/^exit 255: .*(Connection refused|connect to host)/);
  });
});
