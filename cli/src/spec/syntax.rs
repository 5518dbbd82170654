//! YAML and TOML in and out. Syntax and type errors are reported as `FILE:LINE:COLUMN:
//! message`, on one line, whichever parser found them.

use std::fmt;
use std::str::FromStr;

use super::document::NodeFile;
use super::error::SpecError;

/// How a node file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Toml,
}

impl Format {
    /// The format a file's name says: `.yaml`/`.yml`, `.toml`, or `-` (stdin) for YAML.
    pub fn for_path(path: &str) -> Result<Format, SpecError> {
        if path == "-" {
            return Ok(Format::Yaml);
        }
        let ext = std::path::Path::new(path)
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("yaml" | "yml") => Ok(Format::Yaml),
            Some("toml") => Ok(Format::Toml),
            _ => Err(SpecError::UnknownFormat {
                file: path.to_string(),
            }),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Toml => "toml",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "yaml" | "yml" => Ok(Format::Yaml),
            "toml" => Ok(Format::Toml),
            other => Err(format!("invalid format `{other}' (yaml or toml)")),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn read_yaml(file: &str, text: &str) -> Result<NodeFile, SpecError> {
    serde_norway::from_str(text).map_err(|e| {
        let message = e.to_string();
        match e.location() {
            Some(at) => {
                // The message ends (or, for libyaml's own errors, goes on after) with its
                // position: keep it once, in front.
                let suffix = format!(" at line {} column {}", at.line(), at.column());
                SpecError::Syntax {
                    file: file.to_string(),
                    line: at.line(),
                    column: at.column(),
                    message: message.replacen(&suffix, "", 1),
                }
            }
            None => SpecError::Unplaced {
                file: file.to_string(),
                message,
            },
        }
    })
}

fn read_toml(file: &str, text: &str) -> Result<NodeFile, SpecError> {
    toml::from_str(text).map_err(|e| {
        let message = e.message().trim_end().to_string();
        match e.span() {
            Some(span) => {
                let (line, column) = line_column(text, span.start);
                SpecError::Syntax {
                    file: file.to_string(),
                    line,
                    column,
                    message,
                }
            }
            None => SpecError::Unplaced {
                file: file.to_string(),
                message,
            },
        }
    })
}

/// Parses `text` (named `file` in errors) as a node file document.
pub fn read(file: &str, text: &str, format: Format) -> Result<NodeFile, SpecError> {
    match format {
        Format::Yaml => read_yaml(file, text),
        Format::Toml => read_toml(file, text),
    }
}

/// Writes `doc` in `format`.
pub fn write(doc: &NodeFile, format: Format) -> Result<String, SpecError> {
    let encode = |message: String| SpecError::Encode {
        format: format.name(),
        message,
    };
    match format {
        Format::Yaml => serde_norway::to_string(doc).map_err(|e| encode(e.to_string())),
        Format::Toml => toml::to_string(doc).map_err(|e| encode(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_follow_the_extension() {
        let cases: &[(&str, Option<Format>)] = &[
            ("node.yaml", Some(Format::Yaml)),
            ("/etc/ipvs/node.YML", Some(Format::Yaml)),
            ("node.toml", Some(Format::Toml)),
            ("-", Some(Format::Yaml)),
            ("node.json", None),
            ("node", None),
        ];
        for (path, want) in cases {
            let got = Format::for_path(path);
            match want {
                Some(f) => assert_eq!(got, Ok(*f), "{path}"),
                None => assert_eq!(
                    got.map_err(|e| e.to_string()),
                    Err(format!(
                        "{path}: unknown file type (use .yaml, .yml or .toml, or - for YAML on stdin)"
                    ))
                ),
            }
        }
        assert_eq!("toml".parse(), Ok(Format::Toml));
        assert_eq!(
            "json".parse::<Format>(),
            Err("invalid format `json' (yaml or toml)".to_string())
        );
    }

    #[test]
    fn positions_count_lines_and_characters() {
        let text = "a\nbé = x\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 2), (2, 1));
        // After the two-byte é: the fourth character of line 2.
        assert_eq!(line_column(text, 6), (2, 4));
        assert_eq!(line_column(text, 99), (3, 1));
    }
}
