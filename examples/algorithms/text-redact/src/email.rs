//! Finding e-mail addresses: `local@domain` with the rules of the README.

use alloc::vec::Vec;
use core::ops::Range;

/// Bytes allowed in the local part (before `@`).
fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Bytes allowed in the domain (after `@`).
fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Whether `domain` is two or more non-empty labels of letters, digits and
/// inner hyphens, separated by dots, the last one (the TLD) two or more letters.
fn valid_domain(domain: &[u8]) -> bool {
    let mut labels = 0;
    let mut tld_ok = false;
    for label in domain.split(|&b| b == b'.') {
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            return false;
        }
        labels += 1;
        tld_ok = label.len() >= 2 && label.iter().all(u8::is_ascii_alphabetic);
    }
    labels >= 2 && tld_ok
}

/// The byte ranges of the e-mail addresses in `text`, in order, not overlapping.
///
/// Around each `@`: the local part is the longest run of local-part bytes before
/// it (leading dots dropped), the domain the longest run of domain bytes after it
/// (trailing dots and hyphens dropped, so a sentence's full stop stays text).
pub fn find_all(text: &[u8]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    // No address may start inside the previous one.
    let mut floor = 0;
    for at in 0..text.len() {
        if text[at] != b'@' || at < floor {
            continue;
        }
        let mut start = at;
        while start > floor && is_local(text[start - 1]) {
            start -= 1;
        }
        while start < at && text[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < text.len() && is_domain(text[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(text[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < at && valid_domain(&text[at + 1..end]) {
            found.push(start..end);
            floor = end;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn emails(text: &str) -> Vec<&str> {
        find_all(text.as_bytes())
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn plain_addresses() {
        assert_eq!(
            emails("mail jane.doe@example.com now"),
            ["jane.doe@example.com"]
        );
        assert_eq!(
            emails("a+tag@mail.example.co.uk,b_c-d%e@x-y.org"),
            ["a+tag@mail.example.co.uk", "b_c-d%e@x-y.org"]
        );
    }

    #[test]
    fn punctuation_around_an_address_stays_text() {
        assert_eq!(emails("Write to <bob@example.org>."), ["bob@example.org"]);
        assert_eq!(emails("(...bob@example.org...)"), ["bob@example.org"]);
        assert_eq!(emails("mailto:bob@example.org-"), ["bob@example.org"]);
    }

    #[test]
    fn not_addresses() {
        let none: Vec<&str> = vec![];
        assert_eq!(emails("@example.com"), none); // no local part
        assert_eq!(emails("bob@localhost"), none); // one label
        assert_eq!(emails("bob@example.c"), none); // TLD of one letter
        assert_eq!(emails("bob@example.c0m"), none); // TLD with a digit
        assert_eq!(emails("bob@exa..mple.com"), none); // empty label
        assert_eq!(emails("bob@-example.com"), none); // label starts with '-'
        assert_eq!(emails("a @ b.com"), none);
        assert_eq!(emails("x@y@z.com"), ["y@z.com"]);
    }

    #[test]
    fn adjacent_addresses_do_not_overlap() {
        // First '@': the domain run "a.com.y" stops at the next '@' and its TLD
        // "y" is one letter, so no address; the second '@' then takes the local
        // part "a.com.y".
        assert_eq!(emails("x@a.com.y@b.com"), ["a.com.y@b.com"]);
        assert_eq!(emails("x@a.com.yz@b.com"), ["x@a.com.yz"]);
    }

    #[test]
    fn non_ascii_bytes_end_an_address() {
        assert_eq!(emails("é.bob@example.org»"), ["bob@example.org"]);
    }
}
