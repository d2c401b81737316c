/**
 * Checking what a client got against the JSON schema that client put on the wire, in the dialect the schema names
 * (draft-07 from `openai`'s and the AI SDK's zod converters, 2020-12 from LangChain's), formats included.
 */
import assert from "node:assert/strict";
import { Ajv } from "ajv";
import { Ajv2020 } from "ajv/dist/2020.js";
import formats from "ajv-formats";

const ajv07 = new Ajv({ strict: false, allErrors: true });
const ajv2020 = new Ajv2020({ strict: false, allErrors: true });
// ajv-formats is CommonJS: its default import is either the plugin or its exports object; both carry `default`.
formats.default(ajv07);
formats.default(ajv2020);

export function assertSatisfies(schema: unknown, value: unknown): void {
  assert.ok(typeof schema === "object" && schema !== null, "the client sent a schema object");
  const is2020 = (schema as Record<string, unknown>).$schema === "https://json-schema.org/draft/2020-12/schema";
  const ajv = is2020 ? ajv2020 : ajv07;
  const validate = ajv.compile(schema);
  assert.ok(
    validate(value),
    `${JSON.stringify(value)} does not satisfy the schema: ${ajv.errorsText(validate.errors)}`,
  );
}
