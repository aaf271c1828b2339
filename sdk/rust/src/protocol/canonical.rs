//! Canonical JSON and the Noise prologue (data-plane spec 3.6).
//!
//! Canonical JSON is exactly Python's `json.dumps(obj, sort_keys=True, separators=(",", ":"),
//! ensure_ascii=False)` in UTF-8: keys sorted by code point, no whitespace, non-ASCII text raw,
//! `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` escaped and other control characters as lowercase
//! `\u00xx`. Floats are written as Python's `repr` writes them (`1.0`, `1e+16`). Both sides of
//! a handshake must produce the same bytes, or the handshake fails like a wrong password.

use serde_json::{Map, Value};

use super::errors::{ProtocolError, Result};

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 200;

/// The canonical UTF-8 serialisation of `value`.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>> {
    let mut out = String::new();
    write_value(value, 0, &mut out)?;
    Ok(out.into_bytes())
}

/// canonical(HELLO payload) || canonical(offer payload) || UTF-8 protocol name.
pub fn build_prologue(hello: &Map<String, Value>, offer: &Map<String, Value>, protocol_name: &str) -> Result<Vec<u8>> {
    let mut out = String::new();
    write_object(hello, 0, &mut out)?;
    write_object(offer, 0, &mut out)?;
    out.push_str(protocol_name);
    Ok(out.into_bytes())
}

fn write_value(value: &Value, depth: usize, out: &mut String) -> Result<()> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => {
            if let Some(i) = number.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = number.as_u64() {
                out.push_str(&u.to_string());
            } else if let Some(f) = number.as_f64() {
                out.push_str(&python_float_repr(f)?);
            } else {
                return Err(ProtocolError::CanonicalJson("unrepresentable number".into()));
            }
        }
        Value::String(text) => write_string(text, out),
        Value::Array(items) => {
            check_depth(depth)?;
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(item, depth + 1, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, depth, out)?,
    }
    Ok(())
}

fn check_depth(depth: usize) -> Result<()> {
    if depth >= MAX_DEPTH {
        return Err(ProtocolError::CanonicalJson(format!("nests deeper than {MAX_DEPTH} levels")));
    }
    Ok(())
}

fn write_object(map: &Map<String, Value>, depth: usize, out: &mut String) -> Result<()> {
    check_depth(depth)?;
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| a.chars().cmp(b.chars()));
    out.push('{');
    for (index, key) in keys.into_iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        if let Some(item) = map.get(key) {
            write_value(item, depth + 1, out)?;
        }
    }
    out.push('}');
    Ok(())
}

fn write_string(text: &str, out: &mut String) {
    write_json_string(text, out, false);
}

/// A JSON string as Python's `json.dumps` writes it: `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`,
/// other control characters as lowercase `\u00xx`, and with `ensure_ascii` every non-ASCII
/// character as `\uXXXX` (UTF-16 units); without it non-ASCII text is written raw.
pub(crate) fn write_json_string(text: &str, out: &mut String, ensure_ascii: bool) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && (c as u32) > 0x7e) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest round-trip digits, in positional notation when the
/// decimal exponent is in -4..16, else `d.ddde+XX`; integral values keep a `.0`.
fn python_float_repr(value: f64) -> Result<String> {
    if !value.is_finite() {
        return Err(ProtocolError::CanonicalJson("NaN or infinity".into()));
    }
    if value == 0.0 {
        return Ok(if value.is_sign_negative() { "-0.0".into() } else { "0.0".into() });
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-7"
    let formatted = format!("{value:e}");
    let (mantissa, exponent) =
        formatted.split_once('e').ok_or_else(|| ProtocolError::CanonicalJson("unexpected float format".into()))?;
    let exponent: i32 = exponent.parse().map_err(|_| ProtocolError::CanonicalJson("unexpected float format".into()))?;
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            format!("{whole}.{fraction}")
        };
        return Ok(format!("{sign}{text}"));
    }
    let (first, rest) = digits.split_at(1);
    let mantissa = if rest.is_empty() { first.to_string() } else { format!("{first}.{rest}") };
    let exp_sign = if exponent < 0 { '-' } else { '+' };
    Ok(format!("{sign}{mantissa}e{exp_sign}{:02}", exponent.unsigned_abs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (1.5, "1.5"),
            (1e16, "1e+16"),
            (1.25e16, "1.25e+16"),
            (123456789012345.0, "123456789012345.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (0.1, "0.1"),
        ];
        for (value, expected) in cases {
            assert_eq!(python_float_repr(value).unwrap(), expected, "{value}");
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut value = Value::Null;
        for _ in 0..300 {
            value = Value::Array(vec![value]);
        }
        assert!(matches!(canonical_json(&value), Err(ProtocolError::CanonicalJson(_))));
    }
}
