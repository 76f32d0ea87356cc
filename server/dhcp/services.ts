import type { ServerContext, Service } from "../context.ts";
import { installBootLoaders } from "../tftp/loaders.ts";
import { tftpService } from "../tftp/server.ts";
import { DhcpService } from "./server.ts";

/**
 * The network-boot services the config enables: TFTP (tftp.enabled) and DHCP (dhcp.mode
 * proxy|full, which needs listen.interface: DHCP is never bound to every NIC).
 */
export function netbootServices(ctx: ServerContext, httpPort: () => number): Service[] {
  const cfg = ctx.config;
  const out: Service[] = [];
  // The loaders are served over TFTP and HTTP, and DHCP only offers the ones present.
  if (cfg.tftp.enabled || (cfg.dhcp.mode !== "off" && cfg.listen.interface)) installBootLoaders(cfg.tftp.root, ctx.log.child({ svc: "tftp" }));
  if (cfg.tftp.enabled) out.push(tftpService(ctx));
  if (cfg.dhcp.mode !== "off") {
    if (!cfg.listen.interface)
      ctx.log.warn({ svc: "dhcp" }, `dhcp.mode is ${cfg.dhcp.mode} but listen.interface is not set: DHCP not started (set --interface)`);
    else out.push(new DhcpService(ctx, { httpPort }));
  }
  return out;
}
