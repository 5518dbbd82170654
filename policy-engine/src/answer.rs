//! The guest's answer, lifted out of its memory with caps checked before anything is copied.
//!
//! The derived lifting of `result<decision, string>` copies every string and list the guest
//! points at, bounded only by wasmtime's hostcall fuel (128 MiB by default): a policy inside
//! its 32 MiB memory can answer with 500 000 weight entries that all name one 1 MiB string,
//! and the host copies until the fuel runs out. Here the same canonical ABI is read, but:
//!
//! - the weights list is copied only if it has at most one entry per real server;
//! - each string and byte list is copied only if it is within its cap (a server name within
//!   [`NAME_BYTES`], the reason and an error message within [`Limits::reason_bytes`], the state
//!   within [`Limits::state_bytes`], a scheduler name within [`SCHEDULER_BYTES`]); a longer
//!   one is measured, and at most [`HEAD_BYTES`] of it are kept to quote in the error.
//!
//! So lifting one answer copies at most `servers × (size of a WeightEntry + HEAD_BYTES) +
//! state_bytes + 2 × HEAD_BYTES` bytes or so, whatever the guest returns; wasmtime's hostcall
//! fuel, set per evaluation from [`Limits::hostcall_bytes()`], still bounds each call as a
//! whole (heads of strings over their caps are not counted against it).
//!
//! Lifting runs inside wasmtime's call, where only the `LiftContext` is at hand, so the caps
//! of the current evaluation are passed in a thread-local set around the call
//! ([`with_caps`]); the evaluation runs on one thread from instantiation to the answer.
//!
//! This uses `wasmtime::component::__internal` (`LiftContext` and the ABI types) in every
//! build: the `fast-lowering` feature, which lets the input fall back to wasmtime's derived
//! lowering, does not cover it, because the caps bound what a hostile answer costs the host
//! rather than speed anything up. The derived lifting (`String`, `Vec`) copies whatever the
//! guest points at before any cap can be checked, up to the call's hostcall fuel (128 MiB
//! per call at wasmtime's default; [`Limits::hostcall_bytes()`] here), and an answer past
//! the fuel fails as exhausted fuel rather than by the cap it broke; a `log` line past the
//! budget would fail the evaluation instead of being dropped. Wasmtime's public lazy types
//! do not avoid that: `WasmStr` and `WasmList` charge the fuel for their whole length when
//! lifted, and a `WasmStr` is measured only by `to_str`, which validates all of it.

use std::cell::Cell;

use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext, wasmtime_environ,
};
use wasmtime::component::{ComponentType, Lift};
use wasmtime::{ValRaw, bail};

use super::error::OutputError;
use super::limits::Limits;
use super::output::{RawDecision, clip};

/// No real server's name is longer: `[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535` is 47.
pub const NAME_BYTES: usize = 64;
/// Kernel scheduler names are at most 15 bytes (`IP_VS_SCHEDNAME_MAXLEN` is 16 with the NUL).
pub const SCHEDULER_BYTES: usize = 16;
/// How much of a string over its cap is kept, to quote in the error.
pub const HEAD_BYTES: usize = 256;

/// What one evaluation lets the host copy out of the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Weight entries: one per real server of the service.
    pub entries: usize,
    pub state_bytes: usize,
    pub reason_bytes: usize,
    /// A `log` line: lines longer than the whole log budget are dropped anyway.
    pub log_bytes: usize,
}

impl Caps {
    pub fn new(limits: &Limits, servers: usize) -> Self {
        Caps {
            entries: servers,
            state_bytes: limits.state_bytes,
            reason_bytes: limits.reason_bytes,
            log_bytes: limits.output_bytes,
        }
    }

    fn string(&self, field: Field) -> usize {
        match field {
            Field::Name => NAME_BYTES,
            Field::Scheduler => SCHEDULER_BYTES,
            Field::Reason | Field::Error => self.reason_bytes,
            Field::Log => self.log_bytes,
        }
    }
}

thread_local! {
    static CAPS: Cell<Option<Caps>> = const { Cell::new(None) };
}

/// Runs `f` with `caps` as the caps of anything lifted on this thread, then restores the
/// previous ones.
pub fn with_caps<R>(caps: Caps, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Caps>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAPS.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAPS.with(|c| c.replace(Some(caps))));
    f()
}

fn caps() -> wasmtime::Result<Caps> {
    match CAPS.with(Cell::get) {
        Some(c) => Ok(c),
        None => bail!("a policy's answer is lifted outside an evaluation"),
    }
}

/// Which string a [`Capped`] is, which picks its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Scheduler,
    Reason,
    Error,
    Log,
}

