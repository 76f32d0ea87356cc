/**
 * Redfish (DMTF DSP0266) over HTTP(S): the first ComputerSystem under
 * /redfish/v1/Systems, its PowerState, `ComputerSystem.Reset` (POST {ResetType}) and a
 * one-time boot override (PATCH Boot {BootSourceOverrideTarget: Pxe|UefiHttp,
 * BootSourceOverrideEnabled: Once, BootSourceOverrideMode: UEFI|Legacy}). Basic auth on
 * every request (no session left open on the BMC); the password is never logged. An https
 * service's certificate is checked against Node's CAs, or, for the self-signed certificates
 * BMCs come with, pinned by its SHA-256 fingerprint (tlsFingerprint).
 */
import { type RequestOptions, request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { type Firmware, type NetBoot, type PowerConfig, type PowerDriver, PowerError, type PowerState, powerTarget } from "./power.ts";

export type RedfishConfig = Extract<PowerConfig, { kind: "redfish" }>;

/** The PATCH body of a one-time network boot (pure). */
export function redfishBootPatch(via: NetBoot, firmware: Firmware) {
  return {
    Boot: {
      BootSourceOverrideTarget: via === "pxe" ? "Pxe" : "UefiHttp",
      BootSourceOverrideEnabled: "Once",
      BootSourceOverrideMode: firmware === "uefi" ? "UEFI" : "Legacy",
    },
  } as const;
}

/** The PATCH body that leaves no boot override (pure): the next boot is the system's own. */
export const REDFISH_CLEAR_BOOT = { Boot: { BootSourceOverrideEnabled: "Disabled" } } as const;

/** Redfish's PowerState in ours (pure): the transitions count as where they go. */
export function redfishPowerState(s: unknown): PowerState | undefined {
  if (s === "On" || s === "PoweringOn" || s === "Paused") return "on";
  if (s === "Off" || s === "PoweringOff") return "off";
  return undefined;
}

/** The ResetType for a power cycle: PowerCycle where the system lists it, else ForceRestart (pure). */
export function cycleResetType(allowed: unknown): string {
  return Array.isArray(allowed) && allowed.includes("PowerCycle") ? "PowerCycle" : "ForceRestart";
}

/**
 * One HTTP(S) request, its answer read whole. With a pinned fingerprint the TLS connection is
 * made first and its certificate compared, and only then handed to the request: no byte of it
 * (the Basic credentials least of all) reaches a service that shows another certificate.
 */
function send(url: URL, o: { method: string; headers: Record<string, string>; body?: string; timeoutMs: number; fingerprint?: string }): Promise<{ status: number; statusText: string; text: string }> {
  return new Promise((resolve, reject) => {
    const https = url.protocol === "https:";
    // A connection of its own each time (agent: false); pinned, the connection we made (no agent at all).
    const options: RequestOptions = { method: o.method, headers: o.headers, signal: AbortSignal.timeout(o.timeoutMs) };
    if (!https || !o.fingerprint) options.agent = false;
    else {
      const pinned = o.fingerprint;
      options.createConnection = (_opts, done) => {
        const socket = tlsConnect({ host: url.hostname, port: Number(url.port || 443), servername: isIP(url.hostname) ? undefined : url.hostname, rejectUnauthorized: false });
        socket.setTimeout(o.timeoutMs, () => socket.destroy(Object.assign(new Error("TLS connect timed out"), { code: "ETIMEDOUT" })));
        socket.once("error", (err) => done(err, socket));
        socket.once("secureConnect", () => {
          const seen = socket.getPeerCertificate().fingerprint256;
          if (seen === pinned) return done(null, socket);
          socket.destroy();
          done(new PowerError("refused", `presented the certificate ${seen ?? "(none)"}, not the pinned ${pinned}: refused, nothing sent`), socket);
        });
        return undefined;
      };
    }
    const req = (https ? httpsRequest : httpRequest)(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

interface SystemResource {
  PowerState?: string;
  Actions?: Record<string, { target?: string; "ResetType@Redfish.AllowableValues"?: string[] }>;
}

export class RedfishDriver implements PowerDriver {
  readonly kind = "redfish";
  readonly can = { status: true, off: true, cycle: true, oneTimeBoot: true };
  private systemPath: string | undefined;

  constructor(
    private readonly config: RedfishConfig,
    private readonly password: string,
    private readonly timeoutMs = 10_000,
  ) {}

  private async request(method: string, path: string, body?: unknown): Promise<unknown> {
    const who = powerTarget(this.config);
    let res: { status: number; statusText: string; text: string };
    try {
      res = await send(new URL(path, this.config.url), {
        method,
        headers: {
          authorization: `Basic ${Buffer.from(`${this.config.user}:${this.password}`).toString("base64")}`,
          accept: "application/json",
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        timeoutMs: this.timeoutMs,
        fingerprint: this.config.tlsFingerprint,
      });
    } catch (err) {
      if (err instanceof PowerError) throw new PowerError(err.failure, `${who} ${err.message}`);
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).name;
      if (/CERT|SELF_SIGNED|UNABLE_TO|ERR_TLS/.test(code))
        throw new PowerError("unreachable", `${who}: its certificate is not trusted (${code}); pin it with --tls-fingerprint (its SHA-256, as openssl x509 -noout -fingerprint -sha256 prints it)`);
      throw new PowerError("unreachable", `${who} does not answer (${code})`);
    }
    const { text } = res;
    if (res.status === 401 || res.status === 403) throw new PowerError("auth", `${who} refused user ${this.config.user} or its password (${res.status})`);
    if (res.status < 200 || res.status > 299) {
      let msg = res.statusText;
      try {
        const e = (JSON.parse(text) as { error?: { message?: string; "@Message.ExtendedInfo"?: Array<{ Message?: string }> } }).error;
        msg = e?.["@Message.ExtendedInfo"]?.[0]?.Message ?? e?.message ?? msg;
      } catch {
        // not JSON: the status line says it
      }
      throw new PowerError("refused", `${who}: ${method} ${path}: ${res.status} ${msg}`.replace(/\s+/g, " "));
    }
    return text ? (JSON.parse(text) as unknown) : undefined;
  }

  /** The first system of the service's Systems collection. */
  private async system(): Promise<string> {
    if (!this.systemPath) {
      const col = (await this.request("GET", "/redfish/v1/Systems")) as { Members?: Array<{ "@odata.id"?: string }> };
      const first = col?.Members?.[0]?.["@odata.id"];
      if (!first) throw new PowerError("refused", `${powerTarget(this.config)}: /redfish/v1/Systems lists no system`);
      this.systemPath = first;
    }
    return this.systemPath;
  }

  private async reset(type: (allowed: unknown) => string): Promise<void> {
    const path = await this.system();
    const sys = (await this.request("GET", path)) as SystemResource;
    const action = sys.Actions?.["#ComputerSystem.Reset"];
    await this.request("POST", action?.target ?? `${path}/Actions/ComputerSystem.Reset`, { ResetType: type(action?.["ResetType@Redfish.AllowableValues"]) });
  }

  async status(): Promise<PowerState> {
    const sys = (await this.request("GET", await this.system())) as SystemResource;
    const state = redfishPowerState(sys.PowerState);
    if (!state) throw new PowerError("refused", `${powerTarget(this.config)}: unexpected PowerState ${JSON.stringify(sys.PowerState)}`);
    return state;
  }

  async on(): Promise<void> {
    await this.reset(() => "On");
  }

  async off(): Promise<void> {
    await this.reset(() => "ForceOff");
  }

  async cycle(): Promise<void> {
    await this.reset(cycleResetType);
  }

  async setOneTimeBoot(via: NetBoot, firmware: Firmware): Promise<void> {
    await this.request("PATCH", await this.system(), redfishBootPatch(via, firmware));
  }

  async clearOneTimeBoot(): Promise<void> {
    await this.request("PATCH", await this.system(), REDFISH_CLEAR_BOOT);
  }
}
