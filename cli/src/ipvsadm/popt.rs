//! A tokenizer with popt's rules, the option library ipvsadm is built with.
//!
//! popt differs from getopt in ways scripts rely on: short options bundle (`-Lnt VIP:80`), an
//! option's argument may be attached (`-p10`, `-t=VIP:80`), an *optional* argument (`-p
//! [timeout]`) is taken from the next word only when that word does not start with `-`, a
//! required argument is taken even when it does (`-t -n`), long options need their full name,
//! and words that are not options may appear anywhere.
//!
//! Errors carry the last word read, which is what `poptBadOption` reports.

use std::fmt;

/// Whether an option takes an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    None,
    Required,
    Optional,
}

/// One entry of the option table.
#[derive(Debug, Clone, Copy)]
pub struct OptSpec<T> {
    pub long: Option<&'static str>,
    pub short: Option<char>,
    pub arg: ArgKind,
    pub id: T,
}

/// What popt found wrong with a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoptErrorKind {
    /// POPT_ERROR_BADOPT.
    UnknownOption,
    /// POPT_ERROR_NOARG.
    MissingArgument,
    /// POPT_ERROR_UNWANTEDARG.
    UnwantedArgument,
}

/// A popt error: ipvsadm prints it as `WORD: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoptError {
    pub word: String,
    pub kind: PoptErrorKind,
}

impl fmt::Display for PoptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = match self.kind {
            PoptErrorKind::UnknownOption => "unknown option",
            PoptErrorKind::MissingArgument => "missing argument",
            PoptErrorKind::UnwantedArgument => "option does not take an argument",
        };
        write!(f, "{}: {reason}", self.word)
    }
}

/// One item of the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token<T> {
    /// An option; `word` is the last word read, for error messages.
    Opt {
        id: T,
        arg: Option<String>,
        word: String,
    },
    /// A word that is not an option (popt's "leftover" argument).
    Arg(String),
}

/// Walks a command line the way `poptGetNextOpt` does.
#[derive(Debug)]
pub struct Popt<'a, T: Copy> {
    table: &'a [OptSpec<T>],
    args: &'a [String],
    next: usize,
    /// The word being read as a bundle of short options, and the byte offset in it.
    bundle: Option<(usize, usize)>,
    only_args: bool,
    /// A short option that, as the last of its word, takes the next word when that word is one
    /// of the given values, although it takes no argument otherwise (ipvsctl's `-o json`).
    value_short: Option<(char, T, &'a [&'a str])>,
}

impl<'a, T: Copy> Popt<'a, T> {
    pub fn new(table: &'a [OptSpec<T>], args: &'a [String]) -> Self {
        Self {
            table,
            args,
            next: 0,
            bundle: None,
            only_args: false,
            value_short: None,
        }
    }

