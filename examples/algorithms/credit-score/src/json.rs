//! Just enough JSON (RFC 8259) for the scorer: a validating parser into a small
//! tree, with numbers kept as written, and a writer for strings and integers.
//!
//! Hand-rolled because the module has no `std` and no dependencies; it checks the
//! whole grammar, so malformed input gets an error naming the byte, never a trap.

use alloc::string::String;
use alloc::vec::Vec;

/// Deepest nesting of arrays and objects accepted (the scorer needs depth 1).
pub const MAX_DEPTH: usize = 32;

/// Why the input is not JSON, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    /// Byte offset of the problem in the input.
    pub at: usize,
    /// What is wrong there, e.g. "expected ':' after an object key".
    pub problem: &'static str,
}

/// A JSON number as written: `-`, the integer and fraction digits, the exponent.
/// Kept exact (no floating point) until a caller asks for a whole value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Number<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp: i64,
}

/// The magnitude of a [`Number`] as a whole quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whole {
    /// The number is below zero.
    Negative,
    /// The number's whole part is above the limit asked for.
    TooLarge,
    /// The whole part (the fraction cut off), and whether there was a non-zero fraction.
    Value {
        /// `floor(number)`.
        whole: u64,
        /// `number != floor(number)`.
        fraction: bool,
    },
}

impl Number<'_> {
    /// `floor(self)` if the number is not negative and its whole part is at most `max`.
    pub fn whole(&self, max: u64) -> Whole {
        let digits = self
            .int
            .iter()
            .chain(self.frac)
            .map(|d| u64::from(d - b'0'));
        // Position of the decimal point within the digits.
        let point = self.int.len() as i64 + self.exp;
        let mut whole: u64 = 0;
        let mut fraction = false;
        let mut count: i64 = 0;
        for d in digits {
            if count < point {
                match whole.checked_mul(10).and_then(|w| w.checked_add(d)) {
                    Some(w) if w <= max => whole = w,
                    _ => return self.too_large_or_negative(),
                }
            } else if d != 0 {
                fraction = true;
            }
            count += 1;
        }
        // Zeros implied by an exponent past the last digit.
        if whole != 0 {
            for _ in count..point {
                match whole.checked_mul(10) {
                    Some(w) if w <= max => whole = w,
                    _ => return self.too_large_or_negative(),
                }
            }
        }
        if self.negative && (whole != 0 || fraction) {
            return Whole::Negative;
        }
        Whole::Value { whole, fraction }
    }

    fn too_large_or_negative(&self) -> Whole {
        if self.negative {
            Whole::Negative
        } else {
            Whole::TooLarge
        }
    }
}

