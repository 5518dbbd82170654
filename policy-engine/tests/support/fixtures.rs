//! Hand-written adversarial policies. Each is a core module in WAT that speaks the canonical
//! ABI of `evaluate` directly, wrapped into a component for the real WIT world by
//! wit-component (what `wasm-tools component new` does), so the fixtures follow the contract.
//!
//! `evaluate(input) -> result<decision, string>` lowers to `(func (param i32) (result i32))`:
//! the host writes the input through `cabi_realloc` and passes its address; the guest returns
//! the address of its result, laid out as:
//!
//! ```text
//! +0  u8  0 = ok, 1 = err          (err: +4 string ptr, +8 len)
//! +4  weights ptr   +8  weights len    (each 12 bytes: server ptr, server len, weight u32)
//! +12 u8 scheduler is-some  +16 ptr  +20 len
//! +24 u8 state is-some      +28 ptr  +32 len
//! +36 reason ptr            +40 len
//! ```

use std::path::Path;

use ipvs_policy::PolicyInput;
use ipvs_types::{
    Destination, DestinationEntry, Protocol, Scheduler, Service, ServiceEntry, ServiceKey, Stats,
};

/// Where a fixture's result area starts.
const RET: u32 = 1024;
/// Where its strings and lists go.
const HEAP: u32 = 2048;

/// What a fixture returns, written as static data.
#[derive(Debug, Clone, Default)]
pub struct Out {
    pub err: Option<Vec<u8>>,
    pub weights: Vec<(Vec<u8>, u32)>,
    pub scheduler: Option<Vec<u8>>,
    /// (pointer, length) of the state list as written, for out-of-range lengths.
    pub state: Option<(u32, u32)>,
    pub reason: Vec<u8>,
    /// Overrides the weights list length (a list past the end of memory).
    pub weights_len: Option<u32>,
}

impl Out {
    pub fn ok(reason: &str) -> Self {
        Out {
            reason: reason.as_bytes().to_vec(),
            ..Out::default()
        }
    }

    pub fn weight(mut self, server: &str, w: u32) -> Self {
        self.weights.push((server.as_bytes().to_vec(), w));
        self
    }

    /// Lays the result out in memory from `RET`; returns the data segments.
    fn data(&self) -> Vec<(u32, Vec<u8>)> {
        let mut heap: Vec<u8> = Vec::new();
        let mut put = |bytes: &[u8]| -> u32 {
            let at = HEAP + heap.len() as u32;
            heap.extend_from_slice(bytes);
            while !heap.len().is_multiple_of(4) {
                heap.push(0);
            }
            at
        };
        let mut ret = vec![0u8; 44];
        let w32 = |ret: &mut Vec<u8>, off: usize, v: u32| {
            ret[off..off + 4].copy_from_slice(&v.to_le_bytes());
        };
        if let Some(msg) = &self.err {
            ret[0] = 1;
            let p = put(msg);
            w32(&mut ret, 4, p);
            w32(&mut ret, 8, msg.len() as u32);
        } else {
            let strings: Vec<(u32, u32, u32)> = self
                .weights
                .iter()
                .map(|(s, w)| (put(s), s.len() as u32, *w))
                .collect();
            let mut list = Vec::new();
            for (p, l, w) in strings {
                list.extend_from_slice(&p.to_le_bytes());
                list.extend_from_slice(&l.to_le_bytes());
                list.extend_from_slice(&w.to_le_bytes());
            }
            let lp = put(&list);
            w32(&mut ret, 4, lp);
            w32(
                &mut ret,
                8,
                self.weights_len.unwrap_or(self.weights.len() as u32),
            );
            if let Some(s) = &self.scheduler {
                ret[12] = 1;
                let p = put(s);
                w32(&mut ret, 16, p);
                w32(&mut ret, 20, s.len() as u32);
            }
            if let Some((p, l)) = self.state {
                ret[24] = 1;
                w32(&mut ret, 28, p);
                w32(&mut ret, 32, l);
            }
            let rp = put(&self.reason);
            w32(&mut ret, 36, rp);
            w32(&mut ret, 40, self.reason.len() as u32);
        }
        vec![(RET, ret), (HEAP, heap)]
    }
}

