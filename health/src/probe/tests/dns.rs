use std::net::IpAddr;

use tokio::net::UdpSocket;

use super::*;
use crate::check::{Dns, DnsType};

/// How the test server answers a query.
#[derive(Clone, Copy)]
enum Answer {
    /// NOERROR with these A records (after a CNAME, to be skipped).
    A(&'static [[u8; 4]]),
    Aaaa([u8; 16]),
    Rcode(u16),
    /// The query's id, then bytes that are no DNS message.
    Garbage,
    /// A well-formed reply to another id.
    WrongId,
    Silence,
}

fn reply(q: &[u8], answer: Answer) -> Option<Vec<u8>> {
    let mut r = q[..2].to_vec();
    let (rcode, records): (u16, Vec<(u16, Vec<u8>)>) = match answer {
        Answer::A(addrs) => {
            // A CNAME pointing at the question's name (compressed), then the addresses.
            let mut recs = vec![(5u16, vec![0xC0, 0x0C])];
            recs.extend(addrs.iter().map(|a| (1u16, a.to_vec())));
            (0, recs)
        }
        Answer::Aaaa(a) => (0, vec![(28, a.to_vec())]),
        Answer::Rcode(rc) => (rc, Vec::new()),
        Answer::Garbage => {
            r.extend_from_slice(&[0x81, 0x80, 0x00, 0x01, 0x00, 0x09]);
            return Some(r);
        }
        Answer::WrongId => {
            let mut rr = reply(q, Answer::A(&[[10, 0, 0, 1]]))?;
            rr[1] = rr[1].wrapping_add(1);
            return Some(rr);
        }
        Answer::Silence => return None,
    };
    r.extend_from_slice(&(0x8180 | rcode).to_be_bytes());
    r.extend_from_slice(&1u16.to_be_bytes());
    r.extend_from_slice(&u16::try_from(records.len()).expect("few").to_be_bytes());
    r.extend_from_slice(&[0; 4]);
    r.extend_from_slice(&q[12..]);
    for (rtype, rdata) in records {
        r.extend_from_slice(&[0xC0, 0x0C]);
        r.extend_from_slice(&rtype.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&300u32.to_be_bytes());
        r.extend_from_slice(&u16::try_from(rdata.len()).expect("short").to_be_bytes());
        r.extend_from_slice(&rdata);
    }
    Some(r)
}

/// A DNS server answering one query as told; gives the query back.
async fn server(answer: Answer) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = s.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 512];
        let (n, from) = s.recv_from(&mut buf).await.expect("query");
        if let Some(r) = reply(&buf[..n], answer) {
            s.send_to(&r, from).await.expect("send reply");
        }
        buf[..n].to_vec()
    });
    (addr, task)
}

fn dns(qtype: DnsType, expect: &[&str]) -> Kind {
    Kind::Dns(Dns {
        name: "www.example.com".to_owned(),
        qtype,
        expect: expect
            .iter()
            .map(|a| a.parse::<IpAddr>().expect("address"))
            .collect(),
    })
}

async fn run(kind: Kind, answer: Answer) -> (ProbeResult, Vec<u8>) {
    let (addr, task) = server(answer).await;
    let r = probe(&kind, addr, ms(300)).await;
    (r, task.await.expect("server"))
}

#[tokio::test]
async fn dns_answer_is_up_and_the_query_is_standard() {
    let (r, q) = run(dns(DnsType::A, &[]), Answer::A(&[[10, 0, 0, 1]])).await;
    assert_verdict(&r, Outcome::Up, "dns answer 10.0.0.1");
    assert_eq!(&q[2..12], &[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&q[12..], b"\x03www\x07example\x03com\x00\x00\x01\x00\x01");
}

#[tokio::test]
async fn dns_expected_addresses() {
    let records: &[[u8; 4]] = &[[10, 0, 0, 1], [10, 0, 0, 2]];
    let (r, _) = run(dns(DnsType::A, &["10.0.0.2"]), Answer::A(records)).await;
    assert_verdict(&r, Outcome::Up, "dns answer 10.0.0.2");
    let (r, _) = run(dns(DnsType::A, &["10.0.0.9"]), Answer::A(records)).await;
    assert_verdict(
        &r,
        Outcome::Down,
        "dns answer 10.0.0.1, 10.0.0.2 not expected",
    );
}

#[tokio::test]
async fn dns_aaaa() {
    let addr: std::net::Ipv6Addr = "2001:db8::5".parse().expect("address");
    let (r, q) = run(
        dns(DnsType::Aaaa, &["2001:db8::5"]),
        Answer::Aaaa(addr.octets()),
    )
    .await;
    assert_verdict(&r, Outcome::Up, "dns answer 2001:db8::5");
    assert_eq!(&q[q.len() - 4..], &[0, 28, 0, 1]);
}

#[tokio::test]
async fn dns_no_record_of_the_type() {
    let (r, _) = run(dns(DnsType::A, &[]), Answer::A(&[])).await;
    assert_verdict(&r, Outcome::Down, "dns no A record");
}

#[tokio::test]
async fn dns_error_codes() {
    let (r, _) = run(dns(DnsType::A, &[]), Answer::Rcode(3)).await;
    assert_verdict(&r, Outcome::Down, "dns NXDOMAIN");
    let (r, _) = run(dns(DnsType::A, &[]), Answer::Rcode(2)).await;
    assert_verdict(&r, Outcome::Down, "dns SERVFAIL");
}

#[tokio::test]
async fn dns_garbage_and_wrong_id() {
    let (r, _) = run(dns(DnsType::A, &[]), Answer::Garbage).await;
    assert_verdict(&r, Outcome::Down, "dns malformed reply: truncated");
    let (r, _) = run(dns(DnsType::A, &[]), Answer::WrongId).await;
    assert_verdict(&r, Outcome::Down, "dns reply id mismatch");
}

#[tokio::test]
async fn dns_silence_times_out() {
    let (r, _) = run(dns(DnsType::A, &[]), Answer::Silence).await;
    assert_verdict(&r, Outcome::Down, "timeout after 300ms");
    assert_bounded(&r, ms(300));
}

#[tokio::test]
async fn dns_bad_name_is_not_sent() {
    let kind = Kind::Dns(Dns {
        name: "a..b".to_owned(),
        qtype: DnsType::A,
        expect: Vec::new(),
    });
    let r = probe(&kind, closed_port().await, ms(300)).await;
    assert_verdict(&r, Outcome::Down, "dns empty label in name \"a..b\"");
}
