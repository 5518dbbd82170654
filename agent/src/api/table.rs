//! `ipvs.agent.v1.TableService` over the node core: parse the desired table or the commands,
//! check them whole against the kernel's table, plan and apply during one turn of the core
//! (or not, for a dry run).

use std::sync::Arc;

use ipvs_proto::v1 as pb;
use pb::table_service_server::{TableService, TableServiceServer};
use tonic::{Request, Response, Status};

use super::audit::logged;
use crate::convert::table::{ApplyInput, Form, apply_request, change_to_proto};
use crate::ipvs::IpvsOps;
use crate::kernel::Kernel;
use crate::state::{self, DesiredTable, Numbered, Start};

/// The whole-table service, generic over the core so tests can run it on a fake.
#[derive(Debug)]
pub struct TableApi<I> {
    kernel: Arc<Kernel<I>>,
}

impl<I: IpvsOps> TableApi<I> {
    pub fn new(kernel: Arc<Kernel<I>>) -> Self {
        TableApi { kernel }
    }

    pub fn into_server(self) -> TableServiceServer<Self> {
        TableServiceServer::new(self).max_decoding_message_size(super::MAX_TABLE_REQUEST_BYTES)
    }

    async fn run(&self, input: ApplyInput) -> Result<pb::ApplyResponse, Status> {
        // A desired table is checked whole before the kernel is read; commands can only be
        // checked against the table.
        let checked = match input.form {
            Form::Desired { services, prune } => {
                Checked::Table(DesiredTable::new(services)?, prune)
            }
            Form::Commands { commands, start } => Checked::Commands(commands, start),
        };
        // A plan is only good for the table it was made against: no other writer comes
        // between the read and the writes.
        let turn = self.kernel.turn().await;
        let current = turn.ipvs().table().await?;
        let (desired, prune, commands_run) = match checked {
            Checked::Table(desired, prune) => (desired, prune, 0),
            // Checked against the table read under the lock, so nothing written since a
            // client read the table can make a command do what the client did not mean.
            Checked::Commands(commands, start) => (
                state::commands::run(&current, start, &commands)?,
                true,
                commands.len(),
            ),
        };
        let changes = state::plan(&current, &desired, prune);
        if !input.dry_run {
            state::apply(turn.ipvs(), &changes).await?;
        }
        Ok(pb::ApplyResponse {
            changes: changes.iter().map(change_to_proto).collect(),
            applied: !input.dry_run,
            commands_run: u32::try_from(commands_run).unwrap_or(u32::MAX),
        })
    }
}

/// An apply's input once checked as far as it can be without the kernel's table.
enum Checked {
    Table(DesiredTable, bool),
    Commands(Vec<Numbered>, Start),
}

/// The log target of an apply: `3 services, prune, dry run` or `5 commands on top`.
fn target(input: &ApplyInput) -> String {
    let plural = |n: usize, what: &str| match n {
        1 => format!("1 {what}"),
        n => format!("{n} {what}s"),
    };
    let mut t = match &input.form {
        Form::Desired { services, prune } => {
            let mut t = plural(services.len(), "service");
            if *prune {
                t.push_str(", prune");
            }
            t
        }
        Form::Commands { commands, start } => {
            let mut t = plural(commands.len(), "command");
            t.push_str(match start {
                Start::Current => " on top",
                Start::Empty => " replacing the table",
            });
            t
        }
    };
    if input.dry_run {
        t.push_str(", dry run");
    }
    t
}

#[tonic::async_trait]
impl<I: IpvsOps> TableService for TableApi<I> {
    async fn apply(
        &self,
        request: Request<pb::ApplyRequest>,
    ) -> Result<Response<pb::ApplyResponse>, Status> {
        let parsed = apply_request(request.get_ref());
        logged("Apply", parsed, target, |input| self.run(input)).await
    }
}

#[cfg(test)]
mod tests {
    use pb::table_service_client::TableServiceClient;
    use tonic::Code;

    use super::*;
    use crate::api::tests::TestServer;
    use crate::ipvs::{IpvsOps, Stats};

    fn v4(o: [u8; 4]) -> String {
        std::net::Ipv4Addr::from(o).to_string()
    }

