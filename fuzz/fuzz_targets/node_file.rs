//! Node files: the first byte picks the format (even: YAML, odd: TOML), the rest is the text.
//! What decodes must encode and decode back to itself (checked inside).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&format, text)) = data.split_first() else {
        return;
    };
    if let Ok(text) = std::str::from_utf8(text) {
        ipvsctl::fuzzing::node_file(text, format % 2 == 0);
    }
});