fn escape(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// A core module whose `evaluate` runs `body` (WAT instructions, stack-neutral) and then
/// returns `out`. `extra` adds module-level items (functions, imports after the log import).
pub fn core_module(body: &str, out: &Out, extra: &str) -> String {
    let data: String = out
        .data()
        .iter()
        .map(|(at, bytes)| format!("(data (i32.const {at}) \"{}\")\n", escape(bytes)))
        .collect();
    format!(
        r#"(module
  (import "ipvs:policy/host@1.0.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 2)
  (global $heap (mut i32) (i32.const 65536))
  {extra}
  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $fits
      (br_if $fits (i32.le_u (global.get $heap) (i32.shl (memory.size) (i32.const 16))))
      (drop (memory.grow
        (i32.add (i32.const 1)
          (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
                     (i32.const 16))))))
    (local.get $ptr))
  (func (export "evaluate") (param $input i32) (result i32)
    {body}
    (i32.const {RET}))
  {data}
)"#
    )
}

/// Wraps a core module (WAT) into a component of the `ipvs:policy/policy@1.0.0` world: the
/// fixtures are 1.0.0 components, which the engine keeps running (they import
/// `ipvs:policy/host@1.0.0`). [`componentize_v1_1`] makes a 1.1.0 one.
pub fn componentize(core_wat: &str) -> Vec<u8> {
    componentize_in(core_wat, &wit_dir().join("v1.0.0"))
}

/// Wraps a core module (WAT) into a component of the `ipvs:policy/policy@1.1.0` world.
pub fn componentize_v1_1(core_wat: &str) -> Vec<u8> {
    componentize_in(core_wat, &wit_dir())
}

fn wit_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/wit")
}

fn componentize_in(core_wat: &str, wit: &Path) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_dir(wit).expect("the policy WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("policy"))
        .expect("world policy");
    let mut module = wat::parse_str(core_wat).expect("fixture WAT parses");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// A fixture component: `body` then return `out`.
pub fn policy(body: &str, out: &Out) -> Vec<u8> {
    componentize(&core_module(body, out, ""))
}

/// A well-behaved fixture: sets 10.0.0.2:80 to weight 7.
pub fn good() -> Vec<u8> {
    policy("", &Out::ok("fixture ok").weight("10.0.0.2:80", 7))
}

/// A TCP 10.0.0.1:80 wlc service with real servers 10.0.0.2:80 .. 10.0.0.(n+1):80, weight 1.
pub fn input(n: usize) -> PolicyInput {
    let servers = (0..n)
        .map(|i| {
            let addr = std::net::Ipv4Addr::from(
                u32::from(std::net::Ipv4Addr::new(10, 0, 0, 2)) + i as u32,
            );
            let mut dest = Destination::new(addr.into(), 80);
            dest.forward = ipvs_types::ForwardMethod::Masquerade;
            DestinationEntry {
                dest,
                active_conns: (i as u32 * 7) % 13,
                inactive_conns: (i as u32 * 3) % 5,
                persistent_conns: 0,
                stats: Stats::default(),
            }
        })
        .collect();
    PolicyInput {
        service: ServiceEntry {
            service: Service::new(
                ServiceKey::Endpoint {
                    protocol: Protocol::Tcp,
                    addr: "10.0.0.1".parse().expect("addr"),
                    port: 80,
                },
                Scheduler::Wlc,
            ),
            stats: Stats::default(),
        },
        servers,
        health: Default::default(),
        now: std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_000),
        sequence: 1,
        params: Vec::new(),
        state: Vec::new(),
        schedulers: Scheduler::KNOWN.to_vec(),
    }
}
