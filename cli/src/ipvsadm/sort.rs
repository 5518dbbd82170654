//! ipvsadm's listing order, reproduced exactly.
//!
//! ipvsadm sorts services with `ipvs_cmp_services` (firewall mark, family, protocol, address,
//! port) and real servers with `ipvs_cmp_dests` (address, port) through glibc's `qsort`. Both
//! comparators subtract unsigned 32-bit values into an `int`, so two addresses more than 2^31
//! apart compare the wrong way round (10.0.0.1 sorts after 192.168.0.1), and the order is then
//! not even transitive. To print what ipvsadm prints, the same arithmetic runs here through
//! the same algorithm: glibc's `qsort` is a top-down merge sort that splits at `n / 2` and
//! takes the left element when the comparison is `<= 0`.

use std::net::IpAddr;

use super::resolve::L4;
use super::view::{DestView, Family, ServiceView};

const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

/// An address as four host-order words; IPv4 fills the first.
fn words(addr: Option<IpAddr>) -> [u32; 4] {
    match addr {
        Some(IpAddr::V4(a)) => [u32::from(a), 0, 0, 0],
        Some(IpAddr::V6(a)) => {
            let o = a.octets();
            let w = |i: usize| u32::from_be_bytes([o[i], o[i + 1], o[i + 2], o[i + 3]]);
            [w(0), w(4), w(8), w(12)]
        }
        None => [0; 4],
    }
}

/// `(int)(a - b)` on unsigned 32-bit values, as C computes it.
fn c_diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

fn compare_addrs(ipv6: bool, a: [u32; 4], b: [u32; 4]) -> i32 {
    if ipv6 {
        a.iter()
            .zip(b.iter())
            .map(|(x, y)| c_diff(*x, *y))
            .find(|r| *r != 0)
            .unwrap_or(0)
    } else {
        c_diff(a[0], b[0])
    }
}

fn protocol_number(p: Option<L4>) -> i32 {
    match p {
        Some(L4::Tcp) => 6,
        Some(L4::Udp) => 17,
        Some(L4::Sctp) => 132,
        None => 0,
    }
}

fn af(f: Family) -> i32 {
    match f {
        Family::Inet => AF_INET,
        Family::Inet6 => AF_INET6,
    }
}

/// ipvsadm's `ipvs_cmp_services`.
pub fn cmp_services(s1: &ServiceView, s2: &ServiceView) -> i32 {
    let r = c_diff(s1.fwmark.unwrap_or(0), s2.fwmark.unwrap_or(0));
    if r != 0 {
        return r;
    }
    let r = af(s1.family) - af(s2.family);
    if r != 0 {
        return r;
    }
    let r = protocol_number(s1.protocol) - protocol_number(s2.protocol);
    if r != 0 {
        return r;
    }
    let r = compare_addrs(
        s1.family == Family::Inet6,
        words(s1.address),
        words(s2.address),
    );
    if r != 0 {
        return r;
    }
    i32::from(s1.port.unwrap_or(0)) - i32::from(s2.port.unwrap_or(0))
}

/// ipvsadm's `ipvs_cmp_dests`: the first server's family decides how much address compares.
pub fn cmp_dests(d1: &DestView, d2: &DestView) -> i32 {
    let r = compare_addrs(
        d1.address.is_ipv6(),
        words(Some(d1.address)),
        words(Some(d2.address)),
    );
    if r != 0 {
        return r;
    }
    i32::from(d1.port) - i32::from(d2.port)
}

/// glibc's `qsort` (`msort_with_tmp`) with a C comparator.
pub fn glibc_qsort<T: Clone>(v: &mut [T], cmp: &dyn Fn(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    {
        let (left, right) = v.split_at_mut(n1);
        glibc_qsort(left, cmp);
        glibc_qsort(right, cmp);
    }
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..n]);
    v.clone_from_slice(&merged);
}

/// Sorts services and each service's real servers as ipvsadm does.
///
/// The merge sort moves positions, not services: a service is a large value, and copying
/// each one at every level of the merge cost more than reading the table.
pub fn sort_like_ipvsadm(services: &mut Vec<ServiceView>) {
    for s in services.iter_mut() {
        glibc_qsort(&mut s.destinations, &cmp_dests);
    }
    let mut order: Vec<usize> = (0..services.len()).collect();
    glibc_qsort(&mut order, &|a: &usize, b: &usize| {
        cmp_services(&services[*a], &services[*b])
    });
    let mut slots: Vec<Option<ServiceView>> = services.drain(..).map(Some).collect();
    services.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_diff_wraps_like_c() {
        assert_eq!(c_diff(1, 2), -1);
        assert_eq!(c_diff(0x0a00_0001, 0xc0a8_6401), 0x4957_9c00);
        assert!(
            c_diff(0x0a00_0001, 0xc0a8_6401) > 0,
            "10.0.0.1 compares above 192.168.100.1"
        );
    }

    #[test]
    fn merge_sort_is_stable_and_splits_like_glibc() {
        // A comparator on the first element only: equal keys keep their order.
        let mut v = vec![(2, 'a'), (1, 'b'), (2, 'c'), (1, 'd'), (0, 'e')];
        glibc_qsort(&mut v, &|a: &(i32, char), b: &(i32, char)| a.0 - b.0);
        assert_eq!(v, vec![(0, 'e'), (1, 'b'), (1, 'd'), (2, 'a'), (2, 'c')]);
    }

    #[test]
    fn wrapping_comparator_gives_glibc_order() {
        // Words 0, 0x60000000 and 0xc0000000 form a cycle under the C comparator
        // (a < b, b < c, c < a). The expected orders were produced by glibc 2.36's qsort
        // with `(int)(a - b)` on the same inputs.
        let cmp = |a: &u32, b: &u32| c_diff(*a, *b);
        let cases: &[(&[u32], &[u32])] = &[
            (
                &[0, 0x6000_0000, 0xc000_0000],
                &[0, 0x6000_0000, 0xc000_0000],
            ),
            (
                &[0xc000_0000, 0x6000_0000, 0],
                &[0xc000_0000, 0, 0x6000_0000],
            ),
            (
                &[0x0a00_0001, 0xc0a8_6401, 0x7f00_0001],
                &[0x0a00_0001, 0x7f00_0001, 0xc0a8_6401],
            ),
            (
                &[
                    0xc0a8_6401,
                    0x0a00_0001,
                    0x7f00_0001,
                    0x0102_0304,
                    0xfe00_0001,
                    0x8000_0000,
                ],
                &[
                    0xc0a8_6401,
                    0x0102_0304,
                    0x0a00_0001,
                    0x7f00_0001,
                    0x8000_0000,
                    0xfe00_0001,
                ],
            ),
        ];
        for (input, want) in cases {
            let mut v = input.to_vec();
            glibc_qsort(&mut v, &cmp);
            assert_eq!(v, *want, "order of {input:x?}");
        }
    }
}
