/**
 * Which NIC of the new machine each captured NIC becomes (issue 21 item 3), so the restored
 * system names and configures the new NIC as it did the old one (the map_nic step). Pure.
 *
 * By the admin's mapping first (captured name → new MAC), then by MAC (the same hardware),
 * then by order (the captured NICs in capture order onto the machine's other NICs in the order
 * it reported them). What a capture says is hostile: a name or MAC that is not one is left
 * alone with a note, never written into a path or a config.
 */
import { isMac, normalizeMac } from "../mac.ts";

/** A NIC name as configs write it: 1-15 characters (IFNAMSIZ), letters, digits, '_', '.', '-', not "." or "..". */
export const NIC_NAME = /^(?!\.\.?$)[A-Za-z0-9_.-]{1,15}$/;

export interface CapturedNic {
  name: string;
  mac: string;
  driver?: string | null;
  defaultRoute?: boolean;
}

export interface NicMatch {
  /** The captured NIC's name, which the new NIC gets. */
  name: string;
  oldMac: string;
  newMac: string;
  by: "admin" | "mac" | "order";
}

export interface NicMapping {
  matches: NicMatch[];
  /** What is left alone, and why (the plan's notes). */
  notes: string[];
  /** Why the admin's mapping cannot be followed (the plan is refused). */
  problems: string[];
}

/** `current`: the new machine's NIC MACs as it reported them; `admin`: captured name → new MAC. */
export function mapNics(captured: readonly CapturedNic[], current: readonly string[], admin: Readonly<Record<string, string>> = {}): NicMapping {
  const notes: string[] = [];
  const problems: string[] = [];
  const nics: CapturedNic[] = [];
  for (const n of captured) {
    if (!NIC_NAME.test(n.name) || !isMac(n.mac)) notes.push(`captured NIC ${JSON.stringify(n.name)} (${JSON.stringify(n.mac)}) left alone: not a NIC name and MAC`);
    else nics.push({ ...n, mac: normalizeMac(n.mac) });
  }
  const free = [...new Set(current.filter(isMac).map(normalizeMac))];
  const take = (mac: string) => free.splice(free.indexOf(mac), 1);
  const matches: NicMatch[] = [];
  const unmatched: CapturedNic[] = [];
  for (const [name, mac] of Object.entries(admin)) {
    const nic = nics.find((n) => n.name === name);
    const want = isMac(mac) ? normalizeMac(mac) : undefined;
    if (!nic) problems.push(`NIC mapping ${name}=${mac}: the layout has no NIC named ${name}`);
    else if (!want || !free.includes(want)) problems.push(`NIC mapping ${name}=${mac}: the machine reported no${want ? " free" : ""} NIC with that MAC`);
    else {
      take(want);
      matches.push({ name, oldMac: nic.mac, newMac: want, by: "admin" });
    }
  }
  for (const nic of nics) {
    if (matches.some((m) => m.name === nic.name)) continue;
    if (free.includes(nic.mac)) {
      take(nic.mac);
      matches.push({ name: nic.name, oldMac: nic.mac, newMac: nic.mac, by: "mac" });
    } else unmatched.push(nic);
  }
  for (const nic of unmatched) {
    const mac = free.shift();
    if (mac) matches.push({ name: nic.name, oldMac: nic.mac, newMac: mac, by: "order" });
    else notes.push(`captured NIC ${nic.name} (${nic.mac}) has no NIC left on this machine: its configuration is left as it was`);
  }
  // map_nic rewrites one MAC at a time: a NIC taking the MAC another captured NIC gives up would be rewritten twice.
  for (const m of matches) {
    const other = matches.find((o) => o !== m && o.oldMac === m.newMac && o.oldMac !== o.newMac);
    if (other && m.oldMac !== m.newMac) problems.push(`NIC mapping: ${m.name} would take ${m.newMac}, which ${other.name} gives up; map ${other.name} to its own MAC`);
  }
  // In capture order, for people and for a stable plan.
  matches.sort((x, y) => nics.findIndex((n) => n.name === x.name) - nics.findIndex((n) => n.name === y.name));
  return { matches, notes, problems };
}

/** One line per match, for the plan's notes (`jobs plan`, the page). */
export function describeNicMatch(m: NicMatch): string {
  const how = m.by === "mac" ? "same MAC" : m.by === "admin" ? "the admin's mapping" : "by order";
  return `NIC ${m.name} ${m.oldMac} → ${m.newMac} [${how}]`;
}
