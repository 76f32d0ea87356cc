import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Lan } from "./netns.ts";

/**
 * dnsmasq as the test LAN's router in `member` (which needs an IPv6 address on eth0):
 * router advertisements always — a ULA prefix with router lifetime 0, so iPXE's IPv6
 * autoconfiguration finishes at once instead of waiting ~13 s per boot, and no default
 * route appears — and, with `dhcpRange`, the LAN's own plain DHCP server (for proxy mode).
 */
export function startRouter(lan: Lan, member: string, workDir: string, name: string, dhcpRange?: string) {
  const conf = join(workDir, `${name}.dnsmasq.conf`);
  writeFileSync(
    conf,
    [
      "port=0", "pid-file=", "interface=eth0", "bind-interfaces", "no-ping",
      `dhcp-leasefile=${join(workDir, `${name}.leases`)}`,
      "enable-ra", "dhcp-range=::,constructor:eth0,ra-only,64,1h", "ra-param=eth0,mtu:1500,0,0",
      ...(dhcpRange ? ["dhcp-authoritative", `dhcp-range=${dhcpRange},255.255.255.0,1h`] : []),
      "",
    ].join("\n"),
  );
  return lan.spawn(member, ["dnsmasq", "-k", `--conf-file=${conf}`]);
}