/// A parsed JSON value. Object members keep their order and duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, exact as written.
    Number(Number<'a>),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Value<'a>>),
    /// An object's members in input order.
    Object(Vec<(String, Value<'a>)>),
}

impl Value<'_> {
    /// The value's JSON type with an article, for messages ("found a string").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Parses a whole JSON text (one value, optional whitespace around it).
pub fn parse(text: &[u8]) -> Result<Value<'_>, Malformed> {
    if let Err(e) = core::str::from_utf8(text) {
        return Err(Malformed {
            at: e.valid_up_to(),
            problem: "input is not valid UTF-8",
        });
    }
    let mut p = Parser { text, pos: 0 };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != text.len() {
        return Err(p.error("expected the end of input after the JSON value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn error(&self, problem: &'static str) -> Malformed {
        Malformed {
            at: self.pos,
            problem,
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, byte: u8, problem: &'static str) -> Result<(), Malformed> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(problem))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, Malformed> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number().map(Value::Number),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            _ => Err(self.error("expected a JSON value")),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value<'a>) -> Result<Value<'a>, Malformed> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected true, false or null"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value<'a>, Malformed> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting deeper than 32 levels"));
        }
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            self.skip_ws();
            self.eat(b':', "expected ':' after an object key")?;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("expected ',' or '}' after an object member")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value<'a>, Malformed> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting deeper than 32 levels"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ws();
                }
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' after an array item")),
            }
        }
    }

    fn digits(&mut self) -> &'a [u8] {
        let start = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        &self.text[start..self.pos]
    }

    fn number(&mut self) -> Result<Number<'a>, Malformed> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let int_at = self.pos;
        let int = self.digits();
        if int.is_empty() {
            return Err(self.error("expected a digit"));
        }
        if int.len() > 1 && int[0] == b'0' {
            return Err(Malformed {
                at: int_at,
                problem: "expected a number without leading zeros",
            });
        }
        let mut frac: &[u8] = &[];
        if self.peek() == Some(b'.') {
            self.pos += 1;
            frac = self.digits();
            if frac.is_empty() {
                return Err(self.error("expected a digit after the decimal point"));
            }
        }
        let mut exp: i64 = 0;
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            let exp_negative = match self.peek() {
                Some(b'-') => {
                    self.pos += 1;
                    true
                }
                Some(b'+') => {
                    self.pos += 1;
                    false
                }
                _ => false,
            };
            let digits = self.digits();
            if digits.is_empty() {
                return Err(self.error("expected a digit in the exponent"));
            }
            // Beyond a million the value is out of any range a caller asks for
            // (or zero); saturating keeps the arithmetic in range.
            for &d in digits {
                exp = (exp * 10 + i64::from(d - b'0')).min(1_000_000);
            }
            if exp_negative {
                exp = -exp;
            }
        }
        Ok(Number {
            negative,
            int,
            frac,
            exp,
        })
    }

    fn string(&mut self) -> Result<String, Malformed> {
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            let start = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.pos += 1;
            }
            // The whole text is valid UTF-8 and runs end only at ASCII bytes, so
            // each run is valid UTF-8 on its own.
            match core::str::from_utf8(&self.text[start..self.pos]) {
                Ok(run) => out.push_str(run),
                Err(_) => return Err(self.error("expected valid UTF-8")),
            }
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.error("control character inside a string")),
                None => return Err(self.error("expected '\"' to close the string")),
            }
        }
    }

    /// The character of the escape after a backslash.
    fn escape(&mut self) -> Result<char, Malformed> {
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => {
                return Err(
                    self.error("expected an escape: \\\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX")
                );
            }
        };
        self.pos += 1;
        Ok(c)
    }

    /// The character of `XXXX` (after `\u`), joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, Malformed> {
        let at = self.pos;
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.text[self.pos..].starts_with(b"\\u") {
                    return Err(self.error("expected a \\u low surrogate after a high surrogate"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("expected a \\u low surrogate after a high surrogate"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(Malformed {
                    at,
                    problem: "lone low surrogate in a \\u escape",
                });
            }
            _ => high,
        };
        char::from_u32(code).ok_or(Malformed {
            at,
            problem: "expected a Unicode scalar value in a \\u escape",
        })
    }

    fn hex4(&mut self) -> Result<u32, Malformed> {
        let mut v = 0;
        for _ in 0..4 {
            let d = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                _ => return Err(self.error("expected four hex digits after \\u")),
            };
            v = v * 16 + u32::from(d);
            self.pos += 1;
        }
        Ok(v)
    }
}

/// Appends `s` as a JSON string literal, escaping quotes, backslashes and
/// control characters.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0..0x20 | 0x7f => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