    /// Makes short option `short`, when it ends its word and the next word is one of
    /// `values`, come out as option `id` with that word as its argument.
    pub fn with_value_short(mut self, short: char, id: T, values: &'a [&'a str]) -> Self {
        self.value_short = Some((short, id, values));
        self
    }

    fn last_word(&self) -> String {
        self.next
            .checked_sub(1)
            .and_then(|i| self.args.get(i))
            .cloned()
            .unwrap_or_default()
    }

    fn error(&self, kind: PoptErrorKind) -> PoptError {
        PoptError {
            word: self.last_word(),
            kind,
        }
    }

    fn opt(&self, id: T, arg: Option<String>) -> Token<T> {
        Token::Opt {
            id,
            arg,
            word: self.last_word(),
        }
    }

    /// Takes the next word as a required argument.
    fn take_required(&mut self) -> Result<String, PoptError> {
        match self.args.get(self.next) {
            Some(word) => {
                self.next += 1;
                Ok(word.clone())
            }
            None => Err(self.error(PoptErrorKind::MissingArgument)),
        }
    }

    /// Takes the next word as an optional argument, unless it looks like an option.
    fn take_optional(&mut self) -> Option<String> {
        match self.args.get(self.next) {
            Some(word) if !word.starts_with('-') => {
                self.next += 1;
                Some(word.clone())
            }
            _ => None,
        }
    }

    fn next_short(&mut self, word_index: usize, offset: usize) -> Result<Token<T>, PoptError> {
        let word = &self.args[word_index];
        let rest = &word[offset..];
        let Some(c) = rest.chars().next() else {
            // A bundle never ends empty: it is dropped with its last option.
            self.bundle = None;
            return Err(self.error(PoptErrorKind::UnknownOption));
        };
        let after = offset + c.len_utf8();
        let tail = &word[after..];
        let Some(spec) = self.table.iter().find(|s| s.short == Some(c)) else {
            self.bundle = None;
            return Err(self.error(PoptErrorKind::UnknownOption));
        };
        match spec.arg {
            ArgKind::None => {
                if tail.is_empty() {
                    self.bundle = None;
                    if let Some((short, id, values)) = self.value_short
                        && short == c
                        && let Some(value) = self.args.get(self.next)
                        && values.contains(&value.as_str())
                    {
                        let value = value.clone();
                        self.next += 1;
                        return Ok(self.opt(id, Some(value)));
                    }
                } else {
                    self.bundle = Some((word_index, after));
                }
                Ok(self.opt(spec.id, None))
            }
            ArgKind::Required | ArgKind::Optional => {
                self.bundle = None;
                let attached = tail.strip_prefix('=').unwrap_or(tail);
                let arg = if !tail.is_empty() {
                    Some(attached.to_string())
                } else if spec.arg == ArgKind::Required {
                    Some(self.take_required()?)
                } else {
                    self.take_optional()
                };
                Ok(self.opt(spec.id, arg))
            }
        }
    }

    fn next_long(&mut self, body: &str) -> Result<Token<T>, PoptError> {
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (body, None),
        };
        let Some(spec) = self.table.iter().find(|s| s.long == Some(name)) else {
            return Err(self.error(PoptErrorKind::UnknownOption));
        };
        let arg = match (spec.arg, value) {
            (ArgKind::None, Some(_)) => return Err(self.error(PoptErrorKind::UnwantedArgument)),
            (ArgKind::None, None) => None,
            (_, Some(value)) => Some(value),
            (ArgKind::Required, None) => Some(self.take_required()?),
            (ArgKind::Optional, None) => self.take_optional(),
        };
        Ok(self.opt(spec.id, arg))
    }

    /// The next token, `None` at the end, or the error that stops popt.
    pub fn next_token(&mut self) -> Option<Result<Token<T>, PoptError>> {
        if let Some((index, offset)) = self.bundle {
            return Some(self.next_short(index, offset));
        }
        let index = self.next;
        let word = self.args.get(index)?;
        self.next += 1;
        if self.only_args {
            return Some(Ok(Token::Arg(word.clone())));
        }
        if word == "--" {
            self.only_args = true;
            return self.next_token();
        }
        if let Some(body) = word.strip_prefix("--") {
            return Some(self.next_long(body));
        }
        if word.len() > 1 && word.starts_with('-') {
            return Some(self.next_short(index, 1));
        }
        Some(Ok(Token::Arg(word.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Id {
        List,
        Numeric,
        Tcp,
        Persistent,
        Stats,
        Ops,
        Output,
    }

    const TABLE: &[OptSpec<Id>] = &[
        OptSpec {
            long: Some("list"),
            short: Some('L'),
            arg: ArgKind::None,
            id: Id::List,
        },
        OptSpec {
            long: Some("numeric"),
            short: Some('n'),
            arg: ArgKind::None,
            id: Id::Numeric,
        },
        OptSpec {
            long: Some("tcp-service"),
            short: Some('t'),
            arg: ArgKind::Required,
            id: Id::Tcp,
        },
        OptSpec {
            long: Some("persistent"),
            short: Some('p'),
            arg: ArgKind::Optional,
            id: Id::Persistent,
        },
        OptSpec {
            long: Some("stats"),
            short: None,
            arg: ArgKind::None,
            id: Id::Stats,
        },
        OptSpec {
            long: Some("ops"),
            short: Some('o'),
            arg: ArgKind::None,
            id: Id::Ops,
        },
        OptSpec {
            long: Some("output"),
            short: None,
            arg: ArgKind::Required,
            id: Id::Output,
        },
    ];

    /// Renders tokens compactly: `L`, `t=ARG`, `p`, `"leftover"`, or `!error`.
    fn run(line: &str) -> Vec<String> {
        let args: Vec<String> = if line.is_empty() {
            Vec::new()
        } else {
            line.split(' ').map(|s| s.replace('_', " ")).collect()
        };
        let mut popt = Popt::new(TABLE, &args).with_value_short('o', Id::Output, &["json", "text"]);
        let mut out = Vec::new();
        while let Some(token) = popt.next_token() {
            match token {
                Ok(Token::Opt {
                    id, arg: Some(arg), ..
                }) => out.push(format!("{id:?}={arg}")),
                Ok(Token::Opt { id, arg: None, .. }) => out.push(format!("{id:?}")),
                Ok(Token::Arg(a)) => out.push(format!("{a:?}")),
                Err(e) => {
                    out.push(format!("!{e}"));
                    break;
                }
            }
        }
        out
    }

    #[test]
    fn tokenizes_like_popt() {
        let cases: &[(&str, &[&str])] = &[
            ("", &[]),
            ("-ln", &["!-ln: unknown option"]),
            ("-Ln", &["List", "Numeric"]),
            ("-Lnt 1.2.3.4:80", &["List", "Numeric", "Tcp=1.2.3.4:80"]),
            ("-Lnt1.2.3.4:80", &["List", "Numeric", "Tcp=1.2.3.4:80"]),
            ("-t=1.2.3.4:80", &["Tcp=1.2.3.4:80"]),
            ("-t -n", &["Tcp=-n"]),
            ("-Lnt", &["List", "Numeric", "!-Lnt: missing argument"]),
            ("--tcp-service", &["!--tcp-service: missing argument"]),
            ("--tcp-service=x", &["Tcp=x"]),
            ("--tcp-service x", &["Tcp=x"]),
            ("--tcp x", &["!--tcp: unknown option"]),
            (
                "--stats=3",
                &["!--stats=3: option does not take an argument"],
            ),
            ("-p", &["Persistent"]),
            ("-p 10", &["Persistent=10"]),
            ("-p10", &["Persistent=10"]),
            ("-p=10", &["Persistent=10"]),
            ("-p -n", &["Persistent", "Numeric"]),
            ("-p -5", &["Persistent", "!-5: unknown option"]),
            ("-p _", &["Persistent= "]),
            ("--persistent 7", &["Persistent=7"]),
            ("--persistent= -n", &["Persistent=", "Numeric"]),
            ("foo -L bar", &["\"foo\"", "List", "\"bar\""]),
            ("-L -- -n", &["List", "\"-n\""]),
            ("-L -", &["List", "\"-\""]),
            ("-Lq", &["List", "!-Lq: unknown option"]),
            ("-o", &["Ops"]),
            ("-o json", &["Output=json"]),
            ("-Lo text", &["List", "Output=text"]),
            ("-o xml", &["Ops", "\"xml\""]),
            ("-oL json", &["Ops", "List", "\"json\""]),
        ];
        for (line, want) in cases {
            assert_eq!(run(line), *want, "tokens of {line:?}");
        }
    }

    #[test]
    fn error_word_is_the_last_word_read() {
        let args: Vec<String> = ["-L", "-nq"].iter().map(|s| s.to_string()).collect();
        let mut popt = Popt::new(TABLE, &args);
        assert!(matches!(
            popt.next_token(),
            Some(Ok(Token::Opt { id: Id::List, .. }))
        ));
        assert!(matches!(
            popt.next_token(),
            Some(Ok(Token::Opt {
                id: Id::Numeric,
                ..
            }))
        ));
        assert_eq!(
            popt.next_token(),
            Some(Err(PoptError {
                word: "-nq".into(),
                kind: PoptErrorKind::UnknownOption
            }))
        );
    }
}
