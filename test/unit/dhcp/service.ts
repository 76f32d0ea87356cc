/**
 * The real DhcpService in-process for unit tests, on a socket double: nothing is sent
 * (test/helpers/dhcp-service.ts). `dhcpService()` stops the services it made after each test.
 */
import type { Registry } from "prom-client";
import { afterEach } from "vitest";
import type { DhcpService } from "../../../server/dhcp/server.ts";
import type { LoopTurns } from "../../../server/dhcp/shed.ts";
import { makeDhcpService } from "../../helpers/dhcp-service.ts";
import { tempDir } from "../../helpers/tmp.ts";

export { DgramDouble, WitnessDouble, rinfo } from "../../helpers/dhcp-service.ts";

const services: DhcpService[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.stop();
});

/** A DhcpService answering as 10.231.7.1; full and reserved mode have pool .100-.199 and a static lease for 52:54:00:07:00:42 (packets.ts's MAC). */
export function dhcpService(mode: "proxy" | "full" | "reserved", proxyOfferDelayMs = 0, loop?: LoopTurns): ReturnType<typeof makeDhcpService> {
  const made = makeDhcpService(mode, proxyOfferDelayMs, tempDir(), loop);
  services.push(made.svc);
  return made;
}

/** lifeboat_dhcp_dropped_total by reason. */
export const drops = async (metrics: Registry): Promise<Record<string, number>> =>
  Object.fromEntries((await metrics.getSingleMetric("lifeboat_dhcp_dropped_total")!.get()).values.map((v) => [v.labels.reason, v.value]));
