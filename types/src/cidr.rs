//! An address with a prefix length, as in `ip addr add 192.0.2.1/24`.

use std::{fmt, net::IpAddr};

use thiserror::Error;

/// A prefix length longer than the address family allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("prefix length {prefix_len} is invalid for {address}: the maximum is {max}")]
pub struct InvalidPrefix {
    pub address: IpAddr,
    pub prefix_len: u8,
    pub max: u8,
}

/// An interface address and its prefix length, checked against the address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    address: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// Accepts prefix lengths up to 32 for IPv4 and up to 128 for IPv6.
    pub fn new(address: IpAddr, prefix_len: u8) -> Result<Self, InvalidPrefix> {
        let max = max_prefix_len(address);
        if prefix_len > max {
            return Err(InvalidPrefix {
                address,
                prefix_len,
                max,
            });
        }
        Ok(Self {
            address,
            prefix_len,
        })
    }

    pub fn address(&self) -> IpAddr {
        self.address
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

/// Bits in an address of this family.
pub fn max_prefix_len(address: IpAddr) -> u8 {
    match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_must_fit_the_family() {
        let cases: &[(&str, u8, Result<&str, &str>)] = &[
            ("192.0.2.1", 0, Ok("192.0.2.1/0")),
            ("192.0.2.1", 24, Ok("192.0.2.1/24")),
            ("192.0.2.1", 32, Ok("192.0.2.1/32")),
            (
                "192.0.2.1",
                33,
                Err("prefix length 33 is invalid for 192.0.2.1: the maximum is 32"),
            ),
            (
                "192.0.2.1",
                255,
                Err("prefix length 255 is invalid for 192.0.2.1: the maximum is 32"),
            ),
            ("2001:db8::1", 0, Ok("2001:db8::1/0")),
            ("2001:db8::1", 64, Ok("2001:db8::1/64")),
            ("2001:db8::1", 128, Ok("2001:db8::1/128")),
            (
                "2001:db8::1",
                129,
                Err("prefix length 129 is invalid for 2001:db8::1: the maximum is 128"),
            ),
        ];
        for &(address, prefix_len, expected) in cases {
            let address: IpAddr = address.parse().expect("test address parses");
            let got = Cidr::new(address, prefix_len)
                .map(|c| c.to_string())
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                expected.map(String::from).map_err(String::from),
                "{address}/{prefix_len}"
            );
        }
    }

    #[test]
    fn invalid_prefix_is_structured() {
        let address: IpAddr = "10.0.0.1".parse().expect("test address parses");
        assert_eq!(
            Cidr::new(address, 40),
            Err(InvalidPrefix {
                address,
                prefix_len: 40,
                max: 32
            })
        );
    }
}