    fn service(last: u8, scheduler: pb::Scheduler, dests: Vec<pb::Destination>) -> pb::Service {
        pb::Service {
            key: Some(pb::ServiceKey {
                protocol: pb::Protocol::Tcp.into(),
                address: v4([10, 0, 0, last]),
                port: 80,
                family: pb::AddressFamily::Inet.into(),
                ..Default::default()
            }),
            scheduler: scheduler.into(),
            destinations: dests,
            ..Default::default()
        }
    }

    fn masq(last: u8, weight: Option<u32>) -> pb::Destination {
        pb::Destination {
            address: v4([10, 0, 1, last]),
            port: 8080,
            forwarding: pb::ForwardingMethod::Masquerade.into(),
            weight,
            ..Default::default()
        }
    }

    fn request(services: Vec<pb::Service>, prune: bool, dry_run: bool) -> pb::ApplyRequest {
        pb::ApplyRequest {
            services,
            prune,
            dry_run,
            ..Default::default()
        }
    }

    async fn apply(
        server: &TestServer,
        req: pb::ApplyRequest,
    ) -> Result<pb::ApplyResponse, Status> {
        TableServiceClient::new(server.channel.clone())
            .apply(req)
            .await
            .map(Response::into_inner)
    }

    fn words(r: &pb::ApplyResponse) -> Vec<&str> {
        r.changes.iter().map(|c| c.description.as_str()).collect()
    }

    fn seed_request() -> Vec<pb::Service> {
        vec![
            service(1, pb::Scheduler::Rr, vec![masq(1, None), masq(2, Some(3))]),
            service(2, pb::Scheduler::Wlc, vec![]),
        ]
    }

    #[tokio::test]
    async fn apply_then_nothing_left_to_do() {
        let server = TestServer::start().await;
        let dry = apply(&server, request(seed_request(), false, true))
            .await
            .expect("dry run");
        assert!(!dry.applied);
        assert_eq!(
            words(&dry),
            vec![
                "-A -t 10.0.0.1:80 -s rr",
                "-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 1",
                "-a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3",
                "-A -t 10.0.0.2:80 -s wlc",
            ]
        );
        assert_eq!(
            dry.changes[0].kind,
            i32::from(pb::ChangeKind::CreateService)
        );
        assert!(server.ipvs.writes().is_empty(), "a dry run writes nothing");

        let done = apply(&server, request(seed_request(), false, false))
            .await
            .expect("apply");
        assert!(done.applied);
        assert_eq!(done.changes, dry.changes);
        assert_eq!(server.ipvs.writes().len(), 4);

        let again = apply(&server, request(seed_request(), true, false))
            .await
            .expect("apply again");
        assert!(again.changes.is_empty() && again.applied);
        assert_eq!(
            server.ipvs.writes().len(),
            4,
            "nothing written the second time"
        );
    }

    #[tokio::test]
    async fn untouched_services_keep_their_counters_and_prune_removes_the_rest() {
        let server = TestServer::start().await;
        apply(&server, request(seed_request(), false, false))
            .await
            .expect("apply");
        let key2 = crate::ipvs::ServiceKey::Endpoint {
            protocol: crate::ipvs::Protocol::Tcp,
            addr: "10.0.0.2".parse().expect("ip"),
            port: 80,
        };
        let counted = Stats {
            conns: 7,
            ..Stats::default()
        };
        server.ipvs.set_stats(&key2, counted);
        let changed = vec![
            service(1, pb::Scheduler::Wrr, vec![masq(2, Some(5)), masq(3, None)]),
            service(2, pb::Scheduler::Wlc, vec![]),
        ];
        let r = apply(&server, request(changed.clone(), false, false))
            .await
            .expect("apply changes");
        assert_eq!(
            words(&r),
            vec![
                "-E -t 10.0.0.1:80 -s wrr",
                "-a -t 10.0.0.1:80 -r 10.0.1.3:8080 -m -w 1",
                "-e -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 5",
                "-d -t 10.0.0.1:80 -r 10.0.1.1:8080",
            ]
        );
        assert_eq!(
            server.ipvs.service(&key2).await.map(|s| s.stats),
            Ok(counted)
        );
        // Without prune an unlisted service stays; with it, it goes.
        let only_first = vec![changed[0].clone()];
        let kept = apply(&server, request(only_first.clone(), false, false))
            .await
            .expect("no prune");
        assert!(kept.changes.is_empty());
        let pruned = apply(&server, request(only_first, true, false))
            .await
            .expect("prune");
        assert_eq!(words(&pruned), vec!["-D -t 10.0.0.2:80"]);
        assert_eq!(
            pruned.changes[0].kind,
            i32::from(pb::ChangeKind::DeleteService)
        );
        assert_eq!(server.ipvs.services().await.map(|s| s.len()), Ok(1));
    }

