//! Reading the netlink capture that tcpdump writes on an `nlmon` device.
//!
//! ```text
//! pcap file:   24-byte header (magic, version, ..., linktype) then records
//! record:      ts_sec u32, ts_frac u32, incl_len u32, orig_len u32, data[incl_len]
//! DLT_NETLINK: 16-byte cooked header, then one or more netlink messages
//!              pkttype u16be | hatype u16be | halen u16be | addr[8] | protocol u16be
//! nlmsghdr:    len u32 | type u16 | flags u16 | seq u32 | pid u32   (host order: LE here)
//! ```

use anyhow::{Result, bail};

/// `LINKTYPE_NETLINK`.
pub const LINKTYPE_NETLINK: u32 = 253;
/// `PACKET_USER` / `PACKET_KERNEL` from `linux/if_packet.h`: who sent the message. The tap
/// sets them, but a packet socket on `nlmon` sees the transmit path and reports
/// `PACKET_OUTGOING` instead, so the direction usually comes from `NLM_F_REQUEST`.
const PACKET_USER: u16 = 6;
const PACKET_KERNEL: u16 = 7;
/// The kernel only acts on messages carrying this flag and never sets it in its own.
const NLM_F_REQUEST: u16 = 0x1;
const COOKED_LEN: usize = 16;
const NLMSG_HDRLEN: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcap {
    pub linktype: u32,
    pub records: Vec<Vec<u8>>,
}

pub fn parse(bytes: &[u8]) -> Result<Pcap> {
    if bytes.len() < 24 {
        bail!("pcap file of {} bytes has no header", bytes.len());
    }
    let magic = [bytes[0], bytes[1], bytes[2], bytes[3]];
    let le = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => bail!("not a pcap file (magic {magic:02x?})"),
    };
    let u32_at = |at: usize| -> u32 {
        let b = [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        }
    };
    let linktype = u32_at(20);
    let mut records = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        if bytes.len() - at < 16 {
            bail!("truncated pcap record header at offset {at}");
        }
        let len = u32_at(at + 8) as usize;
        let start = at + 16;
        let Some(data) = bytes.get(start..start + len) else {
            bail!("truncated pcap record at offset {at}");
        };
        records.push(data.to_vec());
        at = start + len;
    }
    Ok(Pcap { linktype, records })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToKernel,
    FromKernel,
}

/// One netlink message as captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub direction: Direction,
    /// The netlink protocol (`NETLINK_GENERIC` = 16, `NETLINK_ROUTE` = 0, ...).
    pub protocol: u16,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
    pub bytes: Vec<u8>,
}

/// Splits every record into its netlink messages.
pub fn messages(pcap: &Pcap) -> Result<Vec<Message>> {
    if pcap.linktype != LINKTYPE_NETLINK {
        bail!(
            "capture link type {} is not netlink ({LINKTYPE_NETLINK})",
            pcap.linktype
        );
    }
    let mut out = Vec::new();
    for (n, rec) in pcap.records.iter().enumerate() {
        if rec.len() < COOKED_LEN {
            bail!(
                "record {n}: {} bytes is shorter than the cooked header",
                rec.len()
            );
        }
        let be16 = |at: usize| u16::from_be_bytes([rec[at], rec[at + 1]]);
        let pkttype = be16(0);
        let protocol = be16(14);
        let mut body = &rec[COOKED_LEN..];
        while body.len() >= NLMSG_HDRLEN {
            let le32 = |at: usize| {
                u32::from_le_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]])
            };
            let le16 = |at: usize| u16::from_le_bytes([body[at], body[at + 1]]);
            let len = le32(0) as usize;
            if len < NLMSG_HDRLEN || len > body.len() {
                bail!(
                    "record {n}: bad nlmsg_len {len} with {} bytes left",
                    body.len()
                );
            }
            let flags = le16(6);
            let direction = match pkttype {
                PACKET_USER => Direction::ToKernel,
                PACKET_KERNEL => Direction::FromKernel,
                _ if flags & NLM_F_REQUEST != 0 => Direction::ToKernel,
                _ => Direction::FromKernel,
            };
            out.push(Message {
                direction,
                protocol,
                ty: le16(4),
                flags,
                seq: le32(8),
                pid: le32(12),
                bytes: body[..len].to_vec(),
            });
            let aligned = (len + 3) & !3;
            body = body.get(aligned..).unwrap_or_default();
        }
    }
    Ok(out)
}

/// `U->K NETLINK_GENERIC type=0x0010 flags=0x0005 seq=1 pid=0 len=32 2000...`
pub fn format(m: &Message) -> String {
    let dir = match m.direction {
        Direction::ToKernel => "U->K",
        Direction::FromKernel => "K->U",
    };
    format!(
        "{dir} {} type=0x{:04x} flags=0x{:04x} seq={} pid={} len={} {}",
        protocol_name(m.protocol),
        m.ty,
        m.flags,
        m.seq,
        m.pid,
        m.bytes.len(),
        hex(&m.bytes)
    )
}

