//! The C library's parsing rules that ipvsadm's command line inherits.
//!
//! ipvsadm reads numbers with `strtol`/`atoi` and IPv4 addresses with `inet_aton`, so
//! `-w +5`, `-t 10.1:80` and `-t 0x7f.1:80` are all valid there. Matching those rules here
//! keeps every command line that works with ipvsadm working with ipvsctl.

use std::net::Ipv4Addr;

/// C's `isspace` in the "C" locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// `strtol(s, &end, 10)` accepted only when it read the whole string without overflow, as
/// ipvsadm's `string_to_number` requires: leading blanks and a sign are allowed, trailing
/// characters are not.
pub fn strtol_full(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut value: i128 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        if !overflow {
            value = value * 10 + i128::from(b[i] - b'0');
            if value > i128::from(i64::MAX) + 1 {
                overflow = true;
            }
        }
        i += 1;
    }
    if i == start || i != b.len() || overflow {
        return None;
    }
    let value = if negative { -value } else { value };
    i64::try_from(value).ok()
}

/// ipvsadm's `string_to_number`: a whole decimal number within `min..=max`.
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_full(s).filter(|n| (min..=max).contains(n))
}

/// C's `atoi`: leading blanks, a sign, then as many digits as there are; 0 if none.
pub fn atoi(s: &str) -> i64 {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let mut negative = false;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        negative = b[i] == b'-';
        i += 1;
    }
    let mut value: i64 = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        value = value
            .saturating_mul(10)
            .saturating_add(i64::from(b[i] - b'0'));
        i += 1;
    }
    if negative { -value } else { value }
}

/// `strtoul(s, &end, 0)` from a string that starts with a digit: the value (saturated at
/// u64::MAX on overflow) and the number of bytes read.
fn strtoul_base0(b: &[u8]) -> (u64, usize) {
    let (radix, mut i) =
        if b.len() > 2 && b[0] == b'0' && (b[1] | 0x20) == b'x' && b[2].is_ascii_hexdigit() {
            (16, 2)
        } else if b[0] == b'0' {
            (8, 0)
        } else {
            (10, 0)
        };
    let mut value: u64 = 0;
    while i < b.len() {
        let Some(d) = char::from(b[i]).to_digit(radix) else {
            break;
        };
        value = value
            .saturating_mul(u64::from(radix))
            .saturating_add(u64::from(d));
        i += 1;
    }
    (value, i)
}

/// glibc's `inet_aton`: one to four parts separated by dots, each decimal, octal (`0` prefix)
/// or hex (`0x` prefix); the last part fills the remaining bytes; anything after a blank is
/// ignored.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    const MAX: [u64; 4] = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff];
    let b = s.as_bytes();
    let mut parts: Vec<u8> = Vec::with_capacity(3);
    let mut i = 0;
    let last = loop {
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let (value, used) = strtoul_base0(&b[i..]);
        if value > 0xffff_ffff {
            return None;
        }
        i += used;
        if i < b.len() && b[i] == b'.' {
            if parts.len() > 2 || value > 0xff {
                return None;
            }
            parts.push(u8::try_from(value).ok()?);
            i += 1;
        } else {
            break value;
        }
    };
    if i < b.len() && !is_c_space(b[i]) {
        return None;
    }
    if last > MAX[parts.len()] {
        return None;
    }
    let mut word: u32 = 0;
    for (n, p) in parts.iter().enumerate() {
        word |= u32::from(*p) << (24 - 8 * n);
    }
    word |= u32::try_from(last).ok()?;
    Some(Ipv4Addr::from(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_full_accepts_what_strtol_reads_whole() {
        let cases: &[(&str, Option<i64>)] = &[
            ("80", Some(80)),
            ("+80", Some(80)),
            (" 80", Some(80)),
            ("-1", Some(-1)),
            ("-0", Some(0)),
            ("80 ", None),
            ("", None),
            ("+", None),
            ("0x10", None),
            ("12abc", None),
            ("9223372036854775807", Some(i64::MAX)),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
        ];
        for (input, want) in cases {
            assert_eq!(strtol_full(input), *want, "strtol_full({input:?})");
        }
    }

    #[test]
    fn string_to_number_checks_the_range() {
        assert_eq!(string_to_number("65535", 0, 65535), Some(65535));
        assert_eq!(string_to_number("65536", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
    }

    #[test]
    fn atoi_reads_a_prefix() {
        let cases: &[(&str, i64)] = &[("64", 64), ("64abc", 64), ("abc", 0), (" -3", -3), ("", 0)];
        for (input, want) in cases {
            assert_eq!(atoi(input), *want, "atoi({input:?})");
        }
    }

    #[test]
    fn inet_aton_follows_glibc() {
        let cases: &[(&str, Option<[u8; 4]>)] = &[
            ("192.168.100.1", Some([192, 168, 100, 1])),
            ("1", Some([0, 0, 0, 1])),
            ("10.1", Some([10, 0, 0, 1])),
            ("10.1.2", Some([10, 1, 0, 2])),
            ("0x7f.1", Some([127, 0, 0, 1])),
            ("010.0.0.1", Some([8, 0, 0, 1])),
            ("1.2.3.4 trailing", Some([1, 2, 3, 4])),
            ("4294967295", Some([255, 255, 255, 255])),
            ("4294967296", None),
            ("1.2.3.256", None),
            ("1.2.65536", None),
            ("256.1.1.1", None),
            ("1.2.3.4.5", None),
            (" 1.2.3.4", None),
            ("1.2.3.", None),
            ("08", None),
            ("0x", None),
            ("host", None),
            ("", None),
        ];
        for (input, want) in cases {
            assert_eq!(
                inet_aton(input),
                want.map(Ipv4Addr::from),
                "inet_aton({input:?})"
            );
        }
    }
}