    #[tokio::test]
    async fn invalid_input_changes_nothing() {
        let server = TestServer::start().await;
        let cases: Vec<(Vec<pb::Service>, &str)> = vec![
            (
                vec![service(1, pb::Scheduler::Rr, vec![masq(1, Some(70000))])],
                "invalid services[0].destinations[0].weight: 70000 is above the maximum 65535",
            ),
            (
                vec![
                    service(1, pb::Scheduler::Rr, vec![]),
                    service(1, pb::Scheduler::Wrr, vec![]),
                ],
                "service TCP 10.0.0.1:80 is listed more than once",
            ),
            (
                vec![service(
                    1,
                    pb::Scheduler::Rr,
                    vec![masq(1, None), masq(1, Some(2))],
                )],
                "real server 10.0.1.1:8080 of service TCP 10.0.0.1:80 is listed more than once",
            ),
            (
                vec![
                    service(1, pb::Scheduler::Rr, vec![]),
                    pb::Service {
                        options: Some(pb::ServiceOptions {
                            one_packet: true,
                            ..Default::default()
                        }),
                        ..service(2, pb::Scheduler::Rr, vec![])
                    },
                ],
                "service TCP 10.0.0.2:80: one-packet scheduling is only for UDP and fwmark \
                 services",
            ),
        ];
        for (services, message) in cases {
            let err = apply(&server, request(services, true, false))
                .await
                .expect_err(message);
            assert_eq!(
                (err.code(), err.message()),
                (Code::InvalidArgument, message)
            );
        }
        assert!(server.ipvs.writes().is_empty());
        assert_eq!(server.ipvs.reads(), 0, "refused before the kernel was read");
    }

    #[tokio::test]
    async fn a_kernel_refusal_is_undone_and_aborted() {
        let server = TestServer::start().await;
        apply(&server, request(seed_request(), false, false))
            .await
            .expect("apply");
        let before = server.ipvs.table().await.expect("table");
        let with_twos = vec![
            service(
                1,
                pb::Scheduler::Rr,
                vec![masq(1, Some(2)), masq(2, Some(3))],
            ),
            service(2, pb::Scheduler::Wlc, vec![masq(9, None)]),
            service(3, pb::Scheduler::Twos, vec![masq(1, None)]),
        ];
        let err = apply(&server, request(with_twos, false, false))
            .await
            .expect_err("twos is missing");
        assert_eq!(
            (err.code(), err.message()),
            (
                Code::Aborted,
                "change 3 of 4 failed: \"-A -t 10.0.0.3:80 -s twos\": Scheduler not found: \
                 twos; the 2 changes made were undone: the table is as it was"
            )
        );
        let d = ipvs_proto::details::detail(&err).expect("detail");
        assert_eq!(
            (d.reason.as_str(), d.errno, d.change, d.changes),
            ("SCHEDULER_NOT_FOUND", libc::ENOENT, 3, 4)
        );
        assert_eq!(server.ipvs.table().await.expect("table"), before);
        assert_eq!(server.ipvs.loads(), vec!["twos".to_owned()]);
    }

    #[tokio::test]
    async fn dropped_tunnel_settings_fail_the_precondition() {
        let server = TestServer::start().await;
        server.ipvs.behave_like_an_old_kernel();
        let gue = pb::Destination {
            address: v4([10, 0, 1, 7]),
            port: 80,
            forwarding: pb::ForwardingMethod::Tunnel.into(),
            tunnel: Some(pb::Tunnel {
                r#type: pb::TunnelType::Gue.into(),
                port: 6080,
                checksum: 0,
            }),
            ..Default::default()
        };
        let err = apply(
            &server,
            request(vec![service(1, pb::Scheduler::Rr, vec![gue])], false, false),
        )
        .await
        .expect_err("dropped");
        assert_eq!(
            (err.code(), err.message()),
            (
                Code::FailedPrecondition,
                "the kernel ignored the tunnel settings of real server 10.0.1.7:80 of service \
                 TCP 10.0.0.1:80 (GUE and GRE tunnels need Linux 5.2 or later); the 2 changes \
                 made were undone: the table is as it was"
            )
        );
        assert_eq!(server.ipvs.services().await.map(|s| s.len()), Ok(0));
    }

