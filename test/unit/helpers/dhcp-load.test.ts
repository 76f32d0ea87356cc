/**
 * The two DHCP load helpers of the netboot integration tests, on loopback. They once shared a
 * file name: dhcp-interop's `dhcp-flood.ts blast|probe` ran the relay flooder instead, which took
 * "blast" for an address and never stopped, and the /healthz test timed out at 30 s with nothing
 * said. Each helper does its own job and ends; wrong arguments end at once with a usage line.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { describe, expect, it } from "vitest";

const helper = (name: string) => fileURLToPath(new URL(`../../integration/netboot/${name}`, import.meta.url));
const run = (name: string, args: string[]) =>
  execa(process.execPath, ["--import", "tsx", helper(name), ...args], { reject: false, timeout: 15_000, stdin: "ignore" });

describe("DHCP load helpers (test/integration/netboot)", () => {
  it("dhcp-flood.ts blast sends 64 KB datagrams for the time given, then prints how many and ends", async () => {
    const r = await run("dhcp-flood.ts", ["blast", "127.0.0.1", "300"]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { sent: number }).sent).toBeGreaterThan(5);
  });

  it("dhcp-flood.ts probe times GETs of a URL for the time given, then prints the figures and ends", async () => {
    const http = createServer((_, res) => res.end("ok"));
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    try {
      const r = await run("dhcp-flood.ts", ["probe", `http://127.0.0.1:${(http.address() as AddressInfo).port}/healthz`, "300"]);
      expect(r.exitCode, r.stderr).toBe(0);
      const p = JSON.parse(r.stdout) as { probes: number; failures: number; p95Ms: number };
      expect(p.failures).toBe(0);
      expect(p.probes).toBeGreaterThan(5);
      expect(p.p95Ms).toBeGreaterThan(0);
    } finally {
      http.close();
    }
  });

  it.each([
    ["dhcp-flood.ts", ["127.0.0.2", "127.0.0.1", "200", "4000"]],
    ["dhcp-flood.ts", ["blast", "127.0.0.1"]],
    ["dhcp-relay-clients.ts", ["blast", "127.0.0.1", "4000"]],
    ["dhcp-relay-clients.ts", ["127.0.0.2", "127.0.0.1", "200"]],
  ])("%s %j: usage, exit 2, at once", async (name, args) => {
    const r = await run(name, args);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/^usage: /);
    expect(r.stdout).toBe("");
  });
});
