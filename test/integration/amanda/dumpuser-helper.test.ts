/**
 * The dump-user helper for real: config/lifeboat-amanda.socket and lifeboat-amanda@.service
 * under a real systemd (test/helpers/private-systemd.ts: PID 1 of its own namespaces, since
 * this machine's PID 1 is no systemd), Lifeboat's code run in a transient unit with
 * lifeboat.service's own sandbox (NoNewPrivileges, its two capabilities) as an unprivileged
 * user, against the real Amanda lab. The one stand-in: that user is `nobody`, and the
 * socket's SocketUser/SocketGroup say nobody/nogroup, as this machine has no `lifeboat` user;
 * and the units get DefaultDependencies=no, as that systemd boots nothing they could order after.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parseAmadminFind } from "../../../server/amanda/amadmin.ts";
import { FrameReader, REFUSED_STATUS, amfetchdumpArgv } from "../../../server/amanda/dumpuser.ts";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { type AmandaLab, amandaLab, amandaLabUnavailable } from "../../helpers/amanda-lab.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { type PrivateSystemd, privateSystemd, privateSystemdUnavailable } from "../../helpers/private-systemd.ts";

const root = fileURLToPath(new URL("../../../", import.meta.url)).replace(/\/$/, "");
const config = (f: string) => readFileSync(`${root}/config/${f}`, "utf8");
const SOCKET = "/run/lifeboat-amanda.sock";
const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/**
 * A oneshot unit running the client with the [Service] settings of lifeboat.service that make
 * its sandbox (user: nobody). A unit file rather than systemd-run: that needs D-Bus.
 */
function clientUnit(argv: string[]): string {
  const skip = new Set(["Type", "ExecStart", "WorkingDirectory", "Environment", "StateDirectory", "StateDirectoryMode", "Restart", "RestartSec", "TimeoutStopSec", "User", "Group"]);
  const text = config("lifeboat.service");
  const sandbox = text
    .slice(text.indexOf("[Service]"), text.indexOf("[Install]"))
    .split("\n")
    .filter((l) => /^(\w+)=/.test(l) && !skip.has(l.slice(0, l.indexOf("="))));
  expect(sandbox).toContain("NoNewPrivileges=yes");
  return [
    "[Unit]",
    "DefaultDependencies=no",
    "[Service]",
    "Type=oneshot",
    "User=nobody",
    "Group=nogroup",
    `WorkingDirectory=${root}`,
    ...sandbox,
    `ExecStart=${argv.join(" ")}`,
    "StandardOutput=truncate:/run/lifeboat-client.out",
    "StandardError=truncate:/run/lifeboat-client.err",
    "",
  ].join("\n");
}

/** One raw request to the helper: its refusal or result, as the frames say. */
async function ask(path: string, request: string): Promise<{ status: number | null; stderr: string; stdout: number }> {
  return new Promise((resolve, reject) => {
    const conn = connect(path);
    const reader = new FrameReader();
    const r = { status: null as number | null, stderr: "", stdout: 0 };
    conn.on("connect", () => conn.write(request));
    conn.on("data", (c: Buffer) => {
      for (const f of reader.push(c)) {
        if (f.type === "O") r.stdout += f.payload.length;
        else if (f.type === "E") r.stderr += f.payload.toString();
        else r.status = f.payload.readInt32BE(0);
      }
    });
    conn.on("error", reject);
    conn.on("close", () => resolve(r));
  });
}

const unavailable = amandaLabUnavailable() ?? privateSystemdUnavailable();

