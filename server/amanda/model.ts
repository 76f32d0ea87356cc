/** The catalog's values: one record per dump (host, disk, datestamp, level) and where its bytes are. */
import { createHash } from "node:crypto";
import type { Compression, Crc } from "./header.ts";

/** One stored piece of a dump: a tape part (vtape file) or a holding-disk chunk. */
export interface DumpPart {
  partNo: number;
  label: string;
  fileNo: number;
  /** Absolute file path (vtape file or holding chunk) when the piece is on disk. */
  path?: string;
  /** Payload bytes of this piece (header excluded), when known. */
  sizeBytes?: number;
}

export interface DumpLocation {
  kind: "vtape" | "holding" | "tape";
  /** Volume label of the first part; "HOLDING" for the holding disk (as `amadmin find` prints). */
  label: string;
  /** Tape file number of the first part; 0 on the holding disk. */
  fileNo: number;
  /** chg-disk slot number holding the volume. */
  slot?: number;
  /** vtape: the slot directory; holding: the first chunk. */
  path?: string;
  /** Every part (tape) or chunk (holding), in order. */
  parts?: DumpPart[];
}

/** Which side encrypted a dump, and with which program (as the header names it; null: not named). */
export interface DumpEncryption {
  side: "server" | "client";
  program: string | null;
}

export type DumpSource = "log" | "scan" | "amadmin";

export interface CatalogDump {
  /** Stable id: the same dump gets the same id from logs, media scan or another server. */
  id: string;
  /** Amanda config name. */
  amanda: string;
  host: string;
  disk: string;
  level: number;
  /** 14 digits (8 for Amanda 2.x media), as Amanda writes it. */
  datestamp: string;
  /** The backup program: the application (amgtar...) for `program APPLICATION`, else GNUTAR, DUMP or a 2.x path. */
  program: string;
  compression: Compression | "unknown";
  /** The custom compressor named in the header, for compression "custom". */
  compressProgram: string | null;
  encrypted: boolean;
  /**
   * How an encrypted dump was encrypted (the header's server_encrypt/client_encrypt program);
   * absent on catalog rows stored before Lifeboat read it, null for a dump that is not.
   */
  encryption?: DumpEncryption | null;
  /** Bytes as stored (after compression), when known. */
  sizeBytes: number | null;
  origKb: number | null;
  /** Amanda's CRC-32Cs (3.4+): native = tar stream, client = as it left the client, server = as written. */
  crc: { native: Crc | null; client: Crc | null; server: Crc | null };
  location: DumpLocation;
  status: "ok" | "partial";
  /** Why the dump cannot be read as it stands (missing part or tape); null when complete. */
  problem: string | null;
  sources: DumpSource[];
}

export function dumpKey(d: { host: string; disk: string; datestamp: string; level: number }): string {
  return `${d.host}\0${d.disk}\0${d.datestamp}\0${d.level}`;
}

export function dumpId(d: { host: string; disk: string; datestamp: string; level: number }): string {
  return createHash("sha256").update(dumpKey(d)).digest("hex").slice(0, 16);
}

/** "host:disk L0 20261124020601", the way errors name a dump. */
export function dumpName(d: { host: string; disk: string; datestamp: string; level: number }): string {
  return `${d.host}:${JSON.stringify(d.disk)} L${d.level} ${d.datestamp}`;
}

/** The program the rest of Lifeboat cares about: the application for `program APPLICATION`. */
export function programOf(program: string, application: string | null): string {
  return program === "APPLICATION" && application ? application : program;
}
