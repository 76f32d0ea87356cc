import { type Command, Option } from "commander";
import { UserError } from "../errors.ts";
import type { PowerConfigBody, PowerActionBody } from "../http/api-schemas.ts";
import { NET_BOOTS, POWER_ACTIONS, type PowerAction } from "../power/power.ts";
import type { PowerResult, powerConfigView } from "../power/power-service.ts";
import { cliContext, output, readPrivateFile, withGlobals, withServer } from "./common.ts";

/**
 * The BMC password from a file only Lifeboat's user may read (its first line): never from the
 * command line, where `ps` and shell history would show it.
 */
export function readPasswordFile(file: string, what = "password"): string {
  const password = readPrivateFile(file, what).split("\n")[0] ?? "";
  if (!password) throw new UserError(`${file}: the ${what} is empty`, 2);
  return password;
}

interface PowerConfigOptions {
  ipmi?: string;
  redfish?: string;
  wol?: boolean;
  user?: string;
  passwordFile?: string;
  port?: string;
  cipherSuite?: string;
  netBoot?: "pxe" | "uefi-http";
  tlsFingerprint?: string;
}

/** The API body for the options given (one of --ipmi, --redfish, --wol); a wrong mix is one line. */
export function powerConfigBody(o: PowerConfigOptions): PowerConfigBody {
  const kinds = [o.ipmi && "--ipmi", o.redfish && "--redfish", o.wol && "--wol"].filter(Boolean);
  if (kinds.length !== 1) throw new UserError("give one of --ipmi HOST, --redfish URL or --wol", 2);
  if (o.wol) {
    if (o.user || o.passwordFile || o.port || o.cipherSuite || o.netBoot || o.tlsFingerprint)
      throw new UserError("--wol takes no BMC options (--user, --password-file, --port, --cipher-suite, --net-boot, --tls-fingerprint)", 2);
    return { kind: "wol" };
  }
  if (!o.user || !o.passwordFile) throw new UserError(`${kinds[0]} needs --user USER and --password-file FILE`, 2);
  const password = readPasswordFile(o.passwordFile);
  const int = (v: string, name: string) => {
    if (!/^\d+$/.test(v)) throw new UserError(`${name}: expected a number, got ${JSON.stringify(v)}`, 2);
    return Number(v);
  };
  if (o.ipmi) {
    if (o.netBoot && o.netBoot !== "pxe") throw new UserError("--net-boot uefi-http: IPMI has no one-time HTTP boot device; use --redfish", 2);
    if (o.tlsFingerprint) throw new UserError("--tls-fingerprint goes with --redfish (IPMI over LAN has no certificate)", 2);
    return {
      kind: "ipmi",
      address: o.ipmi,
      user: o.user,
      password,
      ...(o.port ? { port: int(o.port, "--port") } : {}),
      ...(o.cipherSuite ? { cipherSuite: int(o.cipherSuite, "--cipher-suite") } : {}),
    };
  }
  if (o.port || o.cipherSuite) throw new UserError("--port and --cipher-suite go with --ipmi (a Redfish URL carries its port)", 2);
  return { kind: "redfish", url: o.redfish!, user: o.user, password, ...(o.netBoot ? { netBoot: o.netBoot } : {}), ...(o.tlsFingerprint ? { tlsFingerprint: o.tlsFingerprint } : {}) };
}

type PowerConfigView = ReturnType<typeof powerConfigView>;

function describeConfig(v: PowerConfigView): string {
  const pinned = "tlsFingerprint" in v && v.tlsFingerprint ? `, certificate pinned ${v.tlsFingerprint}` : "";
  return `${v.host}: ${v.target}${"user" in v ? ` as ${v.user}` : ""}${pinned}${v.hasPassword ? " (password sealed in the store)" : ""}`;
}

/** `hosts power NAME ACTION` and `hosts power-config NAME ...` (through the server: it holds the credentials and audits their use). */
export function registerPowerCommands(hosts: Command): void {
  withServer(
    withGlobals(
      hosts
        .command("power <name> <action>")
        .description(`power a host through its power config: ${POWER_ACTIONS.join("|")} (on does nothing to a machine that is on; Wake-on-LAN can only power on)`)
        .addHelpText("after", "\nExamples:\n  lifeboat hosts power web1 status\n  lifeboat hosts power web1 on --json"),
      { json: true },
    ),
  ).action(async (name: string, action: string, _o, c: Command) => {
    if (!(POWER_ACTIONS as readonly string[]).includes(action)) throw new UserError(`power ${name} ${action}: expected one of ${POWER_ACTIONS.join(", ")}`, 2);
    const ctx = cliContext(c);
    const body: PowerActionBody = { action: action as PowerAction };
    const r = await ctx.api.request<PowerResult>("POST", `/api/v1/hosts/${encodeURIComponent(name)}/power`, body);
    output(ctx, r, () => `${r.host}: ${r.state === "unknown" ? (action === "on" ? "woken (Wake-on-LAN cannot tell the state)" : "state unknown") : r.state} (${r.target})`);
  });

  withServer(
    withGlobals(
      hosts
        .command("power-config <name>")
        .description("set how Lifeboat powers a host: its BMC over IPMI or Redfish (the password is sealed in the store, never shown), or Wake-on-LAN; without options, show it")
        .option("--ipmi <host>", "the BMC's address, for IPMI over LAN (ipmitool -I lanplus)")
        .option("--redfish <url>", "the Redfish service root, e.g. https://10.0.0.5")
        .option("--wol", "Wake-on-LAN on the boot interface (listen.interface): it can only power on")
        .option("--user <user>", "BMC user")
        .option("--password-file <file>", "file holding the BMC password (its first line; mode 0600)")
        .option("--port <port>", "IPMI: the BMC's UDP port (default 623)")
        .option("--cipher-suite <n>", "IPMI: RMCP+ cipher suite (default 3; 17 for BMCs that refuse SHA1)")
        .addOption(new Option("--net-boot <how>", "Redfish: the one-time network boot (default pxe)").choices([...NET_BOOTS]))
        .option("--tls-fingerprint <sha256>", "Redfish over https: accept exactly this certificate (its SHA-256 fingerprint), for a BMC's self-signed one; without it, Node's CAs decide")
        .addHelpText(
          "after",
          "\nExamples:\n  lifeboat hosts power-config web1 --ipmi 10.0.0.5 --user admin --password-file /root/web1-bmc\n  lifeboat hosts power-config web1 --redfish https://10.0.0.5 --user root --password-file f --net-boot uefi-http\n  openssl s_client -connect 10.0.0.5:443 </dev/null | openssl x509 -noout -fingerprint -sha256   # the fingerprint to pin\n  lifeboat hosts power-config web1 --redfish https://10.0.0.5 --user root --password-file f --tls-fingerprint AB:CD:...\n  lifeboat hosts power-config web1 --wol\n  lifeboat hosts power-config web1        # show it",
        ),
      { json: true },
    ),
  ).action(async (name: string, o: PowerConfigOptions, c: Command) => {
    const ctx = cliContext(c);
    const path = `/api/v1/hosts/${encodeURIComponent(name)}/power-config`;
    const given = o.ipmi || o.redfish || o.wol || o.user || o.passwordFile || o.port || o.cipherSuite || o.netBoot || o.tlsFingerprint;
    const v = given ? await ctx.api.request<PowerConfigView>("PUT", path, powerConfigBody(o)) : await ctx.api.request<PowerConfigView>("GET", path);
    output(ctx, v, () => describeConfig(v));
  });
}
