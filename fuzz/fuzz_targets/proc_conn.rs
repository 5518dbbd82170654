//! `/proc/net/ip_vs_conn` and the module lists (`/proc/modules`, `modules.dep`,
//! `modules.builtin`): the same text through each parser.
#![no_main]

use ipvs_agent::ipvs::{conn, schedulers};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = conn::parse_table(text) {
        let _ = e.to_string();
    }
    for line in text.lines() {
        let _ = conn::parse_line(line);
    }
    let _ = schedulers::loaded(text);
    let _ = schedulers::indexed(text);
    let _ = schedulers::offered(Some(text), &[Some(text), None]);
});
