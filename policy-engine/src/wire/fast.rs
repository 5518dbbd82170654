//! Each version's `input` with each real server's fixed-size fields lowered in one copy.
//!
//! The derived lowering of `list<real-server>` writes each of a server's 22 scalar fields on
//! its own (28 with 1.1.0's health), and each write looks the guest's memory up again: for a
//! 100-server service that is about half of an evaluation. Here a server's `name` is lowered
//! as any string is (the guest's `cabi_realloc`, then a copy), and its other fields are
//! encoded on the host and copied in at once; with 1.1.0, a health check's `reason` is then
//! lowered as a string too, after the name, as the derived code does. The layout is the
//! canonical ABI's, from the same field ABIs, and the type check is the generated
//! `real-server`'s own, so a component of another shape is refused exactly as before.
//!
//! The two versions' `real-server` records are the same up to `stats`; 1.1.0 appends
//! `health: option<health>`, which leaves the offsets of the fields before it unchanged.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentVariant, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use crate::bindings::{to_v1_0, to_v1_1, v1_0, v1_1};
use crate::input::PolicyInput;

use v1_0::ipvs::policy::types as wit_v1_0;
use v1_1::ipvs::policy::types as wit_v1_1;

type Health = wit_v1_1::Health;

/// A generated `real-server` of some version, as this lowering reads it.
pub trait Record: ComponentType + Lower {
    fn name(&self) -> &String;
    /// The fields after `name` and before `health`.
    fn fixed(&self) -> Fixed;
    /// `health`, where the version has it.
    fn health(&self) -> Option<&Health>;
}

/// The fields of a `real-server` between `name` and `health`, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fixed {
    address: Address,
    port: u16,
    /// The `forward-method` case index.
    forward: u8,
    /// weight, upper-threshold, lower-threshold, active-conns, inactive-conns,
    /// persistent-conns.
    counts: [u32; 6],
    /// `stats` in field order.
    stats: [u64; 10],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Address {
    V4([u8; 4]),
    V6([u16; 8]),
}

/// `Record` for one version's generated `real-server`: the types differ in name only.
macro_rules! record {
    ($wit:ident, |$s:ident| $health:expr) => {
        impl Record for $wit::RealServer {
            fn name(&self) -> &String {
                &self.name
            }

            fn fixed(&self) -> Fixed {
                use $wit as wit;
                let s = self;
                let address = match s.address {
                    wit::IpAddress::Ipv4((a, b, c, d)) => Address::V4([a, b, c, d]),
                    wit::IpAddress::Ipv6((a, b, c, d, e, f, g, h)) => {
                        Address::V6([a, b, c, d, e, f, g, h])
                    }
                };
                // Case indices in the order of `forward-method` (the type check holds that
                // order).
                let forward = match s.forward {
                    wit::ForwardMethod::Masquerade => 0,
                    wit::ForwardMethod::Local => 1,
                    wit::ForwardMethod::Tunnel => 2,
                    wit::ForwardMethod::DirectRoute => 3,
                };
                let st = &s.stats;
                Fixed {
                    address,
                    port: s.port,
                    forward,
                    counts: [
                        s.weight,
                        s.upper_threshold,
                        s.lower_threshold,
                        s.active_conns,
                        s.inactive_conns,
                        s.persistent_conns,
                    ],
                    stats: [
                        st.conns,
                        st.inpkts,
                        st.outpkts,
                        st.inbytes,
                        st.outbytes,
                        st.cps,
                        st.inpps,
                        st.outpps,
                        st.inbps,
                        st.outbps,
                    ],
                }
            }

            fn health(&self) -> Option<&Health> {
                let $s = self;
                $health
            }
        }
    };
}

record!(wit_v1_0, |_s| None);
record!(wit_v1_1, |s| s.health.as_ref());

/// A generated `real-server`, lowered in one copy per server in a list.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct Server<R>(pub R);

/// The contract's 1.0.0 `input` record with [`Server`]s.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(record)]
pub struct InputV1_0 {
    pub service: wit_v1_0::Service,
    pub servers: Vec<Server<wit_v1_0::RealServer>>,
    #[component(name = "now-ms")]
    pub now_ms: u64,
    pub sequence: u64,
    pub params: Vec<(String, String)>,
    pub state: Vec<u8>,
}

/// The contract's 1.1.0 `input` record with [`Server`]s.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(record)]
pub struct InputV1_1 {
    pub service: wit_v1_1::Service,
    pub servers: Vec<Server<wit_v1_1::RealServer>>,
    #[component(name = "now-ms")]
    pub now_ms: u64,
    pub sequence: u64,
    pub params: Vec<(String, String)>,
    pub state: Vec<u8>,
}

