//! Drains in progress on disk (`<state-dir>/drains.pb`), rewritten whole and atomically
//! ([`crate::durable`]) when one starts or ends. The format is private to the agent: a
//! protobuf message declared here, not part of the published API.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use prost::Message;

use super::ledger::DrainRecord;
use crate::ipvs::{Family, Protocol, ServiceKey};

#[derive(Clone, PartialEq, prost::Message)]
struct SavedDrains {
    #[prost(message, repeated, tag = "1")]
    drains: Vec<SavedDrain>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct SavedDrain {
    /// IP protocol number; 0 for a firewall-mark service.
    #[prost(uint32, tag = "1")]
    protocol: u32,
    /// The service's address (4 or 16 bytes); empty for a firewall-mark service.
    #[prost(bytes = "vec", tag = "2")]
    address: Vec<u8>,
    #[prost(uint32, tag = "3")]
    port: u32,
    #[prost(uint32, tag = "4")]
    fwmark: u32,
    /// AF_INET or AF_INET6, for a firewall-mark service.
    #[prost(uint32, tag = "5")]
    family: u32,
    #[prost(bytes = "vec", tag = "6")]
    server_address: Vec<u8>,
    #[prost(uint32, tag = "7")]
    server_port: u32,
    #[prost(bool, tag = "8")]
    keep: bool,
    #[prost(uint64, tag = "9")]
    deadline_unix_ms: u64,
    #[prost(uint64, tag = "10")]
    poll_ms: u64,
    #[prost(uint32, tag = "11")]
    previous: u32,
}

fn addr_bytes(a: IpAddr) -> Vec<u8> {
    match a {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

fn addr(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

fn encode(r: &DrainRecord) -> SavedDrain {
    let (protocol, address, port, fwmark, family) = match r.service {
        ServiceKey::Endpoint {
            protocol,
            addr,
            port,
        } => (
            u32::from(protocol.number()),
            addr_bytes(addr),
            u32::from(port),
            0,
            0,
        ),
        ServiceKey::FwMark { mark, family } => (0, Vec::new(), 0, mark, u32::from(family.number())),
    };
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    SavedDrain {
        protocol,
        address,
        port,
        fwmark,
        family,
        server_address: addr_bytes(r.dest.0),
        server_port: u32::from(r.dest.1),
        keep: r.keep,
        deadline_unix_ms: millis(
            r.deadline
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default(),
        ),
        poll_ms: millis(r.poll),
        previous: r.previous,
    }
}

fn decode(s: &SavedDrain) -> Option<DrainRecord> {
    let service = if s.protocol == 0 {
        let family = Family::from_number(u16::try_from(s.family).ok()?)?;
        ServiceKey::fwmark(s.fwmark, family).ok()?
    } else {
        ServiceKey::Endpoint {
            protocol: Protocol::from_number(u16::try_from(s.protocol).ok()?)?,
            addr: addr(&s.address)?,
            port: u16::try_from(s.port).ok()?,
        }
    };
    Some(DrainRecord {
        service,
        dest: (addr(&s.server_address)?, u16::try_from(s.server_port).ok()?),
        keep: s.keep,
        deadline: SystemTime::UNIX_EPOCH + Duration::from_millis(s.deadline_unix_ms),
        poll: Duration::from_millis(s.poll_ms),
        previous: s.previous,
    })
}

/// The file holding the drains in progress.
#[derive(Debug, Clone)]
pub struct DrainStore {
    path: PathBuf,
}

impl DrainStore {
    pub fn new(path: PathBuf) -> Self {
        DrainStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The drains kept; none if the file does not exist. An entry that cannot be read is left
    /// out with a warning (it names a key this build cannot hold).
    pub fn load(&self) -> io::Result<Vec<DrainRecord>> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let saved = SavedDrains::decode(bytes.as_slice())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(saved
            .drains
            .iter()
            .filter_map(|s| {
                let r = decode(s);
                if r.is_none() {
                    tracing::warn!(path = %self.path.display(), "an unreadable drain is skipped");
                }
                r
            })
            .collect())
    }

    /// Replaces the file with `drains`.
    pub fn save<'a>(&self, drains: impl Iterator<Item = &'a DrainRecord>) -> io::Result<()> {
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let saved = SavedDrains {
            drains: drains.map(encode).collect(),
        };
        crate::durable::write_atomic(&self.path, &saved.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drains_round_trip_through_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DrainStore::new(dir.path().join("state/drains.pb"));
        assert_eq!(store.load().expect("no file yet"), Vec::new());
        let records = vec![
            DrainRecord {
                service: ServiceKey::Endpoint {
                    protocol: Protocol::Tcp,
                    addr: "192.168.100.1".parse().expect("addr"),
                    port: 80,
                },
                dest: ("10.0.1.1".parse().expect("addr"), 8080),
                keep: false,
                deadline: SystemTime::UNIX_EPOCH + Duration::from_millis(1_765_000_000_123),
                poll: Duration::from_millis(500),
                previous: 100,
            },
            DrainRecord {
                service: ServiceKey::FwMark {
                    mark: 7,
                    family: Family::Inet6,
                },
                dest: ("2001:db8::2".parse().expect("addr"), 0),
                keep: true,
                deadline: SystemTime::UNIX_EPOCH,
                poll: Duration::from_secs(1),
                previous: 3,
            },
        ];
        store.save(records.iter()).expect("save");
        assert_eq!(store.load().expect("load"), records);
        store.save([].iter()).expect("save none");
        assert_eq!(store.load().expect("load"), Vec::new());
    }

    #[test]
    fn a_corrupt_file_is_an_error_not_an_empty_list() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("drains.pb");
        std::fs::write(&path, b"\xff\xff\xff").expect("write");
        let err = DrainStore::new(path).load().expect_err("corrupt");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