/// `n` in decimal, written into `buf`.
pub fn decimal(n: u64, buf: &mut [u8; 20]) -> &str {
    let mut n = n;
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    core::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// Appends `n` in decimal.
pub fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(decimal(n, &mut [0; 20]).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn number(text: &str) -> Number<'_> {
        match parse(text.as_bytes()) {
            Ok(Value::Number(n)) => n,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn whole(text: &str) -> Whole {
        number(text).whole(1_000_000)
    }

    fn value(whole: u64, fraction: bool) -> Whole {
        Whole::Value { whole, fraction }
    }

    #[test]
    fn whole_parts_of_numbers() {
        assert_eq!(whole("0"), value(0, false));
        assert_eq!(whole("52000"), value(52_000, false));
        assert_eq!(whole("52000.75"), value(52_000, true));
        assert_eq!(whole("12.000"), value(12, false));
        // 5.2e4 = 52000; 52e-1 = 5.2; 0.0005e4 = 5; 1E+2 = 100.
        assert_eq!(whole("5.2e4"), value(52_000, false));
        assert_eq!(whole("52e-1"), value(5, true));
        assert_eq!(whole("0.0005e4"), value(5, false));
        assert_eq!(whole("1E+2"), value(100, false));
        assert_eq!(whole("0.5"), value(0, true));
        // Zero stays zero whatever the exponent.
        assert_eq!(whole("0e999999999999"), value(0, false));
        assert_eq!(whole("-0"), value(0, false));
        assert_eq!(whole("-0.0"), value(0, false));
    }

    #[test]
    fn limits_and_signs() {
        assert_eq!(whole("1000000"), value(1_000_000, false));
        assert_eq!(whole("1000001"), Whole::TooLarge);
        assert_eq!(whole("1e7"), Whole::TooLarge);
        assert_eq!(whole("1e999999999999"), Whole::TooLarge);
        assert_eq!(whole("99999999999999999999999"), Whole::TooLarge);
        assert_eq!(whole("-1"), Whole::Negative);
        assert_eq!(whole("-0.5"), Whole::Negative);
        assert_eq!(whole("-1e99"), Whole::Negative);
    }

    #[test]
    fn objects_keep_members_in_order_with_unescaped_keys() {
        let v = parse(br#" { "a" : 1 , "b\u0063\n" : [true, null, {"x": "y"}], "a": "dup" } "#)
            .unwrap();
        let Value::Object(members) = v else {
            panic!("{v:?}")
        };
        let keys: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "bc\n", "a"]);
        assert_eq!(
            members[1].1,
            Value::Array(vec![
                Value::Bool(true),
                Value::Null,
                Value::Object(vec![("x".into(), Value::String("y".into()))]),
            ])
        );
    }

    #[test]
    fn unicode_escapes_and_raw_utf8() {
        // U+00E9 is é; the pair D83D DE00 is U+1F600.
        let v = parse("\"caf\\u00e9 \\ud83d\\ude00 \u{e9}\"".as_bytes()).unwrap();
        assert_eq!(v, Value::String("café \u{1F600} é".into()));
    }

    fn malformed(text: &[u8]) -> Malformed {
        parse(text).expect_err("should be malformed")
    }

    #[test]
    fn malformed_input_names_the_byte() {
        assert_eq!(malformed(b"").at, 0);
        assert_eq!(
            malformed(b"{\"a\" 1}").problem,
            "expected ':' after an object key"
        );
        assert_eq!(malformed(b"{\"a\" 1}").at, 5);
        assert_eq!(malformed(b"{\"a\":1,}").problem, "expected a string key");
        assert_eq!(malformed(b"{\"a\":1,}").at, 7);
        assert_eq!(malformed(b"{\"a\":01}").at, 5);
        assert_eq!(malformed(b"{\"a\":1.}").at, 7);
        assert_eq!(malformed(b"{\"a\":1e}").at, 7);
        assert_eq!(malformed(b"{\"a\":-}").at, 6);
        assert_eq!(malformed(b"{\"a\":tru}").at, 5);
        assert_eq!(malformed(b"{\"a\":1} x").at, 8);
        assert_eq!(malformed(b"{\"a\":1").at, 6);
        assert_eq!(malformed(b"{\"a\":\"x").at, 7);
        assert_eq!(malformed(b"{\"a\n\":1}").at, 3);
        assert_eq!(malformed(b"\"\\x\"").at, 2);
        assert_eq!(malformed(b"\"\\ud800\"").at, 7);
        assert_eq!(malformed(b"\"\\udc00\"").at, 3);
        assert_eq!(malformed(b"[1 2]").at, 3);
        // 0xff can never appear in UTF-8.
        assert_eq!(malformed(b"{\"a\xff\":1}").at, 3);
        assert_eq!(
            malformed(b"{\"a\xff\":1}").problem,
            "input is not valid UTF-8"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let ok = [b"[".repeat(MAX_DEPTH), b"]".repeat(MAX_DEPTH)].concat();
        assert!(parse(&ok).is_ok());
        let deep = [b"[".repeat(MAX_DEPTH + 1), b"]".repeat(MAX_DEPTH + 1)].concat();
        assert_eq!(malformed(&deep).at, MAX_DEPTH);
    }

    #[test]
    fn writer_escapes_what_json_requires() {
        let mut out = Vec::new();
        write_str(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, "\"a\\\"b\\\\c\\u000ad\\u0001é\"".as_bytes());
        out.clear();
        write_u64(&mut out, 0);
        out.push(b' ');
        write_u64(&mut out, 18_446_744_073_709_551_615);
        assert_eq!(out, b"0 18446744073709551615");
    }
}
