/**
 * A JSON string that is none of a set of names, for the keys of additional properties: a key equal to a declared
 * property would be a duplicate that JSON.parse resolves by keeping the last value, which the declared property's
 * schema never checked. Keys are built on a trie of the names: at each node the string may end (unless a name ends
 * there), continue along the trie, or leave it with any other character.
 *
 * Such keys are written without escapes, stricter than JSON: `"\u0061"` is "a", and excluding every spelling of
 * every name is not worth the grammar.
 */
import { charSetOf, complement, jsonCharGbnf, union } from "./char-set.ts";
import { alternatives, type GbnfBuilder, gbnfLiteral, sequence } from "./gbnf-builder.ts";

interface TrieNode {
  readonly children: Map<number, TrieNode>;
  isEnd: boolean;
  name: string;
}

const UNESCAPED = complement(
  charSetOf([
    [0x00, 0x1f],
    [0x22, 0x22],
    [0x5c, 0x5c],
  ]),
);

export function keyExcludingGbnf(names: readonly string[], builder: GbnfBuilder, pointer: string): string {
  const root: TrieNode = { children: new Map(), isEnd: false, name: "" };
  const nodes: TrieNode[] = [root];
  for (const name of names) {
    const codes = Array.from(name, (char) => char.codePointAt(0) ?? 0);
    // A name with a character JSON must escape can never be written without escapes: nothing to exclude.
    if (codes.some((code) => code < 0x20 || code === 0x22 || code === 0x5c)) continue;
    let node = root;
    for (const code of codes) {
      let next = node.children.get(code);
      if (next === undefined) {
        next = { children: new Map(), isEnd: false, name: "" };
        node.children.set(code, next);
        nodes.push(next);
      }
      node = next;
    }
    node.isEnd = true;
  }
  const plainChar = builder.atom(jsonCharGbnf(UNESCAPED), "key-char", pointer);
  const rest = builder.rule("key-rest", `${plainChar}* "\\""`, pointer);
  for (const node of nodes) node.name = builder.reserve("key", pointer);
  // Children were added after their parents, so defining in reverse order never meets an undefined child.
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i] as TrieNode;
    const alts: string[] = [];
    if (!node.isEnd) alts.push('"\\""');
    const childSet = charSetOf([...node.children.keys()].map((code) => [code, code] as const));
    for (const [code, child] of node.children)
      alts.push(sequence([gbnfLiteral(String.fromCodePoint(code)), child.name]));
    const others = complement(union(childSet, complement(UNESCAPED)));
    if (others.length > 0) alts.push(sequence([jsonCharGbnf(others), rest]));
    builder.define(node.name, alternatives(alts), pointer);
  }
  return `"\\"" ${root.name}`;
}