    fn key(last: u8) -> Option<pb::ServiceKey> {
        service(last, pb::Scheduler::Rr, vec![]).key
    }

    fn add_service(line: u32, last: u8, scheduler: pb::Scheduler) -> pb::TableCommand {
        pb::TableCommand {
            line,
            command: Some(pb::table_command::Command::AddService(service(
                last,
                scheduler,
                vec![],
            ))),
        }
    }

    fn add_dest(line: u32, last: u8, dest: pb::Destination) -> pb::TableCommand {
        pb::TableCommand {
            line,
            command: Some(pb::table_command::Command::AddDestination(
                pb::DestinationCommand {
                    service: key(last),
                    destination: Some(dest),
                },
            )),
        }
    }

    fn commands(list: Vec<pb::TableCommand>, mode: pb::ApplyMode, dry: bool) -> pb::ApplyRequest {
        pb::ApplyRequest {
            commands: list,
            mode: mode.into(),
            dry_run: dry,
            ..Default::default()
        }
    }

    /// `ipvsadm -R` input on top of the table: only what the lines change is written.
    #[tokio::test]
    async fn commands_run_on_top_of_the_table() {
        let server = TestServer::start().await;
        apply(&server, request(seed_request(), false, false))
            .await
            .expect("seed");
        let writes = server.ipvs.writes().len();
        let more = vec![
            add_service(1, 3, pb::Scheduler::Wrr),
            add_dest(2, 3, masq(4, None)),
        ];
        let dry = apply(&server, commands(more.clone(), pb::ApplyMode::OnTop, true))
            .await
            .expect("dry run");
        assert_eq!(
            (words(&dry), dry.applied, dry.commands_run),
            (
                vec![
                    "-A -t 10.0.0.3:80 -s wrr",
                    "-a -t 10.0.0.3:80 -r 10.0.1.4:8080 -m -w 1"
                ],
                false,
                2
            )
        );
        assert_eq!(server.ipvs.writes().len(), writes);
        let done = apply(&server, commands(more, pb::ApplyMode::OnTop, false))
            .await
            .expect("apply");
        assert_eq!((done.changes, done.applied), (dry.changes, true));
        assert_eq!(server.ipvs.services().await.map(|s| s.len()), Ok(3));

        // The same lines replacing the table: the seed's services go.
        let replaced = apply(
            &server,
            commands(
                vec![
                    add_service(1, 3, pb::Scheduler::Wrr),
                    add_dest(2, 3, masq(4, None)),
                ],
                pb::ApplyMode::Replace,
                true,
            ),
        )
        .await
        .expect("replace, dry run");
        assert_eq!(
            words(&replaced),
            vec!["-D -t 10.0.0.1:80", "-D -t 10.0.0.2:80"]
        );
    }

