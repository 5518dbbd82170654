//! Schedulers on demand. Each scheduler is the kernel module `ip_vs_<name>`; a kernel that
//! refuses one as missing may only not have loaded it yet, so a write naming it loads the
//! module once with modprobe and is tried again.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use super::IpvsOps;
use super::error::IpvsError;

/// Where modprobe is looked for, in order.
pub const MODPROBE: [&str; 4] = [
    "/sbin/modprobe",
    "/usr/sbin/modprobe",
    "/bin/modprobe",
    "/usr/bin/modprobe",
];

/// How long a modprobe may take before the write fails anyway.
pub const MODPROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a module could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("no modprobe on this node (looked in {})", MODPROBE.join(", "))]
    NoModprobe,
    #[error("{0:?} is not a module name")]
    BadName(String),
    #[error("cannot run {path}: {reason}")]
    Spawn { path: String, reason: String },
    #[error("`modprobe {module}` failed ({status}): {stderr}")]
    Failed {
        module: String,
        status: String,
        stderr: String,
    },
    #[error("`modprobe {module}` did not finish within {seconds} s")]
    Timeout { module: String, seconds: u64 },
}

/// The module of scheduler `name`.
pub fn scheduler_module(name: &str) -> String {
    format!("ip_vs_{name}")
}

/// `modprobe <module>`, with the first modprobe of [`MODPROBE`] that exists.
pub async fn modprobe(module: &str) -> Result<(), ModuleError> {
    if module.is_empty()
        || !module
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ModuleError::BadName(module.to_owned()));
    }
    let path = MODPROBE
        .iter()
        .find(|p| Path::new(p).is_file())
        .ok_or(ModuleError::NoModprobe)?;
    let run = tokio::process::Command::new(path)
        .arg(module)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(MODPROBE_TIMEOUT, run)
        .await
        .map_err(|_| ModuleError::Timeout {
            module: module.to_owned(),
            seconds: MODPROBE_TIMEOUT.as_secs(),
        })?
        .map_err(|e| ModuleError::Spawn {
            path: (*path).to_owned(),
            reason: e.to_string(),
        })?;
    if out.status.success() {
        return Ok(());
    }
    Err(ModuleError::Failed {
        module: module.to_owned(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    })
}

/// Runs `write`; if the kernel lacks its scheduler, loads the scheduler's module once and runs
/// it again. When the module cannot be loaded the kernel's refusal stands.
pub async fn with_scheduler<I, F, Fut>(ipvs: &I, write: F) -> Result<(), IpvsError>
where
    I: IpvsOps,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), IpvsError>>,
{
    match write().await {
        Err(IpvsError::SchedulerNotFound(name)) => {
            if load(ipvs, &name).await {
                write().await
            } else {
                Err(IpvsError::SchedulerNotFound(name))
            }
        }
        other => other,
    }
}

/// Loads scheduler `name`'s module; whether it worked. A failure is logged, not returned: the
/// caller reports the kernel's own refusal, which names the scheduler.
pub async fn load<I: IpvsOps>(ipvs: &I, name: &str) -> bool {
    match ipvs.load_scheduler(name).await {
        Ok(()) => {
            tracing::info!(scheduler = name, "loaded the scheduler's module");
            true
        }
        Err(e) => {
            tracing::warn!(scheduler = name, error = %e, "cannot load the scheduler's module");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn module_names_are_checked_before_anything_runs() {
        for bad in ["", "ip_vs_rr; reboot", "../x", "a b"] {
            assert_eq!(
                modprobe(bad).await,
                Err(ModuleError::BadName(bad.to_owned()))
            );
        }
        assert_eq!(scheduler_module("twos"), "ip_vs_twos");
    }

    #[test]
    fn messages() {
        assert_eq!(
            ModuleError::NoModprobe.to_string(),
            "no modprobe on this node (looked in /sbin/modprobe, /usr/sbin/modprobe, \
             /bin/modprobe, /usr/bin/modprobe)"
        );
        assert_eq!(
            ModuleError::Failed {
                module: "ip_vs_twos".into(),
                status: "exit status: 1".into(),
                stderr: "modprobe: module ip_vs_twos not found in modules.dep".into(),
            }
            .to_string(),
            "`modprobe ip_vs_twos` failed (exit status: 1): modprobe: module ip_vs_twos not \
             found in modules.dep"
        );
    }
}
