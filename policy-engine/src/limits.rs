//! The named limits every policy runs under. Engine-wide ones are fixed when the
//! [`PolicyEngine`](super::PolicyEngine) is built; the rest apply to each evaluation.

use std::time::Duration;

use wasmtime::{StoreLimits, StoreLimitsBuilder};

/// Resource limits for policies. `Limits::default()` fits the Rust examples with a wide
/// margin (a 100-server evaluation uses 0.14 % of the fuel) and a componentize-py policy
/// (an 18 MB component of 38 core instances, CPython included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest component accepted for upload, in bytes.
    pub component_bytes: usize,
    /// Largest size any one linear memory may grow to, in bytes.
    pub memory_bytes: usize,
    /// WebAssembly fuel per evaluation (roughly one unit per instruction).
    pub fuel: u64,
    /// Wall-clock budget per evaluation, enforced through epoch interruption.
    pub deadline: Duration,
    /// How often the epoch advances (engine-wide); the deadline is rounded up to it.
    pub epoch_tick: Duration,
    /// Native stack available to WebAssembly (engine-wide).
    pub stack_bytes: usize,
    /// Bytes kept of each of stdout, stderr and the `log` import per evaluation.
    pub output_bytes: usize,
    /// Largest state blob a policy may return.
    pub state_bytes: usize,
    /// Longest reason (or error message) a policy may return, in bytes.
    pub reason_bytes: usize,
    /// Largest number of elements in any one table.
    pub table_elements: usize,
    /// Core instances, tables and memories one evaluation may create.
    pub instances: usize,
    pub tables: usize,
    pub memories: usize,
    /// Evaluations running at once (engine-wide); more wait for a slot.
    pub concurrency: usize,
    /// Bytes the host may copy out of a guest in one call (a `log` line, a WASI write, the
    /// answer), before [`Self::HOSTCALL_BYTES_PER_SERVER`] per real server is added: wasmtime's
    /// hostcall fuel. Past it the call traps.
    pub hostcall_bytes: usize,
}

impl Limits {
    pub const DEFAULT_COMPONENT_BYTES: usize = 32 << 20;
    pub const DEFAULT_MEMORY_BYTES: usize = 32 << 20;
    pub const DEFAULT_FUEL: u64 = 100_000_000;
    pub const DEFAULT_DEADLINE: Duration = Duration::from_millis(100);
    pub const DEFAULT_EPOCH_TICK: Duration = Duration::from_millis(5);
    pub const DEFAULT_STACK_BYTES: usize = 512 << 10;
    pub const DEFAULT_OUTPUT_BYTES: usize = 16 << 10;
    pub const DEFAULT_STATE_BYTES: usize = 64 << 10;
    pub const DEFAULT_REASON_BYTES: usize = 256;
    pub const DEFAULT_TABLE_ELEMENTS: usize = 20_000;
    pub const DEFAULT_INSTANCES: usize = 64;
    pub const DEFAULT_TABLES: usize = 8;
    pub const DEFAULT_MEMORIES: usize = 4;
    pub const DEFAULT_CONCURRENCY: usize = 4;
    pub const DEFAULT_HOSTCALL_BYTES: usize = 1 << 20;
    /// A lifted weight change on the host (a capped name and a weight, 40 bytes) and its
    /// name (at most 64 bytes), rounded up.
    pub const HOSTCALL_BYTES_PER_SERVER: usize = 128;

    /// The hostcall fuel of an evaluation of a service with `servers` real servers: enough
    /// for any valid answer (a weight change per server, the largest state and reason).
    pub fn hostcall_bytes(&self, servers: usize) -> usize {
        let answer = self.state_bytes + self.reason_bytes + 2 * super::answer::HEAD_BYTES;
        self.hostcall_bytes
            .max(answer)
            .saturating_add(servers.saturating_mul(Self::HOSTCALL_BYTES_PER_SERVER))
    }

    /// The store limits of one evaluation. Growing past a limit traps rather than returning
    /// -1, so a policy cannot carry on in a half-failed state.
    pub fn store_limits(&self) -> StoreLimits {
        StoreLimitsBuilder::new()
            .memory_size(self.memory_bytes)
            .table_elements(self.table_elements)
            .instances(self.instances)
            .tables(self.tables)
            .memories(self.memories)
            .trap_on_grow_failure(true)
            .build()
    }

