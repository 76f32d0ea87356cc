import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { defaultConfigPath, loadConfig, parseConfig, readConfigFile } from "../../../server/config/load.ts";
import { UserError } from "../../../server/errors.ts";
import { DEFAULT_LIMITS } from "../../../server/tftp/transfer.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { tempDir } from "../../helpers/tmp.ts";

function errorOf(text: string, file = "conf.yaml"): string {
  try {
    parseConfig(text, file);
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).exitCode).toBe(2);
    return (err as Error).message;
  }
  throw new Error("expected the config to be refused");
}

describe("config", () => {
  it("bundle targets: directory and lifeboat, each with what it needs; sftp and rsync refused in one line", () => {
    const t = (yaml: string) => errorOf(`bundle:\n  targets:\n    - ${yaml}\n`);
    expect(t("{name: off, type: sftp, path: /x}")).toBe('conf.yaml: bundle.targets[0].type: expected directory or lifeboat (sftp and rsync targets are not supported yet), got "sftp"');
    expect(t("{name: off, type: rsync}")).toMatch(/type: expected directory or lifeboat \(sftp and rsync targets are not supported yet\), got "rsync"$/);
    expect(t("{name: usb, type: directory, path: mnt}")).toBe('conf.yaml: bundle.targets[0].path: a directory target needs an absolute path, got "mnt"');
    expect(t("{name: b, type: lifeboat, url: http://b:8080}")).toBe("conf.yaml: bundle.targets[0].tokenFile: a lifeboat target needs tokenFile (a file holding the other server's admin token), got nothing");
    expect(errorOf("bundle:\n  targets:\n    - {name: a, type: directory, path: /a}\n    - {name: a, type: directory, path: /b}\n")).toMatch(/^conf\.yaml: bundle\.targets: expected each target to have its own name/);
    const ok = parseConfig("bundle:\n  targets:\n    - {name: usb, type: directory, path: /mnt/usb}\n    - {name: b, type: lifeboat, url: http://b:8080, tokenFile: /etc/b}\n", "ok.yaml");
    expect(ok.bundle).toMatchObject({ everyHours: 24, keep: 7, recipient: "", targets: [{ name: "usb" }, { name: "b" }] });
  });

  it("the embedded default parses, with machine defaults filled in", () => {
    const c = loadConfig({ file: defaultConfigPath, overrides: { dataDir: "/tmp/lb-data" } });
    expect(c.dhcp.mode).toBe("proxy");
    expect(c.http.port).toBe(8080);
    expect(c.tftp.root).toBe("/tmp/lb-data/tftp");
    expect(c.adminTokenFile).toBe("/tmp/lb-data/admin-token");
    expect(c.source).toBe(defaultConfigPath);
  });

  it("an empty file takes every default", () => {
    const c = parseConfig("", "empty.yaml");
    expect(c.jobs.expireHours).toBe(24);
    expect(c.amanda).toEqual([]);
  });

  it.each([
    ["dhcp:\n  mode: prxy\n", 'conf.yaml: dhcp.mode: expected "proxy" | "full" | "reserved" | "off", got "prxy"'],
    ["dhcp:\n  mode: reserved\n", "conf.yaml: dhcp.pool.start: dhcp.mode reserved hands out addresses: set dhcp.pool.start and dhcp.pool.end"],
    ["dhcp:\n  mode: full\n  pool:\n    start: 10.0.0.10\n", "conf.yaml: dhcp.pool.end: dhcp.mode full hands out addresses: set dhcp.pool.start and dhcp.pool.end"],
    ["http:\n  port: 70000\n", "conf.yaml: http.port: expected at most 65535, got 70000"],
    ['http:\n  port: "80"\n', 'conf.yaml: http.port: expected number, got "80"'],
    ["listen:\n  address: 10.0.0.300\n", 'conf.yaml: listen.address: expected an IPv4 address, got "10.0.0.300"'],
    ["dhcp:\n  pool:\n    start: nope\n", 'conf.yaml: dhcp.pool.start: expected an IPv4 address, got "nope"'],
    ["amanda:\n  - name: daily\n", "conf.yaml: amanda[0].configDir: expected string, got nothing"],
    ["tftp:\n  enabld: true\n", 'conf.yaml: tftp: unknown key "enabld"'],
    ["tftp:\n  maxTimeoutSeconds: 300\n", "conf.yaml: tftp.maxTimeoutSeconds: expected at most 255, got 300"],
    ["tftp:\n  maxTransfersPerClient: 0\n", "conf.yaml: tftp.maxTransfersPerClient: expected at least 1, got 0"],
    ["- a\n- b\n", "conf.yaml: expected a mapping at the top, got a list"],
    ["http: [1, 2\n", "conf.yaml: invalid YAML at line"],
    ["log:\n  level: loud\n", 'conf.yaml: log.level: expected "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent", got "loud"'],
  ])("refuses %j with one line naming file, key and expectation", (text, message) => {
    const msg = errorOf(text);
    expect(msg).toContain(message);
    expect(msg).not.toContain("\n");
  });

  it("the TFTP limits written in config/lifeboat.yaml are the server's defaults", () => {
    const written = readConfigFile(defaultConfigPath).tftp;
    expect(written).toEqual(parseConfig("", "empty.yaml").tftp);
    expect(written).toMatchObject({
      maxTimeoutSeconds: DEFAULT_LIMITS.maxTimeoutSeconds,
      maxTransfers: DEFAULT_LIMITS.maxTransfers,
      maxTransfersPerClient: DEFAULT_LIMITS.maxTransfersPerClient,
    });
  });

  it("a missing file is named", () => {
    expect(() => readConfigFile("/nonexistent/lifeboat.yaml")).toThrow("/nonexistent/lifeboat.yaml: no such file");
  });

  it("LIFEBOAT_CONFIG is read when --config is not given, and --config wins over it", () => {
    const dir = tempDir();
    const a = join(dir, "a.yaml");
    const b = join(dir, "b.yaml");
    writeFileSync(a, "http:\n  port: 1111\n");
    writeFileSync(b, "http:\n  port: 2222\n");
    expect(loadConfig({ env: { LIFEBOAT_CONFIG: a } }).http.port).toBe(1111);
    expect(loadConfig({ file: b, env: { LIFEBOAT_CONFIG: a } }).http.port).toBe(2222);
  });

  it("command-line overrides go through the same schema", () => {
    expect(() => loadConfig({ file: defaultConfigPath, overrides: { listen: "not-an-ip" } })).toThrow(
      'command line: listen.address: expected an IPv4 address, got "not-an-ip"',
    );
  });

  it("the CLI prints the one-line error and exits 2, no stack trace", async () => {
    const dir = tempDir();
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "dhcp:\n  mode: prxy\n");
    const r = await lifeboat(["hosts", "list", "--config", bad, "--data-dir", dir]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe(`lifeboat: ${bad}: dhcp.mode: expected "proxy" | "full" | "reserved" | "off", got "prxy"`);
  });
});
