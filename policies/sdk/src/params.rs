//! Attach-time parameters: a list of key/value strings, read with a default and a clear error.

use std::str::FromStr;

/// The value of `key` (the last one wins when a key repeats).
pub fn get<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `key` parsed as `T`, or `default` when absent. The error names the key and the value.
pub fn parse_or<T: FromStr>(
    params: &[(String, String)],
    key: &str,
    default: T,
) -> Result<T, String> {
    match get(params, key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("parameter {key}: invalid value {v:?}")),
    }
}

/// `key` as a comma-separated list (empty items dropped); empty when absent.
pub fn list(params: &[(String, String)], key: &str) -> Vec<String> {
    get(params, key)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn parse_with_default_and_error() {
        let params = p(&[("n", " 7 "), ("bad", "x")]);
        assert_eq!(parse_or(&params, "n", 1u32), Ok(7));
        assert_eq!(parse_or(&params, "missing", 1u32), Ok(1));
        assert_eq!(
            parse_or(&params, "bad", 1u32),
            Err("parameter bad: invalid value \"x\"".to_owned())
        );
    }

    #[test]
    fn lists_split_on_commas() {
        let params = p(&[("s", "a, b,,c ")]);
        assert_eq!(list(&params, "s"), ["a", "b", "c"]);
        assert!(list(&params, "none").is_empty());
    }
}