    /// Epoch ticks that cover the deadline (at least one).
    pub fn deadline_ticks(&self) -> u64 {
        let tick = self.epoch_tick.as_nanos().max(1);
        let ticks = self.deadline.as_nanos().div_ceil(tick);
        u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            component_bytes: Self::DEFAULT_COMPONENT_BYTES,
            memory_bytes: Self::DEFAULT_MEMORY_BYTES,
            fuel: Self::DEFAULT_FUEL,
            deadline: Self::DEFAULT_DEADLINE,
            epoch_tick: Self::DEFAULT_EPOCH_TICK,
            stack_bytes: Self::DEFAULT_STACK_BYTES,
            output_bytes: Self::DEFAULT_OUTPUT_BYTES,
            state_bytes: Self::DEFAULT_STATE_BYTES,
            reason_bytes: Self::DEFAULT_REASON_BYTES,
            table_elements: Self::DEFAULT_TABLE_ELEMENTS,
            instances: Self::DEFAULT_INSTANCES,
            tables: Self::DEFAULT_TABLES,
            memories: Self::DEFAULT_MEMORIES,
            concurrency: Self::DEFAULT_CONCURRENCY,
            hostcall_bytes: Self::DEFAULT_HOSTCALL_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    const PAGE: usize = 64 << 10;

    #[test]
    fn store_limits_memory() {
        let limits = Limits {
            memory_bytes: 4 * PAGE,
            ..Limits::default()
        };
        let mut l = limits.store_limits();
        assert!(matches!(l.memory_growing(PAGE, 4 * PAGE, None), Ok(true)));
        let err = l.memory_growing(PAGE, 5 * PAGE, None).map(|_| ());
        assert!(err.is_err(), "growth past the limit traps: {err:?}");
    }

    #[test]
    fn store_limits_table_elements() {
        let limits = Limits {
            table_elements: 10,
            ..Limits::default()
        };
        let mut l = limits.store_limits();
        assert!(matches!(l.table_growing(0, 10, None), Ok(true)));
        assert!(l.table_growing(0, 11, None).is_err());
    }

    #[test]
    fn store_limits_counts() {
        let limits = Limits {
            instances: 3,
            tables: 2,
            memories: 1,
            ..Limits::default()
        };
        let l = limits.store_limits();
        assert_eq!((l.instances(), l.tables(), l.memories()), (3, 2, 1));
    }

    #[test]
    fn deadline_rounds_up_to_ticks() {
        let with = |deadline_ms, tick_ms| Limits {
            deadline: Duration::from_millis(deadline_ms),
            epoch_tick: Duration::from_millis(tick_ms),
            ..Limits::default()
        };
        assert_eq!(with(100, 5).deadline_ticks(), 20);
        assert_eq!(with(101, 5).deadline_ticks(), 21);
        assert_eq!(with(0, 5).deadline_ticks(), 1);
        assert_eq!(with(3, 0).deadline_ticks(), 3_000_000);
    }

    #[test]
    fn hostcall_fuel_covers_any_valid_answer() {
        let d = Limits::default();
        assert_eq!(d.hostcall_bytes, 1 << 20);
        assert_eq!(d.hostcall_bytes(0), 1 << 20);
        assert_eq!(d.hostcall_bytes(1000), (1 << 20) + 128_000);
        // A state limit past the base raises it: the largest state must still fit.
        let big_state = Limits {
            state_bytes: 4 << 20,
            ..Limits::default()
        };
        assert_eq!(big_state.hostcall_bytes(1), (4 << 20) + 256 + 512 + 128);
    }

    #[test]
    fn defaults_are_the_named_values() {
        let d = Limits::default();
        assert_eq!(d.memory_bytes, 32 << 20);
        assert_eq!(d.fuel, 100_000_000);
        assert_eq!(d.deadline, Duration::from_millis(100));
        assert_eq!(d.stack_bytes, 512 << 10);
        assert_eq!(d.output_bytes, 16 << 10);
        assert_eq!(d.state_bytes, 64 << 10);
        assert_eq!(d.reason_bytes, 256);
        assert_eq!(d.table_elements, 20_000);
        assert_eq!(d.component_bytes, 32 << 20);
        assert_eq!(d.instances, 64);
    }
}
