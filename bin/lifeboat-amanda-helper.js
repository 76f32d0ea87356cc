#!/usr/bin/env node
// The dump-user helper (config/lifeboat-amanda@.service): one accepted connection on fd 0,
// one amadmin find or amfetchdump run as this process's user (server/amanda/dumpuser.ts).
import { register } from "tsx/esm/api";

register();
const { helperMain } = await import("../server/amanda/run-dumpuser.ts");
await helperMain();
