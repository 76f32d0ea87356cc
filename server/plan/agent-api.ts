import { z } from "zod";

/**
 * The HTTP contract between the rescue agent (rescue-image/agent, POSIX sh + curl) and
 * Lifeboat. Every agent route sits under AGENT_BASE/:job and needs
 * `Authorization: Bearer <lifeboat.token>`; a token sees only its own job.
 * The agent routes of the HTTP room validate against these schemas,
 * and the agent's sh is tested against them.
 */
export const AGENT_BASE = "/api/v1/agent/jobs";

/** Where dumps are served; a plan's restore_dump steps stream from dumpStreamPath (its one spelling). */
export const DUMPS_BASE = "/api/v1/dumps";
export const dumpStreamPath = (dumpId: string) => `${DUMPS_BASE}/${encodeURIComponent(dumpId)}/stream`;

/**
 * The answer to any agent call once the job has ended on the server: the admin cancelled it, it
 * failed (or was given up after stalling), it expired, or it is done and the call was not the
 * agent's repeated "done". HTTP JOB_ENDED_STATUS with a `jobEndedSchema` body, distinct from every
 * other refusal: the agent stops before its next step, leaves the disks as they are, says so on
 * the console and in the log it posts, and waits for the admin (lib.sh: lb_post_try returns 3).
 */
export const JOB_ENDED_STATUS = 410;
export const jobEndedSchema = z.object({
  error: z.literal("job-ended"),
  state: z.enum(["done", "failed", "cancelled", "expired"]),
  message: z.string(),
});
export type JobEnded = z.infer<typeof jobEndedSchema>;

/** A disk as the agent sees it (from lsblk -J -b -O and /dev/disk/by-id). */
export const targetDiskSchema = z.object({
  /** Kernel name, e.g. "sda", "nvme0n1", "vda". */
  name: z.string(),
  /** Device path, e.g. "/dev/sda". */
  path: z.string(),
  sizeBytes: z.number().int().nonnegative(),
  serial: z.string().nullable().default(null),
  wwn: z.string().nullable().default(null),
  model: z.string().nullable().default(null),
  /** Transport: sata, nvme, virtio, usb, scsi… */
  bus: z.string().nullable().default(null),
  byId: z.array(z.string()).default([]),
  logicalSectorSize: z.number().int().positive().default(512),
  /** Signatures found on the disk now (wipefs -n / blkid), so the dry run shows what would be lost. */
  signatures: z.array(z.string()).default([]),
  removable: z.boolean().default(false),
});
export type TargetDisk = z.infer<typeof targetDiskSchema>;

export const helloSchema = z.object({
  disks: z.array(targetDiskSchema),
  hardware: z
    .object({
      firmware: z.enum(["bios", "uefi"]).optional(),
      smbiosUuid: z.string().optional(),
      macs: z.array(z.string()).default([]),
      ip: z.string().optional(),
      kernel: z.string().optional(),
      memBytes: z.number().optional(),
      cpus: z.number().optional(),
    })
    .default({ macs: [] }),
  /** Where a colleague can SSH in for remote help, when dropbear runs. */
  ssh: z.string().optional(),
});
export type Hello = z.infer<typeof helloSchema>;

export const agentEventSchema = z.discriminatedUnion("type", [
  z.object({ type: z.literal("step-start"), step: z.number().int().positive(), of: z.number().int().positive(), name: z.string() }),
  z.object({
    type: z.literal("step-end"),
    step: z.number().int().positive(),
    of: z.number().int().positive(),
    name: z.string(),
    exitStatus: z.number().int(),
    /** The step's combined output, tail-trimmed by the agent. */
    output: z.string().default(""),
    skipped: z.boolean().default(false),
  }),
  z.object({
    type: z.literal("stream"),
    dumpId: z.string(),
    bytes: z.number().int().nonnegative(),
    totalBytes: z.number().int().nonnegative().nullable().default(null),
    done: z.boolean().default(false),
  }),
  z.object({ type: z.literal("log"), message: z.string() }),
  z.object({ type: z.literal("done") }),
  z.object({ type: z.literal("failed"), step: z.number().int().optional(), error: z.string() }),
]);
export type AgentEvent = z.infer<typeof agentEventSchema>;
