/**
 * The real DhcpService in-process for unit tests, on a socket double: nothing is sent.
 * `dhcpService()` stops the services it made after each test.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { mkdirSync, writeFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { Registry } from "prom-client";
import { afterEach } from "vitest";
import { loadConfig } from "../../../server/config/load.ts";
import type { ServerContext } from "../../../server/context.ts";
import { DhcpService } from "../../../server/dhcp/server.ts";
import type { DhcpWitness } from "../../../server/jobs/boot-service.ts";
import { createLogger } from "../../../server/log.ts";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { tempDir } from "../../helpers/tmp.ts";

/**
 * A stand-in for the bound dgram socket (the fuzz runs in-process; nothing is sent). Its
 * send() passes the arguments through a real dgram socket that is closed, so dgram's own
 * checks throw exactly as they would on a bound one (ERR_SOCKET_BAD_PORT for port 0,
 * synchronously); what passes them is recorded and completes later, with the error a live
 * socket reports for an address that is not an IPv4 literal. `closed` makes it throw
 * ERR_SOCKET_DGRAM_NOT_RUNNING like a socket closed by stop().
 */
export class DgramDouble {
  readonly sent: Array<{ port: number; address: string }> = [];
  closed = false;
  private readonly real = createSocket("udp4");
  constructor() {
    this.real.close();
  }
  send(buf: Buffer, port: number, address: string, cb: (err: Error | null) => void): void {
    try {
      this.real.send(buf, port, address);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ERR_SOCKET_DGRAM_NOT_RUNNING" || this.closed) throw err;
    }
    this.sent.push({ port, address });
    setImmediate(() => cb(isIPv4(address) ? null : Object.assign(new Error(`getaddrinfo ENOTFOUND ${address}`), { code: "ENOTFOUND" })));
  }
}

const services: DhcpService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

/** What the DHCP service told the boot service, in order. */
export class WitnessDouble implements DhcpWitness {
  readonly told: Array<[string, string, string | null]> = [];
  dhcpAnswered(mac: string, address: string | null): void {
    this.told.push(["answered", mac, address]);
  }
  dhcpRequested(mac: string, address: string): void {
    this.told.push(["requested", mac, address]);
  }
}

/** A DhcpService answering as 10.231.7.1; full mode has pool .100-.199 and a static lease for 52:54:00:07:00:42 (packets.ts's MAC). */
export function dhcpService(mode: "proxy" | "full", proxyOfferDelayMs = 0): { svc: DhcpService; metrics: Registry; witness: WitnessDouble } {
  const dataDir = tempDir();
  const base = loadConfig({ overrides: { dataDir } });
  const config = {
    ...base,
    // Random client identifiers take the whole pool (as random MACs would): checks after a fuzz run use the static lease.
    dhcp: { ...base.dhcp, mode, proxyOfferDelayMs, pool: { ...base.dhcp.pool, start: "10.231.7.100", end: "10.231.7.199" }, staticLeases: [{ mac: "52:54:00:07:00:42", ip: "10.231.7.42" }] },
  };
  const ctx = {
    config,
    store: new SqliteStore(":memory:"),
    log: createLogger("silent", { pretty: false }),
    metrics: new Registry(),
  } as unknown as ServerContext;
  mkdirSync(config.tftp.root, { recursive: true });
  writeFileSync(`${config.tftp.root}/snponly.efi`, "stand-in loader");
  const witness = new WitnessDouble();
  const svc = new DhcpService(ctx, { httpPort: () => 8080, witness });
  svc.configure("10.231.7.1");
  services.push(svc);
  return { svc, metrics: ctx.metrics, witness };
}

/** lifeboat_dhcp_dropped_total by reason. */
export const drops = async (metrics: Registry): Promise<Record<string, number>> =>
  Object.fromEntries((await metrics.getSingleMetric("lifeboat_dhcp_dropped_total")!.get()).values.map((v) => [v.labels.reason, v.value]));

export const rinfo = (address: string, port: number, size = 300): RemoteInfo => ({ address, port, family: "IPv4", size });
