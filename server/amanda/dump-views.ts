/** The catalog as the CLI and the API show it: one shape, used by both (the CLI contract). */
import type { Chain } from "./chain.ts";
import type { CatalogDump } from "./model.ts";

export interface DumpSummary {
  id: string;
  host: string;
  disk: string;
  level: number;
  datestamp: string;
  program: string;
  compression: string;
  sizeBytes: number | null;
  location: CatalogDump["location"];
  amanda: string;
  /** Why the dump cannot be read; null when it can. */
  problem: string | null;
}

export function dumpSummary(d: CatalogDump): DumpSummary {
  return {
    id: d.id,
    host: d.host,
    disk: d.disk,
    level: d.level,
    datestamp: d.datestamp,
    program: d.program,
    compression: d.compression,
    sizeBytes: d.sizeBytes,
    location: d.location,
    amanda: d.amanda,
    problem: d.problem,
  };
}

export function chainView(c: Chain): { host: string; disk: string; at: string | null; dumps: DumpSummary[] } {
  return { host: c.host, disk: c.disk, at: c.at, dumps: c.dumps.map(dumpSummary) };
}

const location = {
  type: "object",
  required: ["kind", "label", "fileNo"],
  properties: {
    kind: { type: "string", enum: ["vtape", "holding", "tape"] },
    label: { type: "string" },
    fileNo: { type: "integer" },
    slot: { type: "integer" },
    path: { type: "string" },
    parts: {
      type: "array",
      items: {
        type: "object",
        required: ["partNo", "label", "fileNo"],
        properties: { partNo: { type: "integer" }, label: { type: "string" }, fileNo: { type: "integer" }, path: { type: "string" }, sizeBytes: { type: "integer" } },
      },
    },
  },
} as const;

/** JSON Schema of DumpSummary (the API contract; responses are serialised through it). */
export const dumpSummarySchema = {
  type: "object",
  required: ["id", "host", "disk", "level", "datestamp", "program", "compression", "sizeBytes", "location", "amanda", "problem"],
  properties: {
    id: { type: "string" },
    host: { type: "string" },
    disk: { type: "string" },
    level: { type: "integer" },
    datestamp: { type: "string" },
    program: { type: "string" },
    compression: { type: "string" },
    sizeBytes: { type: ["integer", "null"] },
    location,
    amanda: { type: "string" },
    problem: { type: ["string", "null"] },
  },
} as const;
