/**
 * The request fields that constrain output, as each anchor spells them: OpenAI's `response_format`, llama-server's
 * `json_schema` and `grammar`, vLLM's `structured_outputs`. Each becomes one `ConstraintSpec`, naming the field it
 * came from so a refusal points at it; a request may carry one constraint only.
 */
import { z } from "zod";
import type { ConstraintSpec } from "../constrain/constraint-spec.ts";
import { PagodaError } from "./errors.ts";

const jsonSchemaObject = z.record(z.string(), z.unknown());

export const responseFormatField = z
  .discriminatedUnion("type", [
    z.object({ type: z.literal("text") }),
    // llama-server reads a schema beside json_object too.
    z.object({ type: z.literal("json_object"), schema: jsonSchemaObject.nullish() }),
    z.object({
      type: z.literal("json_schema"),
      json_schema: z.object({
        name: z.string().max(64).nullish(),
        description: z.string().nullish(),
        schema: z.union([jsonSchemaObject, z.boolean()]).nullish(),
        strict: z.boolean().nullish(),
      }),
    }),
  ])
  .nullish();

/** vLLM's `structured_outputs`; exactly one of its members. */
const structuredOutputsField = z
  .object({
    json: z.union([jsonSchemaObject, z.boolean(), z.string()]).nullish(),
    json_object: z.boolean().nullish(),
    regex: z.string().nullish(),
    choice: z.array(z.string()).min(1).nullish(),
    grammar: z.string().nullish(),
  })
  .nullish();

/** Constraint fields both generation routes accept. */
export const constraintFields = {
  response_format: responseFormatField,
  /** llama-server's: a JSON schema for the output. */
  json_schema: z.union([jsonSchemaObject, z.boolean()]).nullish(),
  /** llama-server's: GBNF for the output. */
  grammar: z.string().nullish(),
  structured_outputs: structuredOutputsField,
};

const constraintObject = z.object(constraintFields);
export type ConstraintFields = z.infer<typeof constraintObject>;

/** The one constraint a request carries, or null; two or more are a 400 naming them. */
export function constraintOf(body: ConstraintFields): ConstraintSpec | null {
  const found: ConstraintSpec[] = [];
  const format = body.response_format;
  if (format?.type === "json_object") {
    found.push(
      format.schema == null
        ? { kind: "json_object", param: "response_format" }
        : { kind: "json_schema", schema: format.schema, param: "response_format.schema" },
    );
  } else if (format?.type === "json_schema") {
    const schema = format.json_schema.schema ?? {};
    found.push({ kind: "json_schema", schema, param: "response_format.json_schema.schema" });
  }
  if (body.json_schema != null) found.push({ kind: "json_schema", schema: body.json_schema, param: "json_schema" });
  if (body.grammar != null && body.grammar.length > 0)
    found.push({ kind: "grammar", gbnf: body.grammar, param: "grammar" });
  found.push(...structuredOutputsOf(body.structured_outputs ?? null));
  if (found.length > 1) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `A request may carry one output constraint; this one has ${found.map((spec) => spec.param).join(", ")}`,
      { param: found[1]?.param ?? null },
    );
  }
  return found[0] ?? null;
}

function structuredOutputsOf(fields: z.infer<typeof structuredOutputsField> | null): ConstraintSpec[] {
  if (fields == null) return [];
  const specs: ConstraintSpec[] = [];
  if (fields.json != null) {
    const param = "structured_outputs.json";
    specs.push({
      kind: "json_schema",
      schema: typeof fields.json === "string" ? parseSchema(fields.json, param) : fields.json,
      param,
    });
  }
  if (fields.json_object === true) specs.push({ kind: "json_object", param: "structured_outputs.json_object" });
  if (fields.regex != null) specs.push({ kind: "regex", pattern: fields.regex, param: "structured_outputs.regex" });
  if (fields.choice != null) specs.push({ kind: "choice", choices: fields.choice, param: "structured_outputs.choice" });
  if (fields.grammar != null)
    specs.push({ kind: "grammar", gbnf: fields.grammar, param: "structured_outputs.grammar" });
  return specs;
}

/** vLLM accepts the schema as a JSON string as well. */
function parseSchema(text: string, param: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `${param} is a string but not JSON: ${(error as Error).message}`,
      {
        param,
        cause: error,
      },
    );
  }
}
