/** `$ref` resolution inside one document: `#`, `#/json/pointer`, and absolute forms naming the root's own `$id`. */
import { isSchemaObject } from "./normalize-schema.ts";
import { SchemaError } from "./schema-error.ts";

export interface ResolvedRef {
  readonly schema: unknown;
  /** The target's JSON pointer, which identifies it: two refs to one target share one rule. */
  readonly pointer: string;
}

export function resolveRef(root: unknown, ref: string, pointer: string): ResolvedRef {
  const fragment = fragmentOf(root, ref);
  if (fragment === null || (fragment !== "" && !fragment.startsWith("/"))) {
    throw new SchemaError("unresolvable_ref", "$ref", pointer, `"${ref}" is not a JSON pointer into this document`);
  }
  let target: unknown = root;
  let decoded: string;
  try {
    decoded = decodeURIComponent(fragment);
  } catch {
    throw new SchemaError("unresolvable_ref", "$ref", pointer, `"${ref}" is not a valid URI fragment`);
  }
  const tokens = decoded === "" ? [] : decoded.slice(1).split("/");
  for (const raw of tokens) {
    const token = raw.replaceAll("~1", "/").replaceAll("~0", "~");
    if (Array.isArray(target) && /^(0|[1-9][0-9]*)$/.test(token)) target = target[Number(token)];
    else if (isSchemaObject(target) && Object.hasOwn(target, token)) target = target[token];
    else throw new SchemaError("unresolvable_ref", "$ref", pointer, `"${ref}" points at nothing`);
  }
  return { schema: target, pointer: tokens.length === 0 ? "" : `/${tokens.map(escapeToken).join("/")}` };
}

function fragmentOf(root: unknown, ref: string): string | null {
  const hash = ref.indexOf("#");
  const base = hash === -1 ? ref : ref.slice(0, hash);
  const fragment = hash === -1 ? "" : ref.slice(hash + 1);
  if (base === "") return fragment;
  const rootId = isSchemaObject(root) ? (root.$id ?? root.id) : undefined;
  return typeof rootId === "string" && rootId.replace(/#$/, "") === base ? fragment : null;
}

export function escapeToken(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}

export function childPointer(pointer: string, ...tokens: readonly (string | number)[]): string {
  return `${pointer}${tokens.map((token) => `/${escapeToken(String(token))}`).join("")}`;
}
