//! The attachments made through the API, kept in one file so a restart attaches them again
//! with the same ids. Attachments a node file declares are not kept here: their revision
//! brings them back.

use std::io;
use std::path::PathBuf;

use ipvs_proto::v1 as pb;
use prost::Message;

use super::{Spec, parse_id};
use crate::convert::policy::{attachment_spec, attachment_to_proto};

/// Why the saved attachments cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    #[error("cannot read the saved policy attachments in {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot save the policy attachments in {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "{path} does not hold saved policy attachments ({reason}); move it away to start without them"
    )]
    Corrupt { path: PathBuf, reason: String },
}

/// The file's one message: the attachments as `PolicyService` lists them. Private to the
/// agent (not in the published API), with the field number it always had.
#[derive(Clone, PartialEq, prost::Message)]
struct SavedList {
    #[prost(message, repeated, tag = "1")]
    attachments: Vec<pb::Attachment>,
}

/// The file holding the saved attachments ([`SavedList`]).
#[derive(Debug, Clone)]
pub struct SavedAttachments {
    path: PathBuf,
}

impl SavedAttachments {
    pub fn new(path: PathBuf) -> Self {
        SavedAttachments { path }
    }

    /// The saved attachments by id number; none before the first save.
    pub fn load(&self) -> Result<Vec<(u64, Spec)>, SaveError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(SaveError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |reason: String| SaveError::Corrupt {
            path: self.path.clone(),
            reason,
        };
        let saved = SavedList::decode(bytes.as_slice()).map_err(|e| corrupt(e.to_string()))?;
        saved
            .attachments
            .iter()
            .map(|a| {
                let n = parse_id(&a.id).ok_or_else(|| corrupt(format!("bad id {:?}", a.id)))?;
                let spec = attachment_spec(a).map_err(|e| corrupt(format!("{}: {e}", a.id)))?;
                Ok((n, spec))
            })
            .collect()
    }

    /// Replaces the file with `list`, atomically.
    pub fn save(&self, list: &[(u64, &Spec)]) -> Result<(), SaveError> {
        let saved = SavedList {
            attachments: list
                .iter()
                .map(|(n, spec)| attachment_to_proto(&format!("a{n}"), spec))
                .collect(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| SaveError::Write {
                path: self.path.clone(),
                source,
            })?;
        }
        crate::durable::write_atomic(&self.path, &saved.encode_to_vec()).map_err(|source| {
            SaveError::Write {
                path: self.path.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::attach::Mode;
    use crate::ipvs::types::{Protocol, ServiceKey};

    fn spec(policy: &str, mode: Mode) -> Spec {
        Spec {
            policy: policy.into(),
            services: vec![
                ServiceKey::Endpoint {
                    protocol: Protocol::Tcp,
                    addr: "10.0.0.1".parse().expect("addr"),
                    port: 80,
                },
                ServiceKey::FwMark {
                    family: crate::ipvs::types::Family::Inet6,
                    mark: 7,
                },
            ],
            params: vec![("b".into(), "2".into()), ("a".into(), "1".into())],
            interval: Duration::from_millis(1500),
            mode,
            quarantine_after: 5,
        }
    }

    #[test]
    fn saved_attachments_load_back_as_they_were() {
        let dir = tempfile::tempdir().expect("tempdir");
        let saved = SavedAttachments::new(dir.path().join("state/attachments.pb"));
        assert!(saved.load().expect("no file yet").is_empty());
        let (a, b) = (spec("aa", Mode::Enforce), spec("bb", Mode::DryRun));
        saved.save(&[(3, &a), (7, &b)]).expect("save");
        assert_eq!(saved.load().expect("load"), vec![(3, a), (7, b)]);
        saved.save(&[]).expect("save none");
        assert!(saved.load().expect("load").is_empty());
    }

    #[test]
    fn a_corrupt_file_is_refused_with_its_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("attachments.pb");
        let saved = SavedAttachments::new(path.clone());
        let bad_id = SavedList {
            attachments: vec![attachment_to_proto("x1", &spec("aa", Mode::Enforce))],
        };
        let cases: [(Vec<u8>, String); 2] = [
            (
                vec![0xff, 0xff],
                "failed to decode Protobuf message: invalid varint".into(),
            ),
            (bad_id.encode_to_vec(), "bad id \"x1\"".into()),
        ];
        for (bytes, reason) in cases {
            std::fs::write(&path, bytes).expect("write");
            let err = saved.load().expect_err("corrupt");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} does not hold saved policy attachments ({reason}); move it away to start without them",
                    path.display()
                )
            );
        }
    }
}
