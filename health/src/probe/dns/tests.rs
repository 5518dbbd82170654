use proptest::prelude::*;

use super::*;

fn header(id: u16, flags: u16, qd: u16, an: u16) -> Vec<u8> {
    let mut h = Vec::new();
    for v in [id, flags, qd, an, 0, 0] {
        h.extend_from_slice(&v.to_be_bytes());
    }
    h
}

#[test]
fn query_layout() {
    let q = query(0xBEEF, "a.bc.", DnsType::Aaaa).expect("query");
    assert_eq!(
        q,
        [
            0xBE, 0xEF, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
            1, b'a', 2, b'b', b'c', 0, // name
            0, 28, 0, 1, // AAAA IN
        ]
    );
    assert_eq!(
        query(1, ".", DnsType::A).expect("root")[12..],
        [0, 0, 1, 0, 1]
    );
}

#[test]
fn bad_names() {
    let long_label = "a".repeat(64);
    assert!(matches!(
        query(1, &long_label, DnsType::A),
        Err(NameError::LongLabel(_))
    ));
    let long_name = vec!["a".repeat(60); 5].join(".");
    assert!(matches!(
        query(1, &long_name, DnsType::A),
        Err(NameError::LongName(_))
    ));
    assert!(matches!(
        query(1, ".a", DnsType::A),
        Err(NameError::EmptyLabel(_))
    ));
}

#[test]
fn pointer_loops_are_not_followed() {
    // An answer whose name points at itself: skipping it is two bytes, not a loop.
    let mut r = header(7, 0x8180, 0, 1);
    r.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 192, 0, 2, 1]);
    let reply = parse(&r, DnsType::A).expect("parses");
    assert_eq!(reply.addrs, ["192.0.2.1".parse::<IpAddr>().expect("ip")]);
}

#[test]
fn hostile_replies() {
    // Extended label types.
    let mut r = header(7, 0x8180, 1, 0);
    r.extend_from_slice(&[0x40, 0, 0, 1, 0, 1]);
    assert_eq!(parse(&r, DnsType::A), Err(ParseError::BadLabel));
    // Counts far beyond the data.
    let r = header(7, 0x8180, 0xFFFF, 0xFFFF);
    assert_eq!(parse(&r, DnsType::A), Err(ParseError::Truncated));
    // An A record of five bytes.
    let mut r = header(7, 0x8180, 0, 1);
    r.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]);
    assert_eq!(parse(&r, DnsType::A), Err(ParseError::BadRdLength));
    // An rdlength past the end.
    let mut r = header(7, 0x8180, 0, 1);
    r.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0xFF, 0xFF, 1]);
    assert_eq!(parse(&r, DnsType::A), Err(ParseError::Truncated));
    assert_eq!(parse(&[1, 2, 3], DnsType::A), Err(ParseError::Truncated));
}

#[test]
fn error_replies_need_no_body() {
    let reply = parse(&header(7, 0x8183, 1, 0), DnsType::A).expect("parses");
    assert_eq!((reply.id, reply.is_response, reply.rcode), (7, true, 3));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&bytes, DnsType::A);
        let _ = parse(&bytes, DnsType::Aaaa);
    }

    #[test]
    fn random_bodies_never_panic(
        an in 0u16..8,
        qd in 0u16..4,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut r = header(7, 0x8180, qd, an);
        r.extend_from_slice(&body);
        if let Ok(reply) = parse(&r, DnsType::A) {
            prop_assert!(reply.addrs.len() <= usize::from(an));
        }
    }

    #[test]
    fn names_round_trip_through_the_parser(labels in proptest::collection::vec("[a-z0-9-]{1,20}", 1..5)) {
        let name = labels.join(".");
        let q = query(42, &name, DnsType::A).expect("valid name");
        // A query parses as a message with no answers.
        let reply = parse(&q, DnsType::A).expect("parses");
        prop_assert_eq!((reply.id, reply.is_response, reply.addrs.len()), (42, false, 0));
    }
}
