//! Exit statuses, the same as ipvsadm's where ipvsadm has one.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | success (also when stdout's reader went away) |
//! | 1 | a listing failed, e.g. `-L -t` of a missing service (ipvsadm: 1); `Cannot find device` |
//! | 2 | invalid command line: ipvsadm's own checks (ipvsadm: 2), `link`/`addr` usage; the agent's node has no IPVS (ipvsadm: 2); a link or address change the agent refused (`RTNETLINK answers: ...`, as `ip`); a node file that cannot be read or breaks a rule (`apply`, `diff`) |
//! | 3 | the agent could not be reached (ipvsadm has no agent) |
//! | 4 | the agent does not implement the operation (an agent older than this client) |
//! | 5 | fleet `apply` rollout: a node still differed after apply, or the rollout stopped |
//! | 255 | the agent refused an IPVS change (ipvsadm: 255, i.e. -1), or `-R` input the kernel would refuse; an unknown option or missing argument, or no command first (ipvsadm: 255); the agent refused a declared state, a stale `--revision` or a drain (`apply`, `state rollback`, `drain`: INVALID_ARGUMENT, FAILED_PRECONDITION, ABORTED) |
//!
//! Fleet mode (`--fleet`, `--agents`) exits 0 if the command succeeded on every node, else
//! with the highest exit status of a node; bad fleet flags or inventory exit 2.

/// A failed run: what to print on stderr and the status to exit with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

pub const LIST_FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;
pub const UNSUPPORTED: u8 = 4;
pub const NOT_CONVERGED: u8 = 5;
pub const REFUSED: u8 = 255;

/// The exit-status table as it appears in `--help`.
pub const HELP: &str = "Exit status:
  0    success
  1    a listing failed (e.g. -L of a missing service); ip: device not found
  2    invalid command line; the agent's node has no IPVS;
       ip: the agent refused a link/address change; an invalid node file
  3    the agent could not be reached
  4    the agent does not implement the operation (older agent)
  5    fleet apply: a node still differed from the file after apply
  255  the agent refused an IPVS change; unknown option, missing argument or no command;
       apply/rollback/drain: the agent refused the state or the --revision was stale
With fleet flags: 0 if every node succeeded, else the highest status of a node;
  2 for bad fleet flags or inventory.
";

impl Failure {
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}