/// The contract's 1.0.0 `input` for `input`.
pub fn input_v1_0(input: &PolicyInput) -> InputV1_0 {
    let i = to_v1_0::input(input);
    InputV1_0 {
        service: i.service,
        servers: i.servers.into_iter().map(Server).collect(),
        now_ms: i.now_ms,
        sequence: i.sequence,
        params: i.params,
        state: i.state,
    }
}

/// The contract's 1.1.0 `input` for `input`.
pub fn input_v1_1(input: &PolicyInput) -> InputV1_1 {
    let i = to_v1_1::input(input);
    InputV1_1 {
        service: i.service,
        servers: i.servers.into_iter().map(Server).collect(),
        now_ms: i.now_ms,
        sequence: i.sequence,
        params: i.params,
        state: i.state,
    }
}

impl super::Input for InputV1_0 {
    fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.0.name().as_str()).collect()
    }
}

impl super::Input for InputV1_1 {
    fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.0.name().as_str()).collect()
    }
}

// SAFETY: every item is the generated record's own: the same flat representation, canonical
// ABI and type check, so wasmtime sees exactly the type it generated.
#[allow(unsafe_code)]
unsafe impl<R: Record> ComponentType for Server<R> {
    type Lower = <R as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <R as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <R as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: a single server and flat lowering are the generated record's; a list writes the
// same bytes at the same offsets (see `encode`), within the list's area that wasmtime
// allocated and bounds-checks on every access.
#[allow(unsafe_code)]
unsafe impl<R: Record> Lower for Server<R> {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.0.linear_lower_to_memory(cx, ty, offset)
    }

    fn linear_store_list_to_memory<T>(
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
        items: &[Self],
    ) -> wasmtime::Result<()> {
        let InterfaceType::Record(record) = ty else {
            wasmtime::bail!("real-server is not a record");
        };
        let Some(name_ty) = cx.types[record].fields.first().map(|f| f.ty) else {
            wasmtime::bail!("real-server has no fields");
        };
        let size = <R as ComponentType>::SIZE32;
        let layout = Layout::get();
        let mut buf = [0u8; MAX_SIZE];
        let Some(buf) = buf.get_mut(..size) else {
            wasmtime::bail!("real-server is larger than {MAX_SIZE} bytes");
        };
        for (i, item) in items.iter().enumerate() {
            let at = offset + i * size;
            // The name first, as the derived code does: the guest allocates in the same order.
            item.0.name().linear_lower_to_memory(cx, name_ty, at)?;
            let health = item.0.health();
            let bytes = encode(&item.0.fixed(), health, &layout, buf);
            let Some(dst) = cx.as_slice_mut().get_mut(at + layout.rest..at + size) else {
                wasmtime::bail!("real-server {i} is outside the guest's memory");
            };
            dst.copy_from_slice(bytes);
            // Then the health check's reason, the record's only other string.
            if let Some(h) = health {
                let reason =
                    at + layout.health + layout.health_payload + layout.health_fields.reason;
                h.reason
                    .linear_lower_to_memory(cx, InterfaceType::String, reason)?;
            }
        }
        Ok(())
    }
}

/// Size of a 1.1.0 `real-server` in guest memory, the larger of the two.
const MAX_SIZE: usize = <wit_v1_1::RealServer as ComponentType>::SIZE32;

/// Where each field of a `real-server` lies, from the fields' canonical ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Layout {
    /// Where the fields after `name` start.
    rest: usize,
    address: usize,
    /// Of the address's case payload, from the address.
    address_payload: usize,
    port: usize,
    forward: usize,
    /// weight, upper-threshold, lower-threshold, active-conns, inactive-conns,
    /// persistent-conns.
    counts: [usize; 6],
    stats: usize,
    /// 1.1.0's `option<health>`, right after `stats` (where a 1.0.0 record ends).
    health: usize,
    /// Of the option's payload, from `health`.
    health_payload: usize,
    health_fields: HealthLayout,
}

/// Where each field of a `health` record lies, from the record's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HealthLayout {
    state: usize,
    last_passed: usize,
    consecutive: usize,
    latency: usize,
    /// Of the `option<u64>`'s payload, from `latency`.
    latency_payload: usize,
    since: usize,
    reason: usize,
}

