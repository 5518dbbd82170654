//! The tables the benchmark restores: N TCP services, each with D masquerading real servers,
//! as an `ipvsadm -R` input (the same file goes to both tools and to the floor).

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// One benchmarked table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size {
    pub services: u32,
    pub dests: u32,
}

impl Size {
    /// `1000×4`, as tables and result lines name a size.
    pub fn label(self) -> String {
        format!("{}x{}", self.services, self.dests)
    }

    /// Parses [`Size::label`].
    pub fn parse(s: &str) -> Option<Self> {
        let (services, dests) = s.split_once('x')?;
        Some(Size {
            services: services.parse().ok()?,
            dests: dests.parse().ok()?,
        })
    }

    /// Lines of the restore input.
    pub fn lines(self) -> u64 {
        u64::from(self.services) * (1 + u64::from(self.dests))
    }
}

/// Service `i`'s virtual address: 10.0.0.1 upwards, port 80.
pub fn vip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0001 + i)
}

/// Real server `j` of service `i`: 192.168.0.1 upwards, wrapping inside the /16 (a real
/// server only has to be unique within its service), port 8080.
pub fn rip(size: Size, i: u32, j: u32) -> Ipv4Addr {
    let n = (u64::from(i) * u64::from(size.dests) + u64::from(j)) % 65_534;
    // n < 65_534, so the sum stays inside 192.168.0.0/16.
    Ipv4Addr::from(0xc0a8_0001 + u32::try_from(n).unwrap_or(0))
}

/// The service whose first real server [`rules`] gives weight 2 when asked for the changed
/// table: one in the middle, so neither end of a list is favoured.
pub fn changed_service(size: Size) -> u32 {
    size.services / 2
}

/// The restore input for `size`; with `changed`, one real server's weight differs.
pub fn rules(size: Size, changed: bool) -> String {
    let mut out = String::with_capacity(usize::try_from(size.lines() * 56).unwrap_or(0));
    for i in 0..size.services {
        let v = vip(i);
        let _ = writeln!(out, "-A -t {v}:80 -s rr");
        for j in 0..size.dests {
            let w = if changed && i == changed_service(size) && j == 0 {
                2
            } else {
                1
            };
            let _ = writeln!(out, "-a -t {v}:80 -r {}:8080 -m -w {w}", rip(size, i, j));
        }
    }
    out
}

/// The one-service table of the small-call measurement.
pub const SMALL_TABLE: &str =
    "-A -t 10.255.0.1:80 -s rr\n-a -t 10.255.0.1:80 -r 192.168.255.1:8080 -m -w 1\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_input_is_ipvsadm_restore_format() {
        let size = Size {
            services: 2,
            dests: 2,
        };
        assert_eq!(
            rules(size, false),
            "-A -t 10.0.0.1:80 -s rr\n\
             -a -t 10.0.0.1:80 -r 192.168.0.1:8080 -m -w 1\n\
             -a -t 10.0.0.1:80 -r 192.168.0.2:8080 -m -w 1\n\
             -A -t 10.0.0.2:80 -s rr\n\
             -a -t 10.0.0.2:80 -r 192.168.0.3:8080 -m -w 1\n\
             -a -t 10.0.0.2:80 -r 192.168.0.4:8080 -m -w 1\n"
        );
    }

    #[test]
    fn changed_input_differs_in_one_weight() {
        let size = Size {
            services: 1000,
            dests: 4,
        };
        let a = rules(size, false);
        let b = rules(size, true);
        let diff: Vec<(&str, &str)> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
        assert_eq!(
            diff,
            [(
                "-a -t 10.0.1.245:80 -r 192.168.7.209:8080 -m -w 1",
                "-a -t 10.0.1.245:80 -r 192.168.7.209:8080 -m -w 2"
            )]
        );
        assert_eq!(a.lines().count(), 5000);
    }

    #[test]
    fn addresses_at_the_largest_sizes() {
        let big = Size {
            services: 50_000,
            dests: 1,
        };
        assert_eq!(vip(49_999), Ipv4Addr::new(10, 0, 195, 80));
        // Wraps inside 192.168/16 and stays unique within a service.
        let wide = Size {
            services: 16_000,
            dests: 4,
        };
        assert_eq!(rip(wide, 15_999, 3), Ipv4Addr::new(192, 168, 250, 0));
        assert_eq!(rip(big, 49_999, 0), Ipv4Addr::new(192, 168, 195, 80));
        let s = Size {
            services: 20_000,
            dests: 4,
        };
        let r: Vec<Ipv4Addr> = (0..4).map(|j| rip(s, 19_999, j)).collect();
        assert!(r.iter().all(|a| a.octets()[..2] == [192, 168]), "{r:?}");
        assert_eq!(r.iter().collect::<std::collections::HashSet<_>>().len(), 4);
    }

    #[test]
    fn size_labels() {
        let s = Size {
            services: 16_000,
            dests: 4,
        };
        assert_eq!(s.label(), "16000x4");
        assert_eq!(Size::parse("16000x4"), Some(s));
        assert_eq!(Size::parse("16000"), None);
        assert_eq!(s.lines(), 80_000);
    }
}
