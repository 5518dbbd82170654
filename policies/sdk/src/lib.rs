//! Write an IPVS agent policy in Rust: implement [`Policy`] and call [`export_policy!`].
//!
//! ```no_run
//! use ipvs_policy_sdk::{Decision, Input, Policy, export_policy};
//!
//! struct Halve;
//!
//! impl Policy for Halve {
//!     fn evaluate(input: &Input) -> Result<Decision, String> {
//!         let mut d = Decision::new("halve every weight");
//!         for s in &input.servers {
//!             d = d.weight(&s.name, s.weight / 2);
//!         }
//!         Ok(d)
//!     }
//! }
//!
//! export_policy!(Halve);
//! # fn main() {}
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`: the result is a component for
//! the `ipvs:policy/policy@1.1.0` world (`policies/wit/policy.wit`), which gives each real
//! server its health check's verdict ([`RealServer::health`], [`RealServer::is_healthy`]).
//! The same crate builds for the host too, so a policy's logic is tested with plain
//! `cargo test`; [`testing`] has builders for inputs.

extern crate self as ipvs_policy_sdk;

pub mod params;
pub mod state;
pub mod testing;

/// Bindings generated from `policies/wit/policy.wit`.
#[allow(missing_debug_implementations, unsafe_code, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "policy",
        path: "../wit",
        additional_derives: [PartialEq],
        pub_export_macro: true,
        export_macro_name: "__export_policy_world",
        default_bindings_module: "ipvs_policy_sdk::bindings",
        runtime_path: "ipvs_policy_sdk::__wit_bindgen::rt",
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub use bindings::ipvs::policy::host::Level;
pub use bindings::ipvs::policy::types::{
    Decision, Endpoint, Family, ForwardMethod, Fwmark, Health, HealthState, Input, IpAddress,
    Protocol, RealServer, Service, ServiceKey, Stats, WeightChange,
};

/// The highest weight the kernel takes.
pub const MAX_WEIGHT: u32 = 65535;

/// A policy: one pure function from the service's current state to a decision.
///
/// Return `Err` when the policy cannot decide (say, a parameter is invalid): the agent counts
/// it as a failed evaluation and keeps the last good weights.
pub trait Policy {
    fn evaluate(input: &Input) -> Result<Decision, String>;
}

/// Exports a [`Policy`] as the component's `evaluate` function.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        #[doc(hidden)]
        #[derive(Debug)]
        pub struct __IpvsPolicyExport;

        impl $crate::bindings::Guest for __IpvsPolicyExport {
            fn evaluate(
                input: $crate::Input,
            ) -> ::core::result::Result<$crate::Decision, ::std::string::String> {
                <$policy as $crate::Policy>::evaluate(&input)
            }
        }

        $crate::bindings::__export_policy_world!(__IpvsPolicyExport);
    };
}

impl Decision {
    /// A decision that changes nothing yet, with its reason.
    pub fn new(reason: impl Into<String>) -> Self {
        Decision {
            weights: Vec::new(),
            scheduler: None,
            state: None,
            reason: reason.into(),
        }
    }

    /// Sets `server`'s weight (a `RealServer::name`).
    pub fn weight(mut self, server: &str, weight: u32) -> Self {
        self.weights.push(WeightChange {
            server: server.to_owned(),
            weight,
        });
        self
    }

    /// Switches the service to `scheduler` (a kernel name: "wlc", "lc", ...).
    pub fn scheduler(mut self, scheduler: &str) -> Self {
        self.scheduler = Some(scheduler.to_owned());
        self
    }

    /// Replaces the state the next evaluation receives.
    pub fn state(mut self, state: Vec<u8>) -> Self {
        self.state = Some(state);
        self
    }

    /// The weight this decision gives `server`, if it sets one (the last one wins).
    pub fn weight_of(&self, server: &str) -> Option<u32> {
        self.weights
            .iter()
            .rev()
            .find(|w| w.server == server)
            .map(|w| w.weight)
    }
}

impl RealServer {
    /// Active plus inactive connections.
    pub fn connections(&self) -> u64 {
        u64::from(self.active_conns) + u64::from(self.inactive_conns)
    }

    /// Its health check as of this evaluation; `None` when it has none.
    pub fn health(&self) -> Option<&Health> {
        self.health.as_ref()
    }

    /// False only when a health check says it is down: a server without a check counts as
    /// healthy.
    pub fn is_healthy(&self) -> bool {
        self.health.as_ref().is_none_or(Health::is_up)
    }
}

impl Health {
    /// The check's verdict is up.
    pub fn is_up(&self) -> bool {
        self.state == HealthState::Up
    }
}

impl Input {
    /// The parameter `key` as given at attach time (the last one if repeated).
    pub fn param(&self, key: &str) -> Option<&str> {
        params::get(&self.params, key)
    }

    /// The real server named `name`.
    pub fn server(&self, name: &str) -> Option<&RealServer> {
        self.servers.iter().find(|s| s.name == name)
    }
}

/// Adds a line to the evaluation's log. On the host (unit tests) it goes to stderr.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::ipvs::policy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("{level:?}: {message}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{input, server};

    #[test]
    fn decision_builder_and_lookup() {
        let d = Decision::new("why")
            .weight("10.0.0.2:80", 3)
            .weight("10.0.0.2:80", 4)
            .scheduler("lc")
            .state(vec![1]);
        assert_eq!(d.weight_of("10.0.0.2:80"), Some(4));
        assert_eq!(d.weight_of("10.0.0.3:80"), None);
        assert_eq!(d.scheduler.as_deref(), Some("lc"));
        assert_eq!(d.state, Some(vec![1]));
        assert_eq!(d.reason, "why");
    }

    #[test]
    fn health_lookups() {
        use crate::testing::health;
        let unchecked = server("10.0.0.2", 80).build();
        assert_eq!(unchecked.health(), None);
        assert!(unchecked.is_healthy());
        let up = server("10.0.0.3", 80).health(health(true)).build();
        assert!(up.is_healthy());
        let down = server("10.0.0.4", 80).down("http 503").build();
        assert!(!down.is_healthy());
        assert_eq!(down.health().map(|h| h.reason.as_str()), Some("http 503"));
    }

    #[test]
    fn input_lookups() {
        let mut i = input(vec![server("10.0.0.2", 80).active(3).inactive(4).build()]);
        i.params = vec![("k".into(), "1".into()), ("k".into(), "2".into())];
        assert_eq!(i.param("k"), Some("2"));
        assert_eq!(i.param("other"), None);
        assert_eq!(i.server("10.0.0.2:80").map(|s| s.connections()), Some(7));
        assert!(i.server("10.0.0.9:80").is_none());
    }
}
