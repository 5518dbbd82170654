//! Runs a declared-state command against the agent. Node files are read and checked before
//! connecting; what the command prints goes to `out` as it comes (a stream goes on until the
//! agent ends it or the reader goes away).

use std::io::{self, Read, Write};
use std::path::Path;
use std::time::Duration;

use ipvs_proto::v1 as pb;
use ipvs_proto::v1::state_service_client::StateServiceClient;
use serde_json::json;
use tokio_stream::StreamExt;

use super::StateCommand;
use super::StateSub;
use super::drain;
use super::view::{self, ApplyView, DiffView, RevisionView};
use crate::client::{self, AgentAddress};
use crate::exit::{self, Failure};
use crate::ipvsadm::resolve::Resolve;
use crate::output::{OutputFormat, is_broken_pipe, to_json};
use crate::spec::{self, Format};

/// Where to find the agent, how to print, how to read names in `drain`.
pub struct Settings<'a> {
    pub agent: &'a AgentAddress,
    pub output: OutputFormat,
    pub names: &'a dyn Resolve,
}

/// Where output goes, a piece at a time.
pub type Out<'a> = dyn FnMut(&str) -> io::Result<()> + 'a;

/// An apply of a large node takes the kernel a while.
const APPLY_TIMEOUT: Duration = Duration::from_secs(600);
/// Streams last until the agent ends them or the user interrupts.
const STREAM_TIMEOUT: Duration = Duration::from_secs(u32::MAX as u64);

/// Writes `text`; a reader that went away ends the run quietly, with status 0.
fn emit(out: &mut Out<'_>, text: &str) -> Result<(), Failure> {
    out(text).map_err(|e| {
        if is_broken_pipe(&e) {
            Failure::new(0, "")
        } else {
            Failure::new(
                exit::LIST_FAILED,
                format!("ipvsctl: cannot write output: {e}"),
            )
        }
    })
}

fn usage(message: impl std::fmt::Display) -> Failure {
    Failure::new(exit::USAGE, format!("ipvsctl: {message}"))
}

/// The agent's refusal of call `rpc` as an exit status: unreachable (3), an agent without the
/// state service (4), or the agent's reason (255: an invalid spec, a stale `--revision`, a
/// change the kernel refused and undid).
fn refusal<'a>(
    agent: &'a AgentAddress,
    rpc: &'static str,
) -> impl Fn(tonic::Status) -> Failure + 'a {
    move |s| {
        if client::is_transport_failure(&s) {
            Failure::new(
                exit::UNREACHABLE,
                format!(
                    "ipvsctl: cannot reach agent at {agent}: {}",
                    client::root_cause(&s)
                ),
            )
        } else if s.code() == tonic::Code::Unimplemented {
            Failure::new(
                exit::UNSUPPORTED,
                format!("ipvsctl: the agent does not implement StateService.{rpc}"),
            )
        } else if s.message().is_empty() {
            Failure::new(exit::REFUSED, format!("ipvsctl: {}", s.code()))
        } else {
            Failure::new(exit::REFUSED, format!("ipvsctl: {}", s.message()))
        }
    }
}

/// Reads and checks node file `file` (`-`: YAML on stdin).
pub fn read_spec(file: &str) -> Result<pb::NodeSpec, Failure> {
    let format = Format::for_path(file).map_err(usage)?;
    let (name, text) = if file == "-" {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| usage(format!("cannot read stdin: {e}")))?;
        ("stdin", text)
    } else {
        let text =
            std::fs::read_to_string(file).map_err(|e| usage(format!("cannot read {file}: {e}")))?;
        (file, text)
    };
    spec::parse(name, &text, format).map_err(usage)
}

/// `--format`, else `-f FILE`'s extension, else YAML.
fn export_format(file: Option<&str>, format: Option<Format>) -> Result<Format, Failure> {
    match (format, file) {
        (Some(f), _) => Ok(f),
        (None, Some(path)) if path != "-" => Format::for_path(path).map_err(usage),
        (None, _) => Ok(Format::Yaml),
    }
}

