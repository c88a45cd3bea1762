//! Finding phone numbers and long digit runs (card, account and similar
//! numbers), with the rules of the README.

/// What a numeric candidate is redacted as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A phone number: `[PHONE]`.
    Phone,
    /// A card, account or other long number: `[NUMBER]`.
    Number,
}

/// A run of digit groups starting at a word boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// One past the last digit.
    pub end: usize,
    /// How many digits it holds.
    pub digits: usize,
    /// How many digits its last group holds.
    pub last_group: usize,
    /// Whether it starts with `+` (an international number).
    pub plus: bool,
    /// Whether a letter or digit follows it (then it is part of a word).
    pub glued: bool,
}

/// Bytes that may separate digit groups (one or two of them between groups).
fn is_gap(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'(' | b')')
}

/// The candidate starting at `start` in `text[..limit]`, if `start` can begin
/// one: a digit, `+` then a digit, or `(` then digits then `)`.
///
/// Digit groups are joined by gaps of one or two of ` `, `-`, `(`, `)`; the
/// candidate ends at its last digit. The caller checks that `start` is at a word
/// boundary; the candidate records whether its end is at one.
pub fn scan(text: &[u8], start: usize, limit: usize) -> Option<Candidate> {
    let text = &text[..limit];
    let digit_at = |i: usize| text.get(i).is_some_and(u8::is_ascii_digit);
    let (plus, mut pos) = match text.get(start)? {
        b'+' if digit_at(start + 1) => (true, start + 1),
        b'(' if digit_at(start + 1) => (false, start + 1),
        b'0'..=b'9' => (false, start),
        _ => return None,
    };
    let mut digits = 0;
    let mut last_group;
    let mut first = true;
    loop {
        let group_start = pos;
        while digit_at(pos) {
            pos += 1;
        }
        last_group = pos - group_start;
        digits += last_group;
        if first && text[start] == b'(' && text.get(pos) != Some(&b')') {
            // "(" must close right after the first group, as around an area code.
            return None;
        }
        first = false;
        let gap = (1..=2).find(|&n| {
            (pos..pos + n).all(|i| text.get(i).is_some_and(|&b| is_gap(b))) && digit_at(pos + n)
        });
        match gap {
            Some(n) => pos += n,
            None => break,
        }
    }
    Some(Candidate {
        end: pos,
        digits,
        last_group,
        plus,
        glued: text.get(pos).is_some_and(u8::is_ascii_alphanumeric),
    })
}

impl Candidate {
    /// How the candidate is redacted, or `None` to leave it as text.
    ///
    /// - followed by a letter or digit: text;
    /// - starting with `+`: 7 to 15 digits (E.164) is a phone, 16 or more a number;
    /// - otherwise 12 or more digits is a number, and 9 to 11 digits whose last
    ///   group has at least 4 is a phone (so "2026-11-29 10" stays text).
    pub fn kind(&self) -> Option<Kind> {
        if self.glued {
            return None;
        }
        match (self.plus, self.digits) {
            (true, 7..=15) => Some(Kind::Phone),
            (true, 16..) => Some(Kind::Number),
            (false, 12..) => Some(Kind::Number),
            (false, 9..=11) if self.last_group >= 4 => Some(Kind::Phone),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kind and text of the candidate at the start of `text`.
    fn classify(text: &str) -> Option<(Kind, &str)> {
        let c = scan(text.as_bytes(), 0, text.len())?;
        Some((c.kind()?, &text[..c.end]))
    }

    #[test]
    fn phones() {
        let phone = |s| Some((Kind::Phone, s));
        // +44 20 7946 0958: 12 digits after '+'.
        assert_eq!(classify("+44 20 7946 0958"), phone("+44 20 7946 0958"));
        // +1 (555) 123-4567: gaps " (", ") " and "-"; 11 digits.
        assert_eq!(
            classify("+1 (555) 123-4567, ext"),
            phone("+1 (555) 123-4567")
        );
        // (555) 123-4567: 10 digits, last group 4.
        assert_eq!(classify("(555) 123-4567."), phone("(555) 123-4567"));
        assert_eq!(classify("030 1234567"), phone("030 1234567"));
        assert_eq!(classify("5551234567"), phone("5551234567"));
        // +3361234567: 10 digits after '+' with no gaps.
        assert_eq!(classify("+3361234567"), phone("+3361234567"));
    }

    #[test]
    fn long_numbers() {
        let number = |s| Some((Kind::Number, s));
        assert_eq!(
            classify("4111 1111 1111 1111"),
            number("4111 1111 1111 1111")
        );
        assert_eq!(
            classify("4111-1111-1111-1111;"),
            number("4111-1111-1111-1111")
        );
        assert_eq!(classify("123456789012"), number("123456789012"));
        // 16 digits after '+' are more than E.164 allows.
        assert_eq!(classify("+1234567890123456"), number("+1234567890123456"));
    }

    #[test]
    fn left_as_text() {
        assert_eq!(classify("2026-11-29"), None); // 8 digits
        assert_eq!(classify("2026-11-29 10:30"), None); // 10 digits, last group 2
        assert_eq!(classify("555-1234"), None); // 7 digits without '+'
        assert_eq!(classify("12345678901"), Some((Kind::Phone, "12345678901"))); // 11: phone
        assert_eq!(classify("+12 345"), None); // 5 digits after '+'
        assert_eq!(classify("1990 - 2020"), None); // gap of three
        assert_eq!(classify("4111111111111111abc"), None); // runs into a word
        assert_eq!(classify("(4111 1111 1111 1111)"), None); // '(' not closing after a group
        assert_eq!(classify("+ 44"), None);
        assert_eq!(classify("x1234"), None);
    }

    #[test]
    fn gaps_join_only_groups_of_digits() {
        // The trailing ") " is not part of the candidate: it ends at a digit.
        let c = scan(b"12 34-56(78) x", 0, 14).unwrap();
        assert_eq!(
            c,
            Candidate {
                end: 11,
                digits: 8,
                last_group: 2,
                plus: false,
                glued: false,
            }
        );
    }

    #[test]
    fn the_limit_cuts_the_candidate() {
        let c = scan(b"1234567890123", 0, 5).unwrap();
        assert_eq!((c.end, c.digits), (5, 5));
    }
}