const NAME: u8 = 0;
const SCHEDULER: u8 = 1;
const REASON: u8 = 2;
const ERROR: u8 = 3;
const LOG: u8 = 4;

fn field(kind: u8) -> Field {
    match kind {
        NAME => Field::Name,
        SCHEDULER => Field::Scheduler,
        REASON => Field::Reason,
        ERROR => Field::Error,
        _ => Field::Log,
    }
}

/// A string from the guest: all of it when within its cap, else its length and head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capped<const FIELD: u8> {
    /// The whole string, or its first [`HEAD_BYTES`] (lossy) when `whole` is false.
    pub text: String,
    /// Its length in the guest's encoding (bytes for UTF-8).
    pub len: usize,
    pub whole: bool,
}

pub type Name = Capped<NAME>;
pub type SchedulerName = Capped<SCHEDULER>;
pub type Reason = Capped<REASON>;
pub type ErrorMessage = Capped<ERROR>;
pub type LogMessage = Capped<LOG>;

impl<const FIELD: u8> Capped<FIELD> {
    fn lift(
        cx: &mut LiftContext<'_>,
        ptr: usize,
        len: usize,
        whole: impl FnOnce(&mut LiftContext<'_>) -> wasmtime::Result<String>,
    ) -> wasmtime::Result<Self> {
        let cap = caps()?.string(field(FIELD));
        let utf8 = matches!(
            cx.options().string_encoding,
            wasmtime_environ::component::StringEncoding::Utf8
        );
        // Other encodings are copied by wasmtime, bounded by the hostcall fuel.
        if len <= cap || !utf8 {
            let text = whole(cx)?;
            return Ok(Capped {
                len: text.len(),
                text,
                whole: true,
            });
        }
        let Some(bytes) = ptr
            .checked_add(len)
            .and_then(|end| cx.memory().get(ptr..end))
        else {
            bail!("string pointer/length out of bounds of memory");
        };
        let head = &bytes[..HEAD_BYTES.min(len)];
        Ok(Capped {
            text: clip(&String::from_utf8_lossy(head), HEAD_BYTES),
            len,
            whole: false,
        })
    }
}

// SAFETY: the same flat and memory representation as `String` (a pointer and a length) and
// its type check; lifting reads within the bounds checked here or by `String`'s own lifting.
#[allow(unsafe_code)]
unsafe impl<const FIELD: u8> ComponentType for Capped<FIELD> {
    type Lower = <String as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <String as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <String as ComponentType>::typecheck(ty, types)
    }
}

#[allow(unsafe_code)]
unsafe impl<const FIELD: u8> Lift for Capped<FIELD> {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = flat_pair(src)?;
        Self::lift(cx, ptr, len, |cx| {
            String::linear_lift_from_flat(cx, ty, src)
        })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let (ptr, len) = memory_pair(bytes)?;
        Self::lift(cx, ptr, len, |cx| {
            String::linear_lift_from_memory(cx, ty, bytes)
        })
    }
}

/// The state: copied only when within [`Caps::state_bytes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Within(Vec<u8>),
    Over { len: usize },
}

impl State {
    fn lift(
        cx: &mut LiftContext<'_>,
        (ptr, len): (usize, usize),
        whole: impl FnOnce(&mut LiftContext<'_>) -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<Self> {
        in_memory(cx, ptr, len, 1)?;
        if len > caps()?.state_bytes {
            return Ok(State::Over { len });
        }
        whole(cx).map(State::Within)
    }
}

// SAFETY: `Vec<u8>`'s representation and type check; the list is read by `Vec<u8>`'s lifting.
#[allow(unsafe_code)]
unsafe impl ComponentType for State {
    type Lower = <Vec<u8> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<u8> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<u8> as ComponentType>::typecheck(ty, types)
    }
}

#[allow(unsafe_code)]
unsafe impl Lift for State {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let pair = flat_pair(src)?;
        Self::lift(cx, pair, |cx| Vec::<u8>::linear_lift_from_flat(cx, ty, src))
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let pair = memory_pair(bytes)?;
        Self::lift(cx, pair, |cx| {
            Vec::<u8>::linear_lift_from_memory(cx, ty, bytes)
        })
    }
}

/// The contract's `weight-change`, its server name capped.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift)]
#[component(record)]
pub struct WeightEntry {
    pub server: Name,
    pub weight: u32,
}

// The hostcall fuel gives each real server this much: a lifted entry and its name must fit.
const _: () =
    assert!(std::mem::size_of::<WeightEntry>() + NAME_BYTES <= Limits::HOSTCALL_BYTES_PER_SERVER);

