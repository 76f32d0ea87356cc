/**
 * A Lifeboat with something worth bundling, for the bundle tests: a synthetic Amanda config
 * (trace logs, tapelist, vtapes, a disklist and an index), a config file naming it, and a
 * server with host web1 (captured layout, DLE /), profile web assigned to a second MAC, the
 * catalog refreshed and a job armed.
 */
import { mkdirSync, readFileSync, writeFileSync, appendFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import { createLogger } from "../../../server/log.ts";
import { type RunningServer, startServer } from "../../../server/serve.ts";
import { lifeboat } from "../../helpers/cli.ts";
import { bytes, writeSynthLab } from "../../unit/amanda/synthetic.ts";

const fixtures = fileURLToPath(new URL("../../fixtures/layouts/", import.meta.url));

export const WEB1_MAC = "52:54:00:bb:00:01";
export const NEW_MAC = "52:54:00:bb:00:02";

/** Writes the synthetic Amanda config under `root` and a Lifeboat config file naming it; returns the config file. */
export function writeLabConfig(root: string, extraYaml = ""): { configFile: string; configDir: string; indexFile: string } {
  const l = writeSynthLab(
    join(root, "amanda"),
    [
      {
        label: "T-01",
        slot: 1,
        datestamp: "20261201020000",
        dumps: [{ host: "web1", disk: "/", datestamp: "20261201020000", level: 0, data: bytes(50_000) }],
      },
    ],
    [{ host: "web1", disk: "/", datestamp: "20261202020000", level: 1, data: bytes(3000, 7) }],
  );
  writeFileSync(join(l.configDir, "disklist"), 'web1 "/" lab-gtar\n');
  const indexdir = join(l.root, "index");
  const indexFile = join(indexdir, "web1", "_", "20261201020000_0.gz");
  mkdirSync(join(indexdir, "web1", "_"), { recursive: true });
  writeFileSync(indexFile, "index bytes");
  appendFileSync(join(l.configDir, "amanda.conf"), `\nindexdir "${indexdir}"\n`);
  writeFileSync(join(l.vtapes, "state"), "chg-disk state\n");
  const configFile = join(root, "lifeboat.yaml");
  writeFileSync(
    configFile,
    `amanda:\n  - name: synth\n    configDir: ${l.configDir}\n    helperSocket: ""\ncatalog:\n  refreshMinutes: 0\n${extraYaml}`,
  );
  return { configFile, configDir: l.configDir, indexFile };
}

export async function serveWith(configFile: string, dataDir: string): Promise<RunningServer> {
  const config = loadConfig({ file: configFile, overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
  return startServer(config, createLogger("silent", { pretty: false }));
}

/** Fills a running server through the CLI as an admin would. Returns web1's capture token. */
export async function populate(server: RunningServer, configFile: string, dataDir: string): Promise<void> {
  const cli = (...args: string[]) => lifeboat([...args, "--config", configFile, "--data-dir", dataDir, "--server", server.httpUrl]);
  const ok = async (args: string[]) => {
    const r = await cli(...args);
    expect(r.exitCode, `${args.join(" ")}: ${r.stderr}`).toBe(0);
    return r.stdout;
  };
  const added = JSON.parse(await ok(["hosts", "add", "web1", "--mac", WEB1_MAC, "--amanda", "synth", "--dle", "/=/", "--json"])) as { token: string };
  const capture = readFileSync(join(fixtures, "btrfs-subvols.capture.json"), "utf8");
  const put = await fetch(`${server.httpUrl}/api/v1/hosts/web1/layout`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${added.token}` },
    body: capture,
  });
  expect(put.status).toBe(200);
  await ok(["profiles", "set", "web", "--host", "web1"]);
  await ok(["hosts", "assign", NEW_MAC, "web"]);
  await ok(["catalog", "refresh"]);
  await ok(["jobs", "arm", WEB1_MAC]);
}
