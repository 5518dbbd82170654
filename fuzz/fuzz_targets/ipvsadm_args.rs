//! ipvsctl's command line: the input split on NUL or newline into arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|b| *b == 0 || *b == b'\n')
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ipvsctl::fuzzing::ipvsadm_args(&args);
});
