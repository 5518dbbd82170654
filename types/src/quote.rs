//! Quoting outside input in messages: enough of it to recognise, never all of a hostile one.

/// How much of a refused value a message quotes.
pub const QUOTE_BYTES: usize = 48;

/// `s` quoted as Rust's `{:?}` does, cut to [`QUOTE_BYTES`] with its full length said.
pub fn quote(s: &str) -> String {
    if s.len() <= QUOTE_BYTES {
        return format!("{s:?}");
    }
    let mut end = QUOTE_BYTES;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}... ({} bytes)", &s[..end], s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_on_a_character() {
        let long = "x".repeat(4096);
        let multibyte = format!("{}é", "x".repeat(QUOTE_BYTES - 1));
        let cases: [(&str, String); 4] = [
            ("", "\"\"".into()),
            ("dummy0", "\"dummy0\"".into()),
            (&long, format!("{:?}... (4096 bytes)", &long[..QUOTE_BYTES])),
            // é straddles the cut: it goes whole.
            (
                &multibyte,
                format!("{:?}... (49 bytes)", &multibyte[..QUOTE_BYTES - 1]),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), want, "{input:?}");
        }
    }
}
