/**
 * fast-check arbitraries for valid GBNF grammars: rules reference only later rules (so no left recursion), and
 * repetitions wrap only expressions that cannot match the empty string.
 */
import fc from "fast-check";
import type { GbnfElement, GbnfGrammar, GbnfSequence } from "../../../src/constrain/gbnf/index.ts";

const codePoint = fc.oneof(
  fc.integer({ min: 0x20, max: 0x7e }),
  fc.constantFrom(0x00, 0x09, 0x0a, 0x0d, 0x22, 0x2d, 0x5b, 0x5c, 0x5d, 0x5e, 0x7f, 0xe9, 0x3042, 0x1f600, 0x10ffff),
  fc.integer({ min: 0, max: 0x10ffff }).filter((value) => value < 0xd800 || value > 0xdfff),
);

const literal: fc.Arbitrary<GbnfElement> = fc
  .array(codePoint, { minLength: 1, maxLength: 4 })
  .map((codePoints) => ({ kind: "literal", value: String.fromCodePoint(...codePoints) }));

const charClass: fc.Arbitrary<GbnfElement> = fc
  .record({
    isNegated: fc.boolean(),
    ranges: fc.array(
      fc.tuple(codePoint, fc.nat({ max: 40 })).map(([start, width]) => {
        const end = Math.min(start + width, 0x10ffff);
        return { start, end: start < 0xd800 && end >= 0xd800 ? 0xd7ff : end };
      }),
      { minLength: 1, maxLength: 3 },
    ),
  })
  .map(({ isNegated, ranges }) => ({ kind: "char-class", isNegated, ranges }));

const bounds = fc.oneof(
  fc.constantFrom<[number, number | null]>([0, null], [1, null], [0, 1], [2, null]),
  fc.tuple(fc.nat({ max: 3 }), fc.nat({ max: 3 })).map(([min, extra]): [number, number | null] => [min, min + extra]),
);

/** Elements that never match the empty string, so any repetition of them is allowed. */
function solidElement(depth: number): fc.Arbitrary<GbnfElement> {
  const leaves = [literal, charClass, fc.constant<GbnfElement>({ kind: "any-char" })];
  if (depth <= 0) return fc.oneof(...leaves);
  const solidSequence = fc.array(solidElement(depth - 1), { minLength: 1, maxLength: 3 });
  return fc.oneof(
    { weight: 3, arbitrary: fc.oneof(...leaves) },
    {
      weight: 1,
      arbitrary: fc
        .array(solidSequence, { minLength: 1, maxLength: 3 })
        .map((alternatives): GbnfElement => ({ kind: "group", alternatives })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(solidElement(depth - 1), fc.integer({ min: 1, max: 3 }), fc.nat({ max: 2 }))
        .map(([element, min, extra]): GbnfElement => ({ kind: "repetition", element, min, max: min + extra })),
    },
  );
}

function element(laterRules: readonly string[]): fc.Arbitrary<GbnfElement> {
  const options: fc.Arbitrary<GbnfElement>[] = [
    solidElement(2),
    fc
      .tuple(solidElement(1), bounds)
      .map(([inner, [min, max]]): GbnfElement => ({ kind: "repetition", element: inner, min, max })),
  ];
  if (laterRules.length > 0) {
    options.push(fc.constantFrom(...laterRules).map((name): GbnfElement => ({ kind: "rule-ref", name })));
  }
  return fc.oneof(...options);
}

export function grammarArbitrary(): fc.Arbitrary<GbnfGrammar> {
  return fc.integer({ min: 1, max: 4 }).chain((numRules) => {
    const names = ["root", ...Array.from({ length: numRules - 1 }, (_, index) => `rule-${index}`)];
    const rules = names.map((_, index) => {
      const sequence: fc.Arbitrary<GbnfSequence> = fc.array(element(names.slice(index + 1)), { maxLength: 4 });
      return fc.array(sequence, { minLength: 1, maxLength: 3 });
    });
    return fc.tuple(...rules).map((alternatives) => ({
      rootName: "root",
      rules: new Map(names.map((name, index) => [name, alternatives[index]!])),
    }));
  });
}