/// The weights list: copied only when it has at most [`Caps::entries`] entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Weights {
    Within(Vec<WeightEntry>),
    TooMany { len: usize },
}

impl Weights {
    fn lift(
        cx: &mut LiftContext<'_>,
        (ptr, len): (usize, usize),
        whole: impl FnOnce(&mut LiftContext<'_>) -> wasmtime::Result<Vec<WeightEntry>>,
    ) -> wasmtime::Result<Self> {
        in_memory(cx, ptr, len, WeightEntry::SIZE32)?;
        if len > caps()?.entries {
            return Ok(Weights::TooMany { len });
        }
        whole(cx).map(Weights::Within)
    }
}

// SAFETY: `Vec<WeightEntry>`'s representation and type check (a list of `weight-change`
// records); the list is read by `Vec`'s lifting.
#[allow(unsafe_code)]
unsafe impl ComponentType for Weights {
    type Lower = <Vec<WeightEntry> as ComponentType>::Lower;

    const ABI: CanonicalAbiInfo = <Vec<WeightEntry> as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Vec<WeightEntry> as ComponentType>::typecheck(ty, types)
    }
}

#[allow(unsafe_code)]
unsafe impl Lift for Weights {
    fn linear_lift_from_flat(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        src: &Self::Lower,
    ) -> wasmtime::Result<Self> {
        let pair = flat_pair(src)?;
        Self::lift(cx, pair, |cx| {
            Vec::<WeightEntry>::linear_lift_from_flat(cx, ty, src)
        })
    }

    fn linear_lift_from_memory(
        cx: &mut LiftContext<'_>,
        ty: InterfaceType,
        bytes: &[u8],
    ) -> wasmtime::Result<Self> {
        let pair = memory_pair(bytes)?;
        Self::lift(cx, pair, |cx| {
            Vec::<WeightEntry>::linear_lift_from_memory(cx, ty, bytes)
        })
    }
}

/// The contract's `decision`, lifted with caps.
#[derive(Debug, Clone, PartialEq, Eq, ComponentType, Lift)]
#[component(record)]
pub struct Decision {
    pub weights: Weights,
    pub scheduler: Option<SchedulerName>,
    pub state: Option<State>,
    pub reason: Reason,
}

/// What `evaluate` returns.
pub type Answer = Result<Decision, ErrorMessage>;

impl Decision {
    /// The decision for validation, or the first cap it broke. `servers` is how many real
    /// servers the policy was given.
    pub fn into_raw(self, servers: usize, limits: &Limits) -> Result<RawDecision, OutputError> {
        let weights = match self.weights {
            Weights::Within(w) => w,
            Weights::TooMany { len } => {
                return Err(OutputError::TooManyWeights { len, servers });
            }
        };
        if !self.reason.whole {
            return Err(OutputError::ReasonTooLarge {
                len: self.reason.len,
                limit: limits.reason_bytes,
            });
        }
        let state = match self.state {
            None => None,
            Some(State::Within(s)) => Some(s),
            Some(State::Over { len }) => {
                return Err(OutputError::StateTooLarge {
                    len,
                    limit: limits.state_bytes,
                });
            }
        };
        // A name or scheduler over its cap matches nothing: validation names it, by its head.
        Ok(RawDecision {
            weights: weights
                .into_iter()
                .map(|w| (w.server.text, w.weight))
                .collect(),
            scheduler: self.scheduler.map(|s| s.text),
            state,
            reason: self.reason.text,
        })
    }
}

/// A list of `len` items of `size` bytes at `ptr` must lie in the guest's memory, as
/// wasmtime's own lifting requires, whether or not it is copied.
fn in_memory(cx: &LiftContext<'_>, ptr: usize, len: usize, size: usize) -> wasmtime::Result<()> {
    match len.checked_mul(size).and_then(|n| ptr.checked_add(n)) {
        Some(end) if end <= cx.memory().len() => Ok(()),
        _ => bail!("list pointer/length out of bounds of memory"),
    }
}

fn flat_pair(src: &[ValRaw; 2]) -> wasmtime::Result<(usize, usize)> {
    Ok((
        usize::try_from(src[0].get_u32())?,
        usize::try_from(src[1].get_u32())?,
    ))
}

fn memory_pair(bytes: &[u8]) -> wasmtime::Result<(usize, usize)> {
    let word = |at: usize| -> wasmtime::Result<usize> {
        match bytes
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
        {
            Some(b) => Ok(usize::try_from(u32::from_le_bytes(b))?),
            None => bail!("a pointer pair outside the guest's memory"),
        }
    };
    Ok((word(0)?, word(4)?))
}
