//! Output format selection and writing to stdout.
//!
//! A reader that goes away early (`ipvsctl -ln | head -1`) is not an error: writes that hit a
//! closed pipe end the program quietly with status 0.

use std::io::{self, Write};
use std::str::FromStr;

use serde::Serialize;

/// `-o`/`--output`: how reads print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// The command's native text: ipvsadm's tables, iproute2-like lines.
    #[default]
    Text,
    /// The same data as JSON.
    Json,
}

impl FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(OutputFormat::Text),
            "json" => Ok(OutputFormat::Json),
            other => Err(format!("invalid output format `{other}' (text or json)")),
        }
    }
}

/// Writes `text` to stdout as is.
pub fn write_stdout(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Renders `value` as pretty JSON with a final newline.
pub fn to_json<T: Serialize>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        // Views hold only strings, numbers and plain containers, which always serialise.
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// Whether an I/O error means the reader closed the pipe.
pub fn is_broken_pipe(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::BrokenPipe
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_format_parses_text_and_json_only() {
        assert_eq!("text".parse::<OutputFormat>(), Ok(OutputFormat::Text));
        assert_eq!("json".parse::<OutputFormat>(), Ok(OutputFormat::Json));
        assert_eq!(
            "yaml".parse::<OutputFormat>(),
            Err("invalid output format `yaml' (text or json)".to_string())
        );
    }

    #[test]
    fn json_ends_with_a_newline() {
        assert_eq!(to_json(&vec![1, 2]), "[\n  1,\n  2\n]\n");
    }
}