impl Layout {
    fn get() -> Self {
        let mut at = 0;
        let mut next = |abi: CanonicalAbiInfo| abi.next_field32_size(&mut at);
        let _name = next(<String as ComponentType>::ABI);
        let address = next(<wit_v1_1::IpAddress as ComponentType>::ABI);
        let port = next(<u16 as ComponentType>::ABI);
        let forward = next(<wit_v1_1::ForwardMethod as ComponentType>::ABI);
        let counts = [(); 6].map(|()| next(<u32 as ComponentType>::ABI));
        let stats = next(<wit_v1_1::Stats as ComponentType>::ABI);
        let health = next(<Option<Health> as ComponentType>::ABI);
        let mut at = 0;
        let mut next = |abi: CanonicalAbiInfo| abi.next_field32_size(&mut at);
        let health_fields = HealthLayout {
            state: next(<wit_v1_1::HealthState as ComponentType>::ABI),
            last_passed: next(<bool as ComponentType>::ABI),
            consecutive: next(<u32 as ComponentType>::ABI),
            latency: next(<Option<u64> as ComponentType>::ABI),
            latency_payload: <Option<u64> as ComponentVariant>::PAYLOAD_OFFSET32,
            since: next(<u64 as ComponentType>::ABI),
            reason: next(<String as ComponentType>::ABI),
        };
        Layout {
            rest: address,
            address,
            address_payload: <wit_v1_1::IpAddress as ComponentVariant>::PAYLOAD_OFFSET32,
            port,
            forward,
            counts,
            stats,
            health,
            health_payload: <Option<Health> as ComponentVariant>::PAYLOAD_OFFSET32,
            health_fields,
        }
    }
}

/// Writes every field after `name` into `buf` (a whole record of its version) at its offset,
/// except the health's `reason`, which is lowered on its own; returns the part from
/// `layout.rest` to the end of the record. Padding stays zero.
fn encode<'b>(s: &Fixed, health: Option<&Health>, layout: &Layout, buf: &'b mut [u8]) -> &'b [u8] {
    buf.fill(0);
    let mut put = |at: usize, bytes: &[u8]| buf[at..at + bytes.len()].copy_from_slice(bytes);
    let payload = layout.address + layout.address_payload;
    match s.address {
        Address::V4(octets) => {
            put(layout.address, &[0]);
            put(payload, &octets);
        }
        Address::V6(segments) => {
            put(layout.address, &[1]);
            for (i, seg) in segments.into_iter().enumerate() {
                put(payload + 2 * i, &seg.to_le_bytes());
            }
        }
    }
    put(layout.port, &s.port.to_le_bytes());
    put(layout.forward, &[s.forward]);
    for (at, v) in layout.counts.into_iter().zip(s.counts) {
        put(at, &v.to_le_bytes());
    }
    for (i, v) in s.stats.into_iter().enumerate() {
        put(layout.stats + 8 * i, &v.to_le_bytes());
    }
    if let Some(h) = health {
        // `some`, then the record; its cases in the order of `health-state`.
        put(layout.health, &[1]);
        let f = &layout.health_fields;
        let at = layout.health + layout.health_payload;
        let state: u8 = match h.state {
            wit_v1_1::HealthState::Up => 0,
            wit_v1_1::HealthState::Down => 1,
        };
        put(at + f.state, &[state]);
        put(at + f.last_passed, &[u8::from(h.last_passed)]);
        put(at + f.consecutive, &h.consecutive.to_le_bytes());
        if let Some(us) = h.last_latency_us {
            put(at + f.latency, &[1]);
            put(at + f.latency + f.latency_payload, &us.to_le_bytes());
        }
        put(at + f.since, &h.since_ms.to_le_bytes());
    }
    &buf[layout.rest..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_canonical_abis() {
        // name 0..8, address (u8 case, payload at +2, 18 bytes) 8..26, port 26..28,
        // forward 28, six u32 from 32, stats (ten u64) from 56; 136 bytes in 1.0.0. Then
        // option<health> (case, payload at +8): state 0, last-passed 1, consecutive 4,
        // last-latency-us 8 (case, payload at +8), since-ms 24, reason 32..40; 184 in all.
        assert_eq!(
            Layout::get(),
            Layout {
                rest: 8,
                address: 8,
                address_payload: 2,
                port: 26,
                forward: 28,
                counts: [32, 36, 40, 44, 48, 52],
                stats: 56,
                health: 136,
                health_payload: 8,
                health_fields: HealthLayout {
                    state: 0,
                    last_passed: 1,
                    consecutive: 4,
                    latency: 8,
                    latency_payload: 8,
                    since: 24,
                    reason: 32,
                },
            }
        );
        assert_eq!(<wit_v1_0::RealServer as ComponentType>::SIZE32, 136);
        assert_eq!(MAX_SIZE, 184);
    }
}
