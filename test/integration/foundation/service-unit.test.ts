/**
 * config/lifeboat.service: parsed by systemd itself (`systemd-analyze verify` prints unknown
 * keys and bad values as warnings and still exits 0, so its output must be empty), and it
 * runs `serve` as the lifeboat user with only the capabilities the unit's comments justify.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { execa } from "execa";
import { expect, it } from "vitest";
import { itNeeding } from "../../helpers/needs.ts";

const unit = fileURLToPath(new URL("../../../config/lifeboat.service", import.meta.url));
const analyze = "/usr/bin/systemd-analyze";

itNeeding(existsSync(analyze) ? null : `${analyze} (Debian package systemd)`, "the unit parses with systemd-analyze verify, without a warning", async () => {
  const r = await execa(analyze, ["verify", unit], { reject: false, env: { SYSTEMD_LOG_COLOR: "0" } });
  expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, "", ""]);
});

it("serve runs as lifeboat, not root, with CAP_NET_BIND_SERVICE and CAP_DAC_READ_SEARCH only and no new privileges", () => {
  const keys = new Map<string, string[]>();
  for (const line of readFileSync(unit, "utf8").split("\n")) {
    const m = /^(\w+)=(.*)$/.exec(line);
    if (m) keys.set(m[1]!, [...(keys.get(m[1]!) ?? []), m[2]!]);
  }
  expect(keys.get("User")).toEqual(["lifeboat"]);
  expect(keys.get("ExecStart")?.[0]).toMatch(/ serve --data-dir \$\{STATE_DIRECTORY\}$/);
  expect(keys.get("StateDirectoryMode")).toEqual(["0700"]);
  expect(keys.get("CapabilityBoundingSet")).toEqual(["CAP_NET_BIND_SERVICE CAP_DAC_READ_SEARCH"]);
  expect(keys.get("AmbientCapabilities")).toEqual(["CAP_NET_BIND_SERVICE CAP_DAC_READ_SEARCH"]);
  expect(keys.get("NoNewPrivileges")).toEqual(["yes"]);
});
