/**
 * Vector arithmetic over the space: `occupation:onet:29-1141.00 - 0.5*"night shifts" + skill:esco:…`.
 * A tokenizer and a recursive-descent parser (no eval) give a syntax tree; evaluating it keeps the
 * expression linear (a sum of operands times coefficients), which is all the space needs: numbers
 * scale vectors, vectors add and subtract. Errors carry the position they point at.
 *
 *   expr    := term (("+" | "-") term)*
 *   term    := unary ("*" unary)*
 *   unary   := "-" unary | primary
 *   primary := NUMBER | "quoted text" | 'quoted text' | TYPE:SOURCE:CODE | "(" expr ")"
 *
 * A reference runs to the next space, parenthesis, operator other than "-", or quote, so codes with
 * dashes (29-1141.00, 31-33, ESCO ids) read whole: put spaces around a minus after a reference.
 */
import { ENTITY_TYPES } from '../store/index.js';

/** Longest query or expression accepted, in characters (the encoder reads 128 tokens of a text). */
export const MAX_QUERY_LENGTH = 5000;
/** Deepest nesting of parentheses and unary minus: the parser recurses once per level. */
export const MAX_NESTING = 100;

export class ExprError extends Error {
  readonly position: number;
  constructor(expr: string, position: number, what: string) {
    super(`${what} at position ${position + 1}\n  ${expr}\n  ${' '.repeat(position)}^`);
    this.name = 'ExprError';
    this.position = position;
  }
}

export type Operand = { kind: 'ref'; ref: string; position: number } | { kind: 'text'; text: string; position: number };

type Token =
  | { kind: 'number'; value: number; position: number }
  | { kind: 'operand'; operand: Operand; position: number }
  | { kind: 'op'; op: '+' | '-' | '*' | '(' | ')'; position: number };

export type ExprNode =
  | { kind: 'number'; value: number; position: number }
  | { kind: 'operand'; operand: Operand; position: number }
  | { kind: 'negate'; arg: ExprNode; position: number }
  | { kind: 'binary'; op: '+' | '-' | '*'; left: ExprNode; right: ExprNode; position: number };