fn protocol_name(p: u16) -> String {
    match p {
        0 => "NETLINK_ROUTE".into(),
        12 => "NETLINK_NETFILTER".into(),
        16 => "NETLINK_GENERIC".into(),
        other => format!("NETLINK_{other}"),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from a hex dump (`xxd -p`, `od -An -tx1`): whitespace is ignored.
pub fn decode_hex(text: &str) -> Result<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).unwrap_or("??");
            u8::from_str_radix(s, 16).map_err(|_| anyhow::anyhow!("bad hex byte {s:?}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_with(records: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0];
        f.extend_from_slice(&[0; 8]);
        f.extend_from_slice(&262144u32.to_le_bytes());
        f.extend_from_slice(&LINKTYPE_NETLINK.to_le_bytes());
        for r in records {
            f.extend_from_slice(&[0; 8]);
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(&(r.len() as u32).to_le_bytes());
            f.extend_from_slice(r);
        }
        f
    }

    fn cooked(pkttype: u16, protocol: u16, body: &[u8]) -> Vec<u8> {
        let mut r = pkttype.to_be_bytes().to_vec();
        // ARPHRD_NETLINK
        r.extend_from_slice(&824u16.to_be_bytes());
        r.extend_from_slice(&[0; 10]);
        r.extend_from_slice(&protocol.to_be_bytes());
        r.extend_from_slice(body);
        r
    }

    fn nlmsg(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = ((16 + payload.len()) as u32).to_le_bytes().to_vec();
        m.extend_from_slice(&ty.to_le_bytes());
        m.extend_from_slice(&flags.to_le_bytes());
        m.extend_from_slice(&seq.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(payload);
        while !m.len().is_multiple_of(4) {
            m.push(0);
        }
        m
    }

    #[test]
    fn splits_records_into_messages() -> Result<()> {
        let request = nlmsg(0x10, 0x0005, 1, &[3, 1, 0, 0]);
        let mut dump = nlmsg(0x24, 0x0002, 1, &[1, 1, 0, 0, 9]);
        dump.extend_from_slice(&nlmsg(3, 0x0002, 1, &[0, 0, 0, 0]));
        // PACKET_OUTGOING (4), as captured on nlmon: the direction comes from the flags.
        let ack = nlmsg(2, 0x0100, 2, &[0, 0, 0, 0]);
        let file = pcap_with(&[
            cooked(6, 16, &request),
            cooked(7, 16, &dump),
            cooked(4, 16, &request),
            cooked(4, 0, &ack),
        ]);
        let msgs = messages(&parse(&file)?)?;
        let lines: Vec<String> = msgs.iter().map(format).collect();
        assert_eq!(
            lines,
            [
                "U->K NETLINK_GENERIC type=0x0010 flags=0x0005 seq=1 pid=0 len=20 1400000010000500010000000000000003010000",
                "K->U NETLINK_GENERIC type=0x0024 flags=0x0002 seq=1 pid=0 len=21 150000002400020001000000000000000101000009",
                "K->U NETLINK_GENERIC type=0x0003 flags=0x0002 seq=1 pid=0 len=20 1400000003000200010000000000000000000000",
                "U->K NETLINK_GENERIC type=0x0010 flags=0x0005 seq=1 pid=0 len=20 1400000010000500010000000000000003010000",
                "K->U NETLINK_ROUTE type=0x0002 flags=0x0100 seq=2 pid=0 len=20 1400000002000001020000000000000000000000",
            ]
        );
        Ok(())
    }

    #[test]
    fn bad_captures() {
        let mut wrong_link = pcap_with(&[]);
        wrong_link[20] = 1;
        let bad_len = pcap_with(&[cooked(
            6,
            16,
            &[0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        )]);
        let mut truncated = pcap_with(&[cooked(6, 16, &nlmsg(1, 0, 0, &[]))]);
        truncated.pop();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![1, 2, 3], "pcap file of 3 bytes has no header"),
            (vec![0; 24], "not a pcap file (magic [00, 00, 00, 00])"),
            (wrong_link, "capture link type 1 is not netlink (253)"),
            (bad_len, "record 0: bad nlmsg_len 255 with 16 bytes left"),
            (truncated, "truncated pcap record at offset 24"),
        ];
        for (bytes, want) in cases {
            let got = parse(&bytes)
                .and_then(|p| messages(&p))
                .map_err(|e| e.to_string());
            assert_eq!(got, Err(want.to_string()));
        }
    }

    #[test]
    fn hex_dump_decoding() -> Result<()> {
        assert_eq!(
            decode_hex("d4c3b2a1\n0200 0400\n")?,
            [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]
        );
        assert_eq!(
            decode_hex("abc").map_err(|e| e.to_string()),
            Err("odd number of hex digits".to_string())
        );
        assert_eq!(
            decode_hex("zz").map_err(|e| e.to_string()),
            Err("bad hex byte \"zz\"".to_string())
        );
        Ok(())
    }
}
