import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { startServer } from "../../../server/serve.ts";
import { lifeboat, lifeboatBin } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { execa } from "execa";

describe("lifeboat serve", () => {
  it("starts on ephemeral ports in-process, answers /healthz and the OpenAPI document, stops", async () => {
    const dataDir = tempDir();
    const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    const server = await startServer(config, createLogger("silent", { pretty: false }));
    const res = await fetch(`${server.httpUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
    const api = (await (await fetch(`${server.httpUrl}/api/v1/openapi.json`)).json()) as { openapi: string; paths: object };
    expect(api.openapi).toMatch(/^3\./);
    expect(Object.keys(api.paths)).toContain("/healthz");
    expect(statSync(join(dataDir, "admin-token")).mode & 0o777).toBe(0o600);
    await server.stop(100);
    await expect(fetch(`${server.httpUrl}/healthz`)).rejects.toThrow();
  });

  it("after the first start the data dir is 0700 and the store, its WAL and shm, its key and the admin token 0600", async () => {
    const dataDir = tempDir();
    chmodSync(dataDir, 0o755); // as an older release left it
    const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    const server = await startServer(config, createLogger("silent", { pretty: false }));
    try {
      const mode = (f: string) => [f, statSync(join(dataDir, f)).mode & 0o777];
      expect(mode(".")).toEqual([".", 0o700]);
      for (const f of ["lifeboat.db", "lifeboat.db-wal", "lifeboat.db-shm", "store-key", "admin-token"]) expect(mode(f)).toEqual([f, 0o600]);
    } finally {
      await server.stop(100);
    }
  });

  it("the real process logs one line per service, serves, and exits 0 on SIGTERM", async () => {
    const dataDir = tempDir();
    const proc = execa(lifeboatBin, ["serve", "--data-dir", dataDir, "--listen", "127.0.0.1", "--http-port", "0", "--no-tftp", "--dhcp", "off"], {
      reject: false,
      stdin: "ignore",
    });
    const url = await new Promise<string>((resolve, reject) => {
      let buf = "";
      proc.stdout!.on("data", (d: Buffer) => {
        buf += d.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(buf);
        if (m) resolve(m[1]!);
      });
      void proc.then((r) => reject(new Error(`serve exited early: ${r.stderr}`)));
    });
    const res = await fetch(`${url}/healthz`);
    expect(res.status).toBe(200);
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    expect(token.length).toBeGreaterThan(20);
    proc.kill("SIGTERM");
    const r = await proc;
    expect(r.exitCode).toBe(0);
    const lines = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { msg: string; svc?: string });
    expect(lines.filter((l) => l.svc === "http" && l.msg.startsWith("http: http://127.0.0.1:"))).toHaveLength(1);
    expect(lines.at(-1)?.msg).toBe("stopped");
  });

  it("an error no handler caught, thrown or rejected, is logged and counted, and the process keeps serving", async () => {
    const dataDir = tempDir();
    const fault = fileURLToPath(new URL("./inject-fault.mjs", import.meta.url));
    const proc = execa(process.execPath, ["--import", fault, lifeboatBin, "serve", "--data-dir", dataDir, "--listen", "127.0.0.1", "--http-port", "0", "--no-tftp", "--dhcp", "off"], {
      reject: false,
      stdin: "ignore",
    });
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      proc.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /"address":"(http:\/\/[^"]+)"/.exec(out);
        if (m) resolve(m[1]!);
      });
      void proc.then((r) => reject(new Error(`serve exited early: ${r.stderr}`)));
    });
    proc.kill("SIGUSR2");
    for (let i = 0; i < 50 && !(out.includes("unhandled promise rejection") && out.includes("unexpected error")); i++) await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain('lifeboat_unexpected_errors_total{kind="exception"} 1');
    expect(metrics).toContain('lifeboat_unexpected_errors_total{kind="rejection"} 1');
    proc.kill("SIGTERM");
    const r = await proc;
    expect(r.exitCode).toBe(0);
    const errors = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; err?: { message: string } });
    expect(errors.filter((l) => l.level === 50).map((l) => [l.msg, l.err?.message])).toEqual([
      ["unhandled promise rejection (kept serving)", "injected rejection"],
      ["unexpected error (kept serving)", "injected fault"],
    ]);
  });

  it("a port in use is a one-line error, exit 1", async () => {
    const dataDir = tempDir();
    const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
    const server = await startServer(config, createLogger("silent", { pretty: false }));
    const port = new URL(server.httpUrl).port;
    const r = await lifeboat(["serve", "--data-dir", tempDir(), "--listen", "127.0.0.1", "--http-port", port, "--no-tftp", "--dhcp", "off"]);
    await server.stop(100);
    expect(r.exitCode).toBe(1);
    expect(r.stderr.trim().split("\n").at(-1)).toBe(`lifeboat: cannot listen on 127.0.0.1:${port}: address in use`);
  });

  it("--help lists the subcommands; an unknown one exits 2", async () => {
    const help = await lifeboat(["--help"]);
    expect(help.exitCode).toBe(0);
    for (const sub of ["serve", "hosts", "profiles", "jobs", "catalog", "image", "capture"]) expect(help.stdout).toContain(sub);
    const bad = await lifeboat(["frobnicate"]);
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain("unknown command 'frobnicate'");
  });
});
