/**
 * Lease writes commit in groups (server/store/sqlite-leases.ts): an ACK leaves only after its
 * group committed. Killed with SIGKILL in the middle of a flood, the real `lifeboat serve`
 * must have every lease it ACKed in its store, bound to the machine it was ACKed to.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { SqliteStore } from "../../../server/store/sqlite.ts";
import { type Lan, createLan, netnsUnavailable } from "../../helpers/netns.ts";
import { describeNeeding } from "../../helpers/needs.ts";
import { tempDir } from "../../helpers/tmp.ts";
import { serveInNs } from "./lifeboat-ns.ts";

const skip = await netnsUnavailable();
const relayClients = fileURLToPath(new URL("./dhcp-relay-clients.ts", import.meta.url));
let lan: Lan;

describeNeeding(skip, "DHCP full mode killed mid-flood", () => {
  beforeAll(async () => {
    lan = await createLan({ prefix: "lbp-crash", subnet: "10.231.65", members: { srv: 1, cli: 2 } });
  });
  afterAll(async () => {
    await lan?.down();
  });

  it("every ACKed lease is in the store after a SIGKILL mid-flood", async () => {
    const dir = tempDir("lifeboat-dhcp-crash-");
    const s = await serveInNs(lan, "srv", dir, {
      log: { level: "info" },
      listen: { interface: "eth0" },
      http: { port: 8080 },
      tftp: { enabled: false },
      dhcp: { mode: "full", pool: { start: "10.231.65.10", end: "10.231.65.250", leaseSeconds: 3600 } },
    }, ["dhcp"]);
    const client = lan.exec("cli", [process.execPath, "--import", "tsx", relayClients, lan.ip("cli"), lan.ip("srv"), "200", "4000"], { timeout: 30_000 });
    await new Promise((r) => setTimeout(r, 2000));
    s.proc.kill("SIGKILL");
    await Promise.race([s.proc, new Promise((r) => setTimeout(r, 5000))]);
    const r = await client;
    expect(r.stderr).toBe("");
    const acks = r.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as { mac: string; ip: string });
    // The kill came in the middle of the flood (handshakes were completing), not before it; the
    // flood goes on for 2 s after it.
    expect(acks.length).toBeGreaterThan(20);
    const store = new SqliteStore(join(dir, "lifeboat.db"));
    try {
      const leases = new Map((await store.leases.list()).map((l) => [l.ip, l]));
      const lost = acks.filter((a) => leases.get(a.ip)?.mac !== a.mac || leases.get(a.ip)?.state !== "bound");
      expect(lost).toEqual([]);
    } finally {
      await store.close();
    }
  }, 60_000);
});
