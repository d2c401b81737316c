/**
 * The JSON schema the constrained benchmarks ask for: a record of the kind extraction pipelines want, with bounded
 * strings, an enum, an integer range and a short array.
 */
export const EXTRACTION_SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 40 },
    kind: { enum: ["person", "place", "thing"] },
    count: { type: "integer", minimum: 0, maximum: 1000 },
    tags: { type: "array", items: { type: "string", maxLength: 16 }, maxItems: 4 },
  },
  required: ["name", "kind", "count", "tags"],
  additionalProperties: false,
};
