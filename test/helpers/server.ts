import { loadConfig } from "../../server/config/load.ts";
import { createLogger } from "../../server/log.ts";
import type { Planner } from "../../server/jobs/jobs.ts";
import { type RunningServer, startServer } from "../../server/serve.ts";
import { tempDir } from "./tmp.ts";

/** A real server in-process on 127.0.0.1 with an ephemeral HTTP port, no TFTP or DHCP. */
export async function testServer(opts: { dataDir?: string; planner?: Planner; logLevel?: string } = {}): Promise<RunningServer> {
  const dataDir = opts.dataDir ?? tempDir();
  const config = loadConfig({ overrides: { dataDir, listen: "127.0.0.1", httpPort: 0, tftp: false, dhcp: "off" } });
  return startServer(config, createLogger(opts.logLevel ?? "silent", { pretty: false }), { planner: opts.planner });
}

/** Registers a host with one MAC and one captured layout, straight in the store. */
export async function seedHost(server: RunningServer, name: string, mac: string, layout: unknown = { disks: [] }): Promise<void> {
  const { store } = server.ctx;
  await store.hosts.add({ name, tokenHash: "x", smbiosUuid: null, macs: [mac], amandaConfig: null, dleMap: {} });
  await store.layouts.add(name, layout);
}
