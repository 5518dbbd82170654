//! A small text codec for the state blob: one `key=value` line per entry, sorted by key.
//! Readable in `ipvsctl policy test` output and stable across policy versions.

use std::collections::BTreeMap;

/// Key/value state carried from one evaluation to the next.
pub type State = BTreeMap<String, String>;

/// Decodes a blob written by [`encode`]; an empty blob is an empty state.
pub fn decode(blob: &[u8]) -> Result<State, String> {
    let text = std::str::from_utf8(blob).map_err(|e| format!("state is not UTF-8: {e}"))?;
    let mut state = State::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("state line without '=': {line:?}"))?;
        state.insert(k.to_owned(), v.to_owned());
    }
    Ok(state)
}

/// Encodes `state`; `=` in keys and line breaks anywhere become `_` so it always decodes.
pub fn encode(state: &State) -> Vec<u8> {
    let clean = |s: &str, eq: bool| {
        s.chars()
            .map(|c| match c {
                '\n' | '\r' => '_',
                '=' if eq => '_',
                c => c,
            })
            .collect::<String>()
    };
    let mut out = String::new();
    for (k, v) in state {
        out.push_str(&clean(k, true));
        out.push('=');
        out.push_str(&clean(v, false));
        out.push('\n');
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut s = State::new();
        s.insert("10.0.0.2:80".into(), "1700000000000,5".into());
        s.insert("[2001:db8::2]:80".into(), "a=b".into());
        let blob = encode(&s);
        assert_eq!(
            String::from_utf8_lossy(&blob),
            "10.0.0.2:80=1700000000000,5\n[2001:db8::2]:80=a=b\n"
        );
        assert_eq!(decode(&blob), Ok(s));
    }

    #[test]
    fn unsafe_characters_are_replaced() {
        let mut s = State::new();
        s.insert("a=b\nc".into(), "x\ny".into());
        assert_eq!(String::from_utf8_lossy(&encode(&s)), "a_b_c=x_y\n");
    }

    #[test]
    fn malformed_blobs_are_errors() {
        assert_eq!(decode(b""), Ok(State::new()));
        assert_eq!(
            decode(b"novalue\n"),
            Err("state line without '=': \"novalue\"".to_owned())
        );
        assert!(decode(&[0xff]).is_err_and(|e| e.starts_with("state is not UTF-8")));
    }
}
