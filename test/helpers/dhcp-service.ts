/**
 * The real DhcpService in-process on a socket double (nothing is sent), for the unit tests
 * (test/unit/dhcp/service.ts adds their clean-up) and the fuzz targets shared with bench/fuzz.ts.
 * No vitest here: the bench runs it under plain tsx.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { mkdirSync, writeFileSync } from "node:fs";
import { isIPv4 } from "node:net";
import { Registry } from "prom-client";
import { loadConfig } from "../../server/config/load.ts";
import type { ServerContext } from "../../server/context.ts";
import { DhcpService } from "../../server/dhcp/server.ts";
import type { LoopTurns } from "../../server/dhcp/shed.ts";
import type { DhcpWitness } from "../../server/jobs/boot-service.ts";
import { createLogger } from "../../server/log.ts";
import { SqliteStore } from "../../server/store/sqlite.ts";

/**
 * A stand-in for the bound dgram socket. Its send() passes the arguments through a real
 * dgram socket that is closed, so dgram's own checks throw exactly as they would on a bound
 * one (ERR_SOCKET_BAD_PORT for port 0, synchronously); what passes them is recorded and
 * completes later, with the error a live socket reports for an address that is not an IPv4
 * literal. `closed` makes it throw ERR_SOCKET_DGRAM_NOT_RUNNING like a socket closed by stop().
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

/**
 * A DhcpService answering as 10.231.7.1 with its store in memory and its TFTP root in
 * `dataDir`; full and reserved mode have pool .100-.199 and a static lease for 52:54:00:07:00:42
 * (test/unit/dhcp/packets.ts's MAC).
 */
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

export function makeDhcpService(mode: "proxy" | "full" | "reserved", proxyOfferDelayMs: number, dataDir: string, loop?: LoopTurns): { svc: DhcpService; metrics: Registry; witness: WitnessDouble; store: SqliteStore } {
  const base = loadConfig({ overrides: { dataDir } });
  const config = {
    ...base,
    // Random client identifiers take the whole pool (as random MACs would): checks after a fuzz run use the static lease.
    dhcp: { ...base.dhcp, mode, proxyOfferDelayMs, pool: { ...base.dhcp.pool, start: "10.231.7.100", end: "10.231.7.199" }, staticLeases: [{ mac: "52:54:00:07:00:42", ip: "10.231.7.42" }] },
  };
  const store = new SqliteStore(":memory:");
  const ctx = {
    config,
    store,
    log: createLogger("silent", { pretty: false }),
    metrics: new Registry(),
  } as unknown as ServerContext;
  mkdirSync(config.tftp.root, { recursive: true });
  writeFileSync(`${config.tftp.root}/snponly.efi`, "stand-in loader");
  const witness = new WitnessDouble();
  const svc = new DhcpService(ctx, { httpPort: () => 8080, witness, ...(loop ? { loop } : {}) });
  svc.configure("10.231.7.1");
  return { svc, metrics: ctx.metrics, witness, store };
}

export const rinfo = (address: string, port: number, size = 300): RemoteInfo => ({ address, port, family: "IPv4", size });
