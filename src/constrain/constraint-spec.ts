/**
 * What a request asks its output to follow, before compilation to a grammar. `param` names the request field it
 * came from, so a refusal can point at it.
 */

export type ConstraintKind = "json_object" | "json_schema" | "grammar" | "regex" | "choice";

export const CONSTRAINT_KINDS: readonly ConstraintKind[] = ["json_object", "json_schema", "grammar", "regex", "choice"];

export type ConstraintSpec =
  | { readonly kind: "json_object"; readonly param: string }
  | { readonly kind: "json_schema"; readonly schema: unknown; readonly param: string }
  | { readonly kind: "grammar"; readonly gbnf: string; readonly param: string }
  | { readonly kind: "regex"; readonly pattern: string; readonly param: string }
  | { readonly kind: "choice"; readonly choices: readonly string[]; readonly param: string };
