/**
 * config/lifeboat.service and the dump-user helper's units (lifeboat-amanda.socket,
 * lifeboat-amanda@.service): parsed by systemd itself (`systemd-analyze verify` prints unknown
 * keys and bad values as warnings and still exits 0, so its output must be empty); `serve` runs
 * as the lifeboat user with only the capabilities the unit's comments justify, and only the
 * helper, started per connection, is the dump user. The helper runs for real under systemd in
 * test/integration/amanda/dumpuser-helper.test.ts.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { expect, it } from "vitest";
import { itNeeding } from "../../helpers/needs.ts";

const path = (f: string) => fileURLToPath(new URL(`../../../config/${f}`, import.meta.url));
const unit = path("lifeboat.service");
const helperUnits = [path("lifeboat-amanda.socket"), path("lifeboat-amanda@.service")];
const analyze = "/usr/bin/systemd-analyze";

itNeeding(existsSync(analyze) ? null : `${analyze} (Debian package systemd)`, "the units parse with systemd-analyze verify, without a warning", async () => {
  const r = await execa(analyze, ["verify", unit, ...helperUnits], { reject: false, env: { SYSTEMD_LOG_COLOR: "0" } });
  expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, "", ""]);
});

function keysOf(file: string): Map<string, string[]> {
  const keys = new Map<string, string[]>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  return keys;
}

it("the dump-user helper: one instance per connection from lifeboat only, as the dump user, with no capabilities", () => {
  const socket = keysOf(helperUnits[0]!);
  expect([socket.get("ListenStream"), socket.get("SocketUser"), socket.get("SocketMode"), socket.get("Accept")]).toEqual([["/run/lifeboat-amanda.sock"], ["lifeboat"], ["0600"], ["yes"]]);
  const service = keysOf(helperUnits[1]!);
  expect([service.get("User"), service.get("StandardInput"), service.get("NoNewPrivileges"), service.get("CapabilityBoundingSet")]).toEqual([["backup"], ["socket"], ["yes"], [""]]);
  expect(service.get("ExecStart")).toEqual(["/usr/bin/node /opt/lifeboat/bin/lifeboat-amanda-helper.js"]);
});

it("serve runs as lifeboat, not root, with CAP_NET_BIND_SERVICE and CAP_DAC_READ_SEARCH only and no new privileges", () => {
  const keys = keysOf(unit);
  expect(keys.get("User")).toEqual(["lifeboat"]);
  expect(keys.get("ExecStart")?.[0]).toMatch(/ serve --data-dir \$\{STATE_DIRECTORY\}$/);
  expect(keys.get("StateDirectoryMode")).toEqual(["0700"]);
  expect(keys.get("CapabilityBoundingSet")).toEqual(["CAP_NET_BIND_SERVICE CAP_DAC_READ_SEARCH"]);
  expect(keys.get("AmbientCapabilities")).toEqual(["CAP_NET_BIND_SERVICE CAP_DAC_READ_SEARCH"]);
  expect(keys.get("NoNewPrivileges")).toEqual(["yes"]);
});
