/**
 * JSON text exactly as Python's `json.dumps` writes it, for the two places where bytes must
 * match a Python peer: the canonical JSON of the Noise prologue (sorted keys, compact, raw
 * UTF-8) and the metadata of WIRE-1 frames (Python's defaults: `", "` and `": "`, ASCII only).
 *
 * Accepted values: plain objects, arrays, strings, booleans, `null` and safe integers. A
 * non-integer number is refused: once parsed, JavaScript cannot know whether Python wrote it as
 * `1.0` or `1` (hubs must not send floats, spec 3.6). Lone surrogates, cycles and nesting beyond
 * {@link MAX_DEPTH} are refused too, all with {@link CanonicalJSONError}.
 */

import { CanonicalJSONError } from "./errors.js";

/** Deepest nesting of arrays and objects accepted (far beyond any real HELLO or offer). */
export const MAX_DEPTH = 200;

export interface PythonJsonStyle {
  readonly sortKeys: boolean;
  readonly itemSeparator: string;
  readonly keySeparator: string;
  readonly ensureAscii: boolean;
}

/** `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`. */
export const CANONICAL_STYLE: PythonJsonStyle = { sortKeys: true, itemSeparator: ",", keySeparator: ":", ensureAscii: false };
/** `json.dumps(obj)` with Python's defaults. */
export const PYTHON_DEFAULT_STYLE: PythonJsonStyle = {
  sortKeys: false,
  itemSeparator: ", ",
  keySeparator: ": ",
  ensureAscii: true,
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const NON_ASCII = /[\u0080-\uffff]/g;

function byCodePoint(a: string, b: string): number {
  // JavaScript compares UTF-16 code units, Python code points; they differ only when an astral
  // character meets one in U+E000..U+FFFF.
  const left = Array.from(a);
  const right = Array.from(b);
  const size = Math.min(left.length, right.length);
  for (let i = 0; i < size; i++) {
    const x = (left[i] as string).codePointAt(0) as number;
    const y = (right[i] as string).codePointAt(0) as number;
    if (x !== y) return x - y;
  }
  return left.length - right.length;
}

function stringText(value: string, ensureAscii: boolean): string {
  if (LONE_SURROGATE.test(value)) {
    throw new CanonicalJSONError("JSON strings must be valid Unicode here (no lone surrogates)");
  }
  // JSON.stringify escapes exactly what Python escapes: quote, backslash, \b \f \n \r \t and the
  // other C0 controls as lowercase \u00xx. With ensure_ascii Python also escapes every non-ASCII
  // UTF-16 unit as \uxxxx.
  const text = JSON.stringify(value);
  return ensureAscii ? text.replace(NON_ASCII, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`) : text;
}

function write(value: unknown, style: PythonJsonStyle, depth: number, out: string[]): void {
  if (value === null) {
    out.push("null");
    return;
  }
  switch (typeof value) {
    case "boolean":
      out.push(value ? "true" : "false");
      return;
    case "string":
      out.push(stringText(value, style.ensureAscii));
      return;
    case "number":
      if (!Number.isSafeInteger(value)) {
        throw new CanonicalJSONError("Only integers can be written the way Python writes them (no floats, spec 3.6)");
      }
      out.push(String(value));
      return;
    case "object":
      break;
    default:
      throw new CanonicalJSONError(`JSON cannot carry ${typeof value}`);
  }
  if (depth >= MAX_DEPTH) throw new CanonicalJSONError(`JSON nests deeper than ${MAX_DEPTH} levels (or is cyclic)`);
  if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, index) => {
      if (index > 0) out.push(style.itemSeparator);
      write(item, style, depth + 1, out);
    });
    out.push("]");
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) throw new CanonicalJSONError("JSON carries only plain objects here");
  const record = value as Record<string, unknown>;
  const keys = Object.keys(record);
  if (style.sortKeys) keys.sort(byCodePoint);
  out.push("{");
  keys.forEach((key, index) => {
    if (index > 0) out.push(style.itemSeparator);
    out.push(stringText(key, style.ensureAscii), style.keySeparator);
    write(record[key], style, depth + 1, out);
  });
  out.push("}");
}

/** The JSON text of `value` in the given Python style (see the module comment). */
export function pythonJson(value: unknown, style: PythonJsonStyle): string {
  const out: string[] = [];
  write(value, style, 0, out);
  return out.join("");
}