describeNeeding(unavailable, "the dump-user helper under a real systemd", () => {
  let lab: AmandaLab;
  let sd: PrivateSystemd;
  let onTape: CatalogDump;

  beforeAll(async () => {
    lab = await amandaLab();
    const { catalogFromLogs } = await import("../../../server/amanda/catalog.ts");
    const { readAmandaConfig } = await import("../../../server/amanda/conf.ts");
    // The lab's dumps read as if their volumes were real tapes: no vtape root, so amfetchdump.
    const setup = { ...readAmandaConfig(`/etc/amanda/${lab.config}`), vtapeRoot: null };
    onTape = (await catalogFromLogs(setup)).dumps.find((d) => d.location.kind === "tape" && d.disk === "Lab Docs $HOME" && d.level === 1)!;
    expect(onTape).toBeDefined();
    sd = await privateSystemd(
      {
        "lifeboat-amanda.socket": config("lifeboat-amanda.socket").replace("SocketUser=lifeboat", "SocketUser=nobody").replace("SocketGroup=lifeboat", "SocketGroup=nogroup"),
        "lifeboat-amanda@.service": config("lifeboat-amanda@.service").replaceAll("/opt/lifeboat", root),
        // This systemd boots nothing else: no sysinit.target or sockets.target to order after.
        "lifeboat-amanda.socket.d/test.conf": "[Unit]\nDefaultDependencies=no\n",
        "lifeboat-amanda@.service.d/test.conf": "[Unit]\nDefaultDependencies=no\n",
      },
      ["lifeboat-amanda.socket"],
    );
  }, 120_000);
  afterAll(async () => {
    await sd?.stop();
    await lab?.release();
  });

  it("the socket listens for its user only (0600)", async () => {
    expect((await sd.exec(["systemctl", "is-active", "lifeboat-amanda.socket"])).stdout).toBe("active");
    const st = statSync(sd.path(SOCKET));
    expect([st.isSocket(), st.mode & 0o777, st.uid]).toEqual([true, 0o600, 65534]);
  });

  it("from lifeboat.service's sandbox (no new privileges), amadmin find and amfetchdump run as the dump user, byte-identical; a missing helper is one line", async () => {
    const ref = await lab.amanda(amfetchdumpArgv(onTape, true), { encoding: "buffer" });
    expect(ref.exitCode, String(ref.stderr)).toBe(0);
    const find = parseAmadminFind(String((await lab.amanda(["amadmin", lab.config, "find"])).stdout));
    expect(find.length).toBeGreaterThan(0);
    writeFileSync(sd.path("/run/lifeboat-dump.json"), JSON.stringify(onTape));
    const client = ["/usr/bin/node", "--import", "tsx", "test/integration/amanda/dumpuser-client.ts", lab.config, SOCKET, "/run/lifeboat-dump.json"];
    writeFileSync(sd.path("/run/systemd/system/lifeboat-client.service"), clientUnit(client));
    expect((await sd.exec(["systemctl", "daemon-reload"])).exitCode).toBe(0);
    // flock: the lab's one vtape drive, shared with other test files.
    const r = await sd.exec(["flock", `${lab.root}/amanda.lock`, "systemctl", "start", "lifeboat-client.service"], { timeout: 120_000 });
    const out = readFileSync(sd.path("/run/lifeboat-client.out"), "utf8");
    expect(r.exitCode, `${String(r.stderr)}\n${out}\n${readFileSync(sd.path("/run/lifeboat-client.err"), "utf8")}`).toBe(0);
    const got = JSON.parse(out) as { user: string; noNewPrivs: boolean; rows: number; sha256: string; missing: string };
    expect(got).toEqual({
      user: "nobody",
      noNewPrivs: true,
      rows: find.length,
      sha256: sha(ref.stdout as unknown as Buffer),
      missing: `amadmin ${lab.config} find: amadmin runs only as the dump user backup: the dump-user helper is not listening on /run/no-such-helper.sock (ENOENT; install config/lifeboat-amanda.socket, see the README's systemd section)`,
    });
  }, 180_000);

  it("hostile requests are refused before anything runs (status 126, one line why); a well-formed one gets Amanda's own answer", async () => {
    const cfg = lab.config;
    const fetch = ["amfetchdump", "-a", "-p", "-l", "--exact-match", cfg, "localhost"];
    const hostile: Array<[string, RegExp]> = [
      [JSON.stringify(["sh", "-c", "id"]), /only amadmin and amfetchdump are run/],
      [JSON.stringify(["amadmin", cfg, "delete", "localhost", "/x"]), /only "amadmin CONFIG find" or "amadmin CONFIG export" is run/],
      [JSON.stringify(["amadmin", cfg, "find", "localhost"]), /only "amadmin CONFIG find" or "amadmin CONFIG export" is run/],
      [JSON.stringify(["amadmin", "../../etc", "find"]), /bad Amanda config name/],
      [JSON.stringify(["amfetchdump", "-o", "tapedev=/dev/zero", "-a", "-p", "--exact-match", cfg, "localhost", "/x", "20260101", "0"]), /only "amfetchdump -a -p \[-l\] --exact-match/],
      [JSON.stringify([...fetch, "-ochanger=x", "20260101", "0"]), /bad disk name/],
      [JSON.stringify([...fetch, "/x\n", "20260101", "0"]), /bad disk name/],
      [JSON.stringify([...fetch, "/x", "2026; id", "0"]), /bad datestamp/],
      [JSON.stringify([...fetch, "/x", "20260101", "400"]), /bad level/],
      [JSON.stringify(["amfetchdump", "-a", "-p", "--exact-match", "-ocfg", "localhost", "/x", "20260101", "0"]), /bad Amanda config name/],
      [JSON.stringify({ argv: ["amadmin", cfg, "find"] }), /not a list of strings/],
      ["amadmin x find", /not one line of JSON/],
      ["[".repeat(20_000), /longer than 16384 bytes/],
    ];
    const before = Number((await sd.exec(["systemctl", "show", "-P", "NAccepted", "lifeboat-amanda.socket"])).stdout);
    for (const [req, why] of hostile) {
      const r = await ask(sd.path(SOCKET), req.endsWith("[") ? req : `${req}\n`);
      expect({ req: req.slice(0, 60), status: r.status, stdout: r.stdout }).toEqual({ req: req.slice(0, 60), status: REFUSED_STATUS, stdout: 0 });
      expect(r.stderr).toMatch(/^lifeboat dump-user helper refused: .*\n$/);
      expect(r.stderr).toMatch(why);
    }
    // Well-formed, so Amanda answers (as the dump user): there is no such dump.
    const none = await ask(sd.path(SOCKET), `${JSON.stringify(amfetchdumpArgv({ ...onTape, datestamp: "20010101000000" }, true))}\n`);
    expect(none.status).not.toBe(REFUSED_STATUS);
    expect(none.status).not.toBe(0);
    expect(none.stderr).toMatch(/No matching dumps found|no dumps|not found/i);
    // One helper instance per connection, each gone once it answered.
    expect(Number((await sd.exec(["systemctl", "show", "-P", "NAccepted", "lifeboat-amanda.socket"])).stdout)).toBe(before + hostile.length + 1);
    // The client has its answer when the instance closes its output; systemd reaps the unit a moment
    // after that, so the list is asked again for a few seconds before an instance counts as left over.
    await expect
      .poll(async () => String((await sd.exec(["systemctl", "list-units", "--no-legend", "--state=active", "lifeboat-amanda@*"])).stdout).trim(), { timeout: 10_000, interval: 250 })
      .toBe("");
  }, 180_000);
});
