//! Entry points for the fuzz targets (`fuzz/`): each takes outside input the way ipvsctl
//! reads it and must return, never panic. Not an API: hidden from the docs, unstable.

use crate::ipvsadm::resolve::NoNames;
use crate::ipvsadm::{parse, restore};
use crate::{fleet::inventory, spec};

/// The name ipvsadm's messages use for the program.
const PROGRAM: &str = "ipvsadm";

/// An ipvsctl command line (`args` without the program name), then the same words as one
/// line of `-R` input; errors are rendered as they would be printed. No name lookups: a host
/// or service name is simply unknown.
pub fn ipvsadm_args(args: &[String]) {
    if let Err(e) = parse::parse(PROGRAM, args, &NoNames) {
        let _ = (e.to_string(), e.exit_code());
    }
    if let Err(e) = parse::parse_line(PROGRAM, args, &NoNames) {
        let _ = (e.to_string(), e.exit_code());
    }
}

/// `-R` input, run on the model of a table that starts empty (`--replace`) and read as lines
/// for the agent's table (the default).
pub fn restore(input: &str) {
    for mode in [restore::Mode::Replace, restore::Mode::OnTop] {
        let _ = restore::read(PROGRAM, input, &NoNames, mode);
    }
}

/// A node file's text in YAML (`yaml`) or TOML. What decodes must survive a round trip: the
/// rendered text decodes to the same spec, and renders to the same text again.
pub fn node_file(text: &str, yaml: bool) {
    let format = if yaml {
        spec::Format::Yaml
    } else {
        spec::Format::Toml
    };
    let Ok(first) = spec::parse("fuzz", text, format) else {
        return;
    };
    let rendered = match spec::render(&first, format) {
        Ok(rendered) => rendered,
        Err(e) => panic!("a decoded spec does not render: {e}\nspec: {first:?}"),
    };
    let second = match spec::parse("fuzz", &rendered, format) {
        Ok(second) => second,
        Err(e) => panic!("rendered node file does not decode: {e}\n{rendered}"),
    };
    assert_eq!(first, second, "decode(encode(spec)) != spec\n{rendered}");
    let again = spec::render(&second, format).expect("rendered once, renders again");
    assert_eq!(rendered, again, "encoding is not stable");
}

/// A fleet inventory's text.
pub fn inventory(text: &str) {
    let _ = inventory::parse("fuzz", text);
}
