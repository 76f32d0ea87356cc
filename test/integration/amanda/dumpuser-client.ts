/**
 * Run by dumpuser-helper.test.ts inside a transient unit with lifeboat.service's sandbox (an
 * unprivileged user, NoNewPrivileges, its capabilities): Lifeboat's own code paths for
 * amadmin find and amfetchdump, through the dump-user helper. Prints one JSON object.
 * argv: CONFIG SOCKET DUMP_FILE (the CatalogDump as JSON)
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { userInfo } from "node:os";
import { amadminFind } from "../../../server/amanda/amadmin.ts";
import type { CatalogDump } from "../../../server/amanda/model.ts";
import { openDumpStream } from "../../../server/amanda/stream.ts";

const [config, socket, dumpFile] = process.argv.slice(2) as [string, string, string];
const access = { dumpuser: "backup", helperSocket: socket };
const message = async (f: () => Promise<unknown>) => f().then(() => "no error", (e: Error) => e.message);
const hash = createHash("sha256");
for await (const c of openDumpStream(JSON.parse(readFileSync(dumpFile, "utf8")) as CatalogDump, { dumpUser: access }).stream) hash.update(c as Buffer);
process.stdout.write(
  JSON.stringify({
    user: userInfo().username,
    noNewPrivs: /^NoNewPrivs:\s*1$/m.test(readFileSync("/proc/self/status", "utf8")),
    rows: (await amadminFind(config, access)).length,
    sha256: hash.digest("hex"),
    missing: await message(() => amadminFind(config, { ...access, helperSocket: "/run/no-such-helper.sock" })),
  }),
);