/// Replaces `path` with `text` all at once: a reader sees the old file or the new one.
pub fn write_atomically(path: &str, text: &str) -> io::Result<()> {
    let target = Path::new(path);
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
    let dir = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Runs `command`, printing to `out`.
pub async fn run(
    command: StateCommand,
    settings: &Settings<'_>,
    out: &mut Out<'_>,
) -> Result<(), Failure> {
    let json_out = settings.output == OutputFormat::Json;
    // Everything that can be checked here is, before connecting.
    let spec = match &command {
        StateCommand::Apply { file, .. } | StateCommand::Diff { file, .. } => {
            Some(read_spec(file)?)
        }
        _ => None,
    };
    let drain = match command.drain_args()? {
        Some(a) => Some(drain::request(&a, settings.names)?),
        None => None,
    };
    let format = match &command {
        StateCommand::Export { file, format } => export_format(file.as_deref(), *format)?,
        _ => Format::Yaml,
    };
    let timeout = match command {
        StateCommand::Drain { .. }
        | StateCommand::State {
            command: Some(StateSub::Events),
        } => STREAM_TIMEOUT,
        _ => APPLY_TIMEOUT,
    };
    let agent = settings.agent;
    let channel = client::connect_with_timeout(agent, timeout)
        .await
        .map_err(|e| Failure::new(exit::UNREACHABLE, format!("ipvsctl: {e}")))?;
    // A node of thousands of services is larger than tonic's default 4 MiB message limit.
    let mut api = StateServiceClient::new(channel).max_decoding_message_size(usize::MAX);
    match command {
        StateCommand::Apply {
            prune,
            dry_run,
            revision,
            ..
        } => {
            let r = api
                .apply_state(pb::ApplyStateRequest {
                    spec,
                    prune,
                    dry_run,
                    expected_revision: revision,
                })
                .await
                .map_err(refusal(agent, "ApplyState"))?
                .into_inner();
            let v = ApplyView::from(&r);
            emit(
                out,
                &if json_out {
                    to_json(&v)
                } else {
                    view::apply_text(&v)
                },
            )
        }
        StateCommand::Diff { prune, .. } => {
            let r = api
                .apply_state(pb::ApplyStateRequest {
                    spec,
                    prune,
                    dry_run: true,
                    expected_revision: None,
                })
                .await
                .map_err(refusal(agent, "ApplyState"))?
                .into_inner();
            let v = DiffView::from(&r);
            emit(
                out,
                &if json_out {
                    to_json(&v)
                } else {
                    view::diff_text(&v)
                },
            )
        }
        StateCommand::Export { file, .. } => {
            let node = api
                .export(pb::ExportRequest {})
                .await
                .map_err(refusal(agent, "Export"))?
                .into_inner()
                .spec
                .unwrap_or_default();
            let cannot =
                |e: spec::SpecError| Failure::new(exit::LIST_FAILED, format!("ipvsctl: {e}"));
            match file.as_deref() {
                None | Some("-") if json_out => {
                    let doc = spec::encode::node(&node).map_err(|e| {
                        cannot(spec::SpecError::Unexportable {
                            path: e.path,
                            reason: e.reason,
                        })
                    })?;
                    emit(out, &to_json(&doc))
                }
                None | Some("-") => emit(out, &spec::render(&node, format).map_err(cannot)?),
                Some(path) => {
                    let text = spec::render(&node, format).map_err(cannot)?;
                    write_atomically(path, &text).map_err(|e| {
                        Failure::new(
                            exit::LIST_FAILED,
                            format!("ipvsctl: cannot write {path}: {e}"),
                        )
                    })?;
                    if json_out {
                        emit(
                            out,
                            &to_json(&json!({"file": path, "format": format.name()})),
                        )
                    } else {
                        Ok(())
                    }
                }
            }
        }
        StateCommand::State { command: None } => {
            let s = api
                .get_state(pb::GetStateRequest {})
                .await
                .map_err(refusal(agent, "GetState"))?
                .into_inner();
            emit(
                out,
                &if json_out {
                    to_json(&view::state_json(&s))
                } else {
                    view::state_text(&s)
                },
            )
        }
        StateCommand::Health => {
            let s = api
                .get_state(pb::GetStateRequest {})
                .await
                .map_err(refusal(agent, "GetState"))?
                .into_inner();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            emit(
                out,
                &if json_out {
                    to_json(&view::health_json(&s))
                } else {
                    view::health_text(&s, now)
                },
            )
        }
        StateCommand::State {
            command: Some(StateSub::Revisions),
        } => {
            let list = api
                .list_revisions(pb::ListRevisionsRequest {})
                .await
                .map_err(refusal(agent, "ListRevisions"))?
                .into_inner();
            let views: Vec<RevisionView> = list.revisions.iter().map(RevisionView::from).collect();
            emit(
                out,
                &if json_out {
                    to_json(&views)
                } else {
                    view::revisions_text(&views)
                },
            )
        }
        StateCommand::State {
            command:
                Some(StateSub::Rollback {
                    target,
                    dry_run,
                    revision,
                }),
        } => {
            let r = api
                .rollback(pb::RollbackRequest {
                    revision: target.unwrap_or(0),
                    dry_run,
                    expected_revision: revision,
                })
                .await
                .map_err(refusal(agent, "Rollback"))?
                .into_inner();
            let v = ApplyView::from(&r);
            emit(
                out,
                &if json_out {
                    to_json(&v)
                } else {
                    view::apply_text(&v)
                },
            )
        }
        StateCommand::State {
            command: Some(StateSub::Events),
        } => {
            let fail = refusal(agent, "WatchStateEvents");
            let mut stream = api
                .watch_state_events(pb::WatchStateEventsRequest {})
                .await
                .map_err(&fail)?
                .into_inner();
            while let Some(event) = stream.next().await {
                let e = event.map_err(&fail)?;
                let line = if json_out {
                    view::event_json(&e)
                } else {
                    view::event_text(&e)
                };
                emit(out, &line)?;
            }
            Ok(())
        }
        StateCommand::Drain { .. } => {
            let Some((request, addr, port)) = drain else {
                return Err(usage("drain needs a service and a real server"));
            };
            let server = view::server_text(addr, port);
            let fail = refusal(agent, "Drain");
            let mut stream = api.drain(request).await.map_err(&fail)?.into_inner();
            let mut done = false;
            while let Some(step) = stream.next().await {
                let p = step.map_err(&fail)?;
                done |= p.phase() == pb::DrainPhase::Done;
                let line = if json_out {
                    view::drain_json(&server, &p)
                } else {
                    view::drain_text(&server, &p)
                };
                emit(out, &line)?;
            }
            // A stream cut short is no drain: the server may still be there.
            if done {
                Ok(())
            } else {
                Err(Failure::new(
                    exit::REFUSED,
                    format!("ipvsctl: the drain of {server} ended before it was done"),
                ))
            }
        }
    }
}