const REF_START = new RegExp(`^(${ENTITY_TYPES.join('|')}):`);

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (/\s/.test(c)) {
      i++;
    } else if ('+-*()'.includes(c)) {
      tokens.push({ kind: 'op', op: c as '+', position: i });
      i++;
    } else if (c === '"' || c === "'") {
      const end = expr.indexOf(c, i + 1);
      if (end < 0) throw new ExprError(expr, i, 'unterminated quoted text');
      const text = expr.slice(i + 1, end).trim();
      if (!text) throw new ExprError(expr, i, 'empty quoted text');
      tokens.push({ kind: 'operand', operand: { kind: 'text', text, position: i }, position: i });
      i = end + 1;
    } else if (/[0-9.]/.test(c)) {
      const m = /^(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?/.exec(expr.slice(i));
      if (!m) throw new ExprError(expr, i, 'malformed number');
      tokens.push({ kind: 'number', value: Number(m[0]), position: i });
      i += m[0].length;
    } else if (REF_START.test(expr.slice(i))) {
      const m = /^[^\s()+*"']+/.exec(expr.slice(i))!;
      tokens.push({ kind: 'operand', operand: { kind: 'ref', ref: m[0], position: i }, position: i });
      i += m[0].length;
    } else {
      const word = /^[^\s()+*"']+/.exec(expr.slice(i))![0];
      throw new ExprError(expr, i, `unexpected "${word}": expected a reference (${ENTITY_TYPES.join('|')}:SOURCE:CODE), a quoted text or a number`);
    }
  }
  return tokens;
}

/** The syntax tree of an expression; an ExprError points at what is wrong. */
export function parseExpr(expr: string): ExprNode {
  if (typeof expr !== 'string' || !expr.trim()) throw new ExprError(String(expr ?? ''), 0, 'empty expression');
  if (expr.length > MAX_QUERY_LENGTH) throw new ExprError(expr.slice(0, 60), 60, `the expression is ${expr.length.toLocaleString('en-US')} characters long; at most ${MAX_QUERY_LENGTH.toLocaleString('en-US')} are accepted`);
  const tokens = tokenize(expr);
  let at = 0;
  let depth = 0;
  const peek = () => tokens[at];
  const isOp = (op: string) => peek()?.kind === 'op' && (peek() as { op: string }).op === op;
  const fail = (what: string): never => {
    throw new ExprError(expr, peek()?.position ?? expr.length, what);
  };
  const parseSum = (): ExprNode => {
    let left = parseProduct();
    while (isOp('+') || isOp('-')) {
      const { op, position } = tokens[at++] as { op: '+' | '-'; position: number };
      left = { kind: 'binary', op, left, right: parseProduct(), position };
    }
    return left;
  };
  const parseProduct = (): ExprNode => {
    let left = parseUnary();
    while (isOp('*')) {
      const { position } = tokens[at++];
      left = { kind: 'binary', op: '*', left, right: parseUnary(), position };
    }
    return left;
  };
  const nested = <T>(parse: () => T): T => {
    if (++depth > MAX_NESTING) fail(`nested more than ${MAX_NESTING} levels deep (parentheses or minus signs)`);
    try {
      return parse();
    } finally {
      depth--;
    }
  };
  const parseUnary = (): ExprNode => {
    if (isOp('-')) {
      const { position } = tokens[at++];
      return { kind: 'negate', arg: nested(parseUnary), position };
    }
    return parsePrimary();
  };
  const parsePrimary = (): ExprNode => {
    const token = peek();
    if (!token) return fail('unexpected end of expression: expected an operand');
    if (token.kind === 'number') {
      at++;
      return { kind: 'number', value: token.value, position: token.position };
    }
    if (token.kind === 'operand') {
      at++;
      return { kind: 'operand', operand: token.operand, position: token.position };
    }
    if (token.op === '(') {
      at++;
      const inner = nested(parseSum);
      if (!isOp(')')) fail('expected ")"');
      at++;
      return inner;
    }
    return fail(`unexpected "${token.op}": expected an operand`);
  };
  const tree = parseSum();
  if (at < tokens.length) fail(`unexpected "${describe(tokens[at])}" after a complete expression`);
  return tree;
}

function describe(token: Token): string {
  return token.kind === 'op' ? token.op : token.kind === 'number' ? String(token.value) : token.operand.kind === 'ref' ? token.operand.ref : `"${token.operand.text}"`;
}

/** A linear combination of operands: sum of coefficient x operand vector. */
export interface LinearExpr {
  terms: { operand: Operand; coefficient: number }[];
}

type Value = { scalar: number } | { terms: Map<string, { operand: Operand; coefficient: number }> };

/** Evaluates an expression to its linear form: the result must be a vector, not a number. */
export function linearize(expr: string): LinearExpr {
  const tree = parseExpr(expr);
  const keyOf = (o: Operand) => (o.kind === 'ref' ? `ref\u0000${o.ref}` : `text\u0000${o.text}`);
  const scaled = (v: Value, f: number): Value =>
    'scalar' in v ? { scalar: v.scalar * f } : { terms: new Map([...v.terms].map(([k, t]) => [k, { ...t, coefficient: t.coefficient * f }])) };
  // A number or coefficient past float64's range (1e308 * 10) is an error where it arises.
  const finite = (v: Value, node: ExprNode): Value => {
    const values = 'scalar' in v ? [v.scalar] : [...v.terms.values()].map((t) => t.coefficient);
    if (!values.every(Number.isFinite)) throw new ExprError(expr, node.position, 'a number out of range (beyond ±1.8e308)');
    return v;
  };
  const evaluate = (node: ExprNode): Value => finite(evaluateNode(node), node);
  const evaluateNode = (node: ExprNode): Value => {
    switch (node.kind) {
      case 'number':
        return { scalar: node.value };
      case 'operand':
        return { terms: new Map([[keyOf(node.operand), { operand: node.operand, coefficient: 1 }]]) };
      case 'negate':
        return scaled(evaluate(node.arg), -1);
      case 'binary': {
        const left = evaluate(node.left), right = evaluate(node.right);
        if (node.op === '*') {
          if ('scalar' in left) return scaled(right, left.scalar);
          if ('scalar' in right) return scaled(left, right.scalar);
          throw new ExprError(expr, node.position, 'cannot multiply two vectors (a number may scale a vector)');
        }
        if ('scalar' in left || 'scalar' in right) {
          if ('scalar' in left && 'scalar' in right) return { scalar: node.op === '+' ? left.scalar + right.scalar : left.scalar - right.scalar };
          throw new ExprError(expr, node.position, `cannot ${node.op === '+' ? 'add' : 'subtract'} a number and a vector`);
        }
        const terms = new Map(left.terms);
        for (const [k, t] of right.terms) {
          const c = (terms.get(k)?.coefficient ?? 0) + (node.op === '+' ? t.coefficient : -t.coefficient);
          terms.set(k, { operand: terms.get(k)?.operand ?? t.operand, coefficient: c });
        }
        return { terms };
      }
    }
  };
  const value = evaluate(tree);
  if ('scalar' in value) throw new ExprError(expr, 0, 'the expression is a number: it needs at least one reference or quoted text');
  const terms = [...value.terms.values()].filter((t) => t.coefficient !== 0);
  if (!terms.length) throw new ExprError(expr, 0, 'the operands cancel out: the expression is the zero vector');
  return { terms };
}
