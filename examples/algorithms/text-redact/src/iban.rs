//! Finding IBANs: two capital letters, two check digits, then capitals and
//! digits (compact, or printed in groups of four), 15 to 34 characters in all,
//! passing the ISO 13616 mod-97 check.

/// Shortest and longest IBANs (Norway has 15 characters, the format allows 34).
const MIN_LEN: usize = 15;
const MAX_LEN: usize = 34;

fn is_iban_char(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// ISO 13616 / ISO 7064 mod 97-10: move the first four characters to the end,
/// read letters as 10..=35, and the number must be 1 modulo 97.
pub fn checksum_ok(chars: impl Iterator<Item = u8> + Clone) -> bool {
    let rotated = chars.clone().skip(4).chain(chars.take(4));
    let mut rem: u32 = 0;
    for c in rotated {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    rem == 1
}

/// The end of the IBAN starting at `start` in `text[..limit]`, if there is one.
///
/// Groups of exactly four separated by single spaces are followed; of the
/// possible ends (one after each group), the longest whose characters pass the
/// check and which is not followed by a letter or digit wins.
pub fn match_at(text: &[u8], start: usize, limit: usize) -> Option<usize> {
    let text = &text[..limit];
    let head = text.get(start..start + 4)?;
    if !(head[0].is_ascii_uppercase()
        && head[1].is_ascii_uppercase()
        && head[2].is_ascii_digit()
        && head[3].is_ascii_digit())
    {
        return None;
    }
    // Ends of the groups read so far, with the character count up to each.
    let mut ends = [(0usize, 0usize); MAX_LEN];
    let mut groups = 0;
    let mut pos = start;
    let mut count = 0;
    loop {
        let group_start = pos;
        while pos < text.len() && is_iban_char(text[pos]) {
            pos += 1;
        }
        count += pos - group_start;
        if count > MAX_LEN {
            break;
        }
        ends[groups] = (pos, count);
        groups += 1;
        let spaced = pos - group_start == 4
            && text.get(pos) == Some(&b' ')
            && text.get(pos + 1).is_some_and(|&b| is_iban_char(b));
        if !spaced {
            break;
        }
        pos += 1;
    }
    ends[..groups].iter().rev().find_map(|&(end, count)| {
        let boundary = text.get(end).is_none_or(|b| !b.is_ascii_alphanumeric());
        let chars = text[start..end].iter().copied().filter(|&b| b != b' ');
        (boundary && count >= MIN_LEN && checksum_ok(chars)).then_some(end)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iban(text: &str) -> Option<&str> {
        match_at(text.as_bytes(), 0, text.len()).map(|end| &text[..end])
    }

    #[test]
    fn mod_97_by_hand() {
        // "GB00" + nothing: rotated "GB00" → G=16, B=11 → "161100".
        // 161100 = 97 × 1660 + 80, so not 1.
        assert!(!checksum_ok(b"GB00".iter().copied()));
        // "AAcd" rotated reads 1010cd = 101000 + cd; 101000 − 97 × 1041 = 23,
        // so cd = 75 gives 23 + 75 = 98 ≡ 1 (mod 97), and cd = 76 gives 2.
        assert!(checksum_ok(b"AA75".iter().copied()));
        assert!(!checksum_ok(b"AA76".iter().copied()));
    }

    #[test]
    fn published_example_ibans() {
        // Examples from the ISO 13616 registry / national banking associations.
        assert_eq!(
            iban("DE89370400440532013000"),
            Some("DE89370400440532013000")
        );
        assert_eq!(
            iban("GB82 WEST 1234 5698 7654 32"),
            Some("GB82 WEST 1234 5698 7654 32")
        );
        assert_eq!(iban("NO9386011117947"), Some("NO9386011117947"));
        assert_eq!(
            iban("DE89 3704 0044 0532 0130 00."),
            Some("DE89 3704 0044 0532 0130 00")
        );
    }

    #[test]
    fn a_single_changed_digit_fails_the_check() {
        assert_eq!(iban("DE89370400440532013001"), None);
        assert_eq!(iban("DE88370400440532013000"), None);
    }

    #[test]
    fn trailing_capitals_are_not_swallowed() {
        // 24 characters ending in a full group of four, then a word in capitals:
        // the longest end ("…7001 AND") fails the check, the one before passes.
        // SA03 8000 0000 6080 1016 7519 is Saudi Arabia's published example.
        assert_eq!(
            iban("SA03 8000 0000 6080 1016 7519 AND MORE"),
            Some("SA03 8000 0000 6080 1016 7519")
        );
    }

    #[test]
    fn not_ibans() {
        assert_eq!(iban("DE89"), None); // too short
        assert_eq!(iban("de89370400440532013000"), None); // lower case
        assert_eq!(iban("DE89370400440532013000x"), None); // runs into a word
        assert_eq!(iban("DE8937040044053201300"), None); // digit missing
    }
}
