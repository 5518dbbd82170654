//! Desired state and reconcile: a whole desired table is checked ([`desired`]), compared with
//! the kernel's to give the ordered changes that make one into the other ([`plan`], pure), and
//! those are made, or undone on a refusal ([`apply`], over any [`IpvsOps`](crate::ipvs::IpvsOps)).
//! [`readback`] catches the attributes an older kernel accepts but silently ignores.
//! [`commands`] runs ipvsadm's table lines against a model of the table, giving the desired
//! table they leave (pure).

pub mod apply;
pub mod commands;
pub mod desired;
pub mod links;
pub mod node;
pub mod plan;
pub mod readback;

pub use apply::{ApplyError, Undo, apply};
pub use commands::{Command, CommandError, Numbered, Refusal, Start};
pub use desired::{DesiredService, DesiredTable, TableError};
pub use links::{LinkChange, LinkPlan, LinkState, plan_links};
pub use node::{AttachmentSpec, DriftMode, Managed, NodeSpec, SpecError};
pub use node::{CheckDecl, CheckTarget};
pub use plan::{Change, ChangeKind, plan, plan_with};
pub use readback::Ignored;
