export {
  checkSchemaDocument,
  JSON_OBJECT_GBNF,
  type JsonSchemaToGbnfOptions,
  jsonSchemaToGbnf,
  regexToGbnf,
} from "./json-schema-to-gbnf.ts";
export { DEFAULT_SCHEMA_LIMITS, type SchemaLimits } from "./limits.ts";
export { SchemaError, type SchemaErrorCode } from "./schema-error.ts";
