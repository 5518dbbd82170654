//! Properties of what the types crate reads from people and files: link names, addresses with
//! prefixes, scheduler names, and the quoting of refused values into messages, which must
//! stay short whatever it is given.

use std::net::IpAddr;

use proptest::prelude::*;

use crate::{Cidr, LinkName, MAX_NAME_LEN, QUOTE_BYTES, Scheduler, max_prefix_len, quote};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Text from anywhere: any characters, control and non-ASCII ones often, sometimes long.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        "[\\x00-\\x7f\u{80}-\u{ff}\u{2028}\u{10ffff}é]{0,80}",
        (0usize..20_000, "\\PC").prop_map(|(n, c)| c.repeat(n)),
        proptest::collection::vec(any::<u8>(), 0..200)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// The longest `{:?}` of one character: `\u{10ffff}`.
const ESCAPED_CHAR_BYTES: usize = 10;

proptest! {
    #![proptest_config(config())]

    /// A quote is the whole value when short, else the escaped start of it and its length;
    /// never longer than a short value's quote plus the note.
    #[test]
    fn quotes_are_bounded(s in arb_text()) {
        let q = quote(&s);
        prop_assert!(q.len() <= QUOTE_BYTES * ESCAPED_CHAR_BYTES + 2 + 32, "{} bytes", q.len());
        if s.len() <= QUOTE_BYTES {
            prop_assert_eq!(q, format!("{s:?}"));
        } else {
            let note = format!("... ({} bytes)", s.len());
            prop_assert!(q.ends_with(&note));
            let head = &q[..q.len() - note.len()];
            let cut_well = (QUOTE_BYTES - 3..=QUOTE_BYTES)
                .any(|n| s.is_char_boundary(n) && head == format!("{:?}", &s[..n]));
            prop_assert!(cut_well, "{} does not start {:?}", head, s);
        }
    }

    /// Link names: what is accepted is what the kernel accepts, and reads back as itself;
    /// a refusal quotes the name, boundedly.
    #[test]
    fn link_names_are_checked(s in prop_oneof![arb_text(), "[a-z0-9.:/ _-]{0,20}"]) {
        match LinkName::new(s.clone()) {
            Ok(name) => {
                prop_assert!(!s.is_empty() && s.len() <= MAX_NAME_LEN);
                prop_assert!(s != "." && s != "..");
                prop_assert!(!s.bytes().any(|b| b"/: \t\n\x0b\x0c\r\0\xa0".contains(&b)));
                prop_assert_eq!(name.to_string().parse::<LinkName>(), Ok(name.clone()));
                prop_assert_eq!(name.as_str(), s.as_str());
            }
            Err(e) => {
                prop_assert_eq!(&e.name, &s);
                prop_assert!(e.to_string().len() <= 600);
            }
        }
    }

    /// Prefixes: accepted exactly up to the family's width, shown as `address/len`, which
    /// reads back.
    #[test]
    fn prefixes_fit_their_family(
        address in prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ],
        len in any::<u8>(),
    ) {
        match Cidr::new(address, len) {
            Ok(c) => {
                prop_assert!(len <= max_prefix_len(address));
                let text = c.to_string();
                let (a, l) = text.rsplit_once('/').expect("a slash");
                prop_assert_eq!(a.parse::<IpAddr>(), Ok(address));
                prop_assert_eq!(l.parse::<u8>(), Ok(len));
            }
            Err(e) => {
                prop_assert!(len > max_prefix_len(address));
                prop_assert_eq!(e.max, max_prefix_len(address));
            }
        }
    }

    /// Scheduler names from people: only known ones, which name themselves; from the
    /// kernel: anything, kept as it was.
    #[test]
    fn scheduler_names_read_back(s in prop_oneof![arb_text(), "[a-z]{1,6}"]) {
        match s.parse::<Scheduler>() {
            Ok(sched) => {
                prop_assert!(Scheduler::KNOWN.contains(&sched));
                prop_assert_eq!(sched.name(), s.as_str());
            }
            Err(_) => prop_assert!(!Scheduler::KNOWN.iter().any(|k| k.name() == s)),
        }
        let from_kernel = Scheduler::from_kernel(&s);
        prop_assert_eq!(from_kernel.name(), s.as_str());
    }
}
