/**
 * Grammars for the GBNF tests, embedded because CI has no llama.cpp checkout. JSON, arithmetic, chess and list
 * are llama.cpp's grammars/*.gbnf verbatim (comments and layout included, since they exercise the parser).
 */

export const JSON_GBNF = String.raw`root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
`;

export const ARITHMETIC_GBNF = String.raw`root  ::= (expr "=" ws term "\n")+
expr  ::= term ([-+*/] term)*
term  ::= ident | num | "(" ws expr ")" ws
ident ::= [a-z] [a-z0-9_]* ws
num   ::= [0-9]+ ws
ws    ::= [ \t\n]*
`;

export const CHESS_GBNF = String.raw`# Specifies chess moves as a list in algebraic notation, using PGN conventions

# Force first move to "1. ", then any 1-2 digit number after, relying on model to follow the pattern
root    ::= "1. " move " " move "\n" ([1-9] [0-9]? ". " move " " move "\n")+
move    ::= (pawn | nonpawn | castle) [+#]?

# piece type, optional file/rank, optional capture, dest file & rank
nonpawn ::= [NBKQR] [a-h]? [1-8]? "x"? [a-h] [1-8]

# optional file & capture, dest file & rank, optional promotion
pawn    ::= ([a-h] "x")? [a-h] [1-8] ("=" [NBKQR])?

castle  ::= "O-O" "-O"?
`;

export const LIST_GBNF = String.raw`root ::= item+

# Excludes various line break characters
item ::= "- " [^\r\n\x0b\x0c\x85\u2028\u2029]+ "\n"
`;

/** Unicode ranges, negated classes, `.`, bounded repetitions and nullable rules. */
export const MIXED_GBNF = String.raw`root ::= greeting (sep word){1,3} tail? "\r\n"
greeting ::= "héllo" | "\u3053\u3093" | "\U0001F600" | [Α-Ω]{2}
sep ::= [ \t]
word ::= [^ \t\r\n"\\]+ | "\"" . "\"" | "<" [\x00-\x1F\u00A0-\uFFFF\U00010000-\U0010FFFF] ">"
tail ::= opt-space "!"{0,2}
opt-space ::= " " |
`;

export const ALL_FIXTURES: Readonly<Record<string, string>> = {
  json: JSON_GBNF,
  arithmetic: ARITHMETIC_GBNF,
  chess: CHESS_GBNF,
  list: LIST_GBNF,
  mixed: MIXED_GBNF,
};
