//! `wire::Input` with each real server's fixed-size fields lowered in one copy.
//!
//! The derived lowering of `list<real-server>` writes each of a server's 22 scalar fields on
//! its own, and each write looks the guest's memory up again: for a 100-server service that
//! is about half of an evaluation. Here a server's `name` is lowered as any string is (the
//! guest's `cabi_realloc`, then a copy), and its other fields are encoded on the host and
//! copied in at once. The layout is the canonical ABI's, from the same field ABIs, and the
//! type check is the generated `real-server`'s own, so a component of another shape is
//! refused exactly as before.

use std::mem::MaybeUninit;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, ComponentVariant, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower};

use crate::bindings::{self, ipvs::policy::types as wit};
use crate::input::PolicyInput;

/// `wit::RealServer`, lowered in one copy per server in a list.
#[derive(Debug, Clone)]
#[repr(transparent)]
pub struct Server(pub wit::RealServer);

/// The contract's `input` record with [`Server`]s.
#[derive(Debug, Clone, ComponentType, Lower)]
#[component(record)]
pub struct Input {
    pub service: wit::Service,
    pub servers: Vec<Server>,
    #[component(name = "now-ms")]
    pub now_ms: u64,
    pub sequence: u64,
    pub params: Vec<(String, String)>,
    pub state: Vec<u8>,
}

/// The contract's `input` for `input`.
pub fn input(input: &PolicyInput) -> Input {
    Input::from(bindings::to_wit(input))
}

/// The real servers' names, in the order the policy is given them.
pub fn server_names(input: &Input) -> Vec<&str> {
    input.servers.iter().map(|s| s.0.name.as_str()).collect()
}

impl From<wit::Input> for Input {
    fn from(i: wit::Input) -> Self {
        Input {
            service: i.service,
            servers: i.servers.into_iter().map(Server).collect(),
            now_ms: i.now_ms,
            sequence: i.sequence,
            params: i.params,
            state: i.state,
        }
    }
}

// SAFETY: every item is `wit::RealServer`'s own: the same flat representation, canonical ABI
// and type check, so wasmtime sees exactly the type it generated.
#[allow(unsafe_code)]
unsafe impl ComponentType for Server {
    type Lower = <wit::RealServer as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <wit::RealServer as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <wit::RealServer as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: a single server and flat lowering are `wit::RealServer`'s; a list writes the same
// bytes at the same offsets (see `encode`), within the list's area that wasmtime allocated
// and bounds-checks on every access.
#[allow(unsafe_code)]
unsafe impl Lower for Server {
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
        let layout = Layout::get();
        let mut rest = [0u8; SIZE];
        for (i, item) in items.iter().enumerate() {
            let at = offset + i * SIZE;
            // The name first, as the derived code does: the guest allocates in the same order.
            item.0.name.linear_lower_to_memory(cx, name_ty, at)?;
            let bytes = encode(&item.0, &layout, &mut rest);
            let Some(dst) = cx.as_slice_mut().get_mut(at + layout.rest..at + SIZE) else {
                wasmtime::bail!("real-server {i} is outside the guest's memory");
            };
            dst.copy_from_slice(bytes);
        }
        Ok(())
    }
}

/// Size of a `real-server` in guest memory.
const SIZE: usize = <wit::RealServer as ComponentType>::SIZE32;

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
}

impl Layout {
    fn get() -> Self {
        let mut at = 0;
        let mut next = |abi: CanonicalAbiInfo| abi.next_field32_size(&mut at);
        let _name = next(<String as ComponentType>::ABI);
        let address = next(<wit::IpAddress as ComponentType>::ABI);
        let port = next(<u16 as ComponentType>::ABI);
        let forward = next(<wit::ForwardMethod as ComponentType>::ABI);
        let counts = [(); 6].map(|()| next(<u32 as ComponentType>::ABI));
        let stats = next(<wit::Stats as ComponentType>::ABI);
        Layout {
            rest: address,
            address,
            address_payload: <wit::IpAddress as ComponentVariant>::PAYLOAD_OFFSET32,
            port,
            forward,
            counts,
            stats,
        }
    }
}

/// Writes every field after `name` into `buf` at its offset; returns the part from
/// `layout.rest` to the end of the record. Padding stays zero.
fn encode<'b>(s: &wit::RealServer, layout: &Layout, buf: &'b mut [u8; SIZE]) -> &'b [u8] {
    buf.fill(0);
    let mut put = |at: usize, bytes: &[u8]| buf[at..at + bytes.len()].copy_from_slice(bytes);
    let payload = layout.address + layout.address_payload;
    match s.address {
        wit::IpAddress::Ipv4((a, b, c, d)) => {
            put(layout.address, &[0]);
            put(payload, &[a, b, c, d]);
        }
        wit::IpAddress::Ipv6(segments) => {
            put(layout.address, &[1]);
            let (a, b, c, d, e, f, g, h) = segments;
            for (i, seg) in [a, b, c, d, e, f, g, h].into_iter().enumerate() {
                put(payload + 2 * i, &seg.to_le_bytes());
            }
        }
    }
    put(layout.port, &s.port.to_le_bytes());
    // Case indices in the order of `forward-method` (the type check holds that order).
    let forward: u8 = match s.forward {
        wit::ForwardMethod::Masquerade => 0,
        wit::ForwardMethod::Local => 1,
        wit::ForwardMethod::Tunnel => 2,
        wit::ForwardMethod::DirectRoute => 3,
    };
    put(layout.forward, &[forward]);
    let counts = [
        s.weight,
        s.upper_threshold,
        s.lower_threshold,
        s.active_conns,
        s.inactive_conns,
        s.persistent_conns,
    ];
    for (at, v) in layout.counts.into_iter().zip(counts) {
        put(at, &v.to_le_bytes());
    }
    let st = &s.stats;
    let stats = [
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
    ];
    for (i, v) in stats.into_iter().enumerate() {
        put(layout.stats + 8 * i, &v.to_le_bytes());
    }
    &buf[layout.rest..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_the_canonical_abis() {
        // name 0..8, address (u8 case, payload at +2, 18 bytes) 8..26, port 26..28,
        // forward 28, six u32 from 32, stats (ten u64) from 56; 136 bytes in all.
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
            }
        );
        assert_eq!(SIZE, 136);
    }
}