    /// A line the kernel would refuse at its point fails the whole call with a precise code,
    /// the failing command in the trailers, and nothing written.
    #[tokio::test]
    async fn a_conflicting_command_changes_nothing() {
        use pb::table_command::Command as C;
        let server = TestServer::start().await;
        apply(&server, request(seed_request(), false, false))
            .await
            .expect("seed");
        let writes = server.ipvs.writes().len();
        let before = server.ipvs.table().await.expect("table");
        let cmd = |line, c| pb::TableCommand {
            line,
            command: Some(c),
        };
        let dest_cmd = |last, dest| pb::DestinationCommand {
            service: key(last),
            destination: Some(dest),
        };
        let cases: Vec<(Vec<pb::TableCommand>, Code, &str, &str)> = vec![
            (
                vec![
                    add_service(4, 5, pb::Scheduler::Rr),
                    add_service(7, 1, pb::Scheduler::Wrr),
                ],
                Code::AlreadyExists,
                "17",
                "commands[1] (line 7): \"-A -t 10.0.0.1:80 -s wrr\": Service already exists",
            ),
            (
                vec![add_dest(2, 1, masq(1, Some(4)))],
                Code::AlreadyExists,
                "17",
                "commands[0] (line 2): \"-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -m -w 4\": \
                 Destination already exists",
            ),
            (
                vec![cmd(3, C::DeleteService(key(9).expect("key")))],
                Code::NotFound,
                "3",
                "commands[0] (line 3): \"-D -t 10.0.0.9:80\": No such service",
            ),
            (
                vec![cmd(3, C::EditDestination(dest_cmd(1, masq(9, None))))],
                Code::NotFound,
                "2",
                "commands[0] (line 3): \"-e -t 10.0.0.1:80 -r 10.0.1.9:8080 -m -w 1\": No \
                 such destination",
            ),
            (
                vec![cmd(1, C::AddDestination(dest_cmd(9, masq(1, None))))],
                Code::FailedPrecondition,
                "3",
                "commands[0] (line 1): \"-a -t 10.0.0.9:80 -r 10.0.1.1:8080 -m -w 1\": \
                 Service not defined",
            ),
        ];
        for (list, code, errno, message) in cases {
            let err = apply(&server, commands(list, pb::ApplyMode::OnTop, false))
                .await
                .expect_err(message);
            assert_eq!((err.code(), err.message()), (code, message));
            let d = ipvs_proto::details::detail(&err).expect("detail");
            assert_eq!(d.errno.to_string(), errno, "{message}");
            let at = format!("commands[{}] (line {}): ", d.command - 1, d.line);
            assert!(message.starts_with(&at), "{at} {message}");
        }
        // A broken rule has no errno: the reason comes alone.
        let mixed = pb::Destination {
            address: "::1".into(),
            ..masq(7, None)
        };
        let err = apply(
            &server,
            commands(vec![add_dest(5, 1, mixed)], pb::ApplyMode::OnTop, false),
        )
        .await
        .expect_err("mixed families");
        assert_eq!(err.code(), Code::InvalidArgument);
        let d = ipvs_proto::details::detail(&err).expect("detail");
        assert_eq!(
            (
                d.reason.as_str(),
                d.errno,
                d.cause.as_str(),
                d.command,
                d.line
            ),
            (
                "INVALID_ARGUMENT",
                0,
                "a real server of another address family is only allowed in tunnel mode",
                1,
                5
            )
        );
        assert_eq!(server.ipvs.writes().len(), writes, "nothing written");
        assert_eq!(server.ipvs.table().await.expect("table"), before);
    }

    /// The table is read under the apply lock: a write made after a client looked cannot be
    /// overwritten by lines that assumed otherwise.
    #[tokio::test]
    async fn commands_are_checked_against_the_live_table() {
        let server = TestServer::start().await;
        let list = || vec![add_service(1, 1, pb::Scheduler::Wrr)];
        // As a client saw it: empty, so `-A` would be fine.
        let dry = apply(&server, commands(list(), pb::ApplyMode::OnTop, true))
            .await
            .expect("fine on an empty table");
        assert_eq!(words(&dry), vec!["-A -t 10.0.0.1:80 -s wrr"]);
        // Another writer creates the service meanwhile.
        apply(&server, request(seed_request(), false, false))
            .await
            .expect("other writer");
        let err = apply(&server, commands(list(), pb::ApplyMode::OnTop, false))
            .await
            .expect_err("now it exists");
        assert_eq!(err.code(), Code::AlreadyExists);
        let services = server.ipvs.services().await.expect("services");
        assert!(
            services
                .iter()
                .all(|s| s.service.scheduler != crate::ipvs::Scheduler::Wrr),
            "the other writer's service was not edited: {services:?}"
        );
    }

    #[tokio::test]
    async fn a_table_larger_than_grpcs_default_limit_gets_through() {
        let server = TestServer::start().await;
        let mut big = service(1, pb::Scheduler::Rr, vec![]);
        // 5 MiB, over gRPC's default 4 MiB: the request must reach the table's own checks.
        big.options = Some(pb::ServiceOptions {
            persistence_timeout: Some(prost_types::Duration {
                seconds: 300,
                nanos: 0,
            }),
            persistence_engine: "x".repeat(5 << 20),
            ..Default::default()
        });
        let err = apply(&server, request(vec![big], false, true))
            .await
            .expect_err("a persistence engine name that long is refused");
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains("persistence engine"),
            "{}",
            err.message()
        );
    }
}
