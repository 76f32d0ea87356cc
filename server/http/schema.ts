import { z } from "zod";

/**
 * A zod schema as the JSON Schema fastify validates with and OpenAPI publishes: one
 * definition serves the contract, the validation and the document. `io: "input"` so
 * fields with defaults are optional for the caller.
 */
export function jsonSchema(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = z.toJSONSchema(schema, { io: "input", target: "draft-7" }) as Record<string, unknown>;
  return rest;
}
