//! The restore input's reading and simulation: pure, no agent.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::ipvsadm::command::{DaemonState, Forward};
use crate::ipvsadm::resolve::test_names;

/// Reads `input` as `--replace` does (the model starts empty).
fn read_input(input: &str) -> Result<Restore, LineError> {
    read("ipvsctl", input, &test_names(), Mode::Replace).map_err(|r| r.error)
}

/// Reads `input` as `-R` does (on top of the current table).
fn read_on_top(input: &str) -> Result<Restore, Refused> {
    read("ipvsctl", input, &test_names(), Mode::OnTop)
}

/// The desired table of a `--replace` read; `None` when it leaves the table alone.
fn replaced(r: &Restore) -> Option<Vec<pb::Service>> {
    match &r.table {
        Table::Replace(services) => Some(services.clone()),
        Table::Untouched => None,
        Table::OnTop(_) => panic!("a --replace read gave lines to run on top"),
    }
}

/// The table as `-S -n` lines would name it: `service -> [dest:port weight]`.
fn summary(table: &[pb::Service]) -> Vec<String> {
    table
        .iter()
        .map(|s| {
            let key = match s.key.as_ref() {
                Some(k) if k.fwmark != 0 => format!("fwm {}", k.fwmark),
                Some(k) => {
                    let a = crate::ipvsadm::view::ip_from_pb(&k.address)
                        .ok()
                        .flatten()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    format!("{}:{}", a, k.port)
                }
                None => "?".into(),
            };
            let dests: Vec<String> = s
                .destinations
                .iter()
                .map(|d| {
                    let a = crate::ipvsadm::view::ip_from_pb(&d.address)
                        .ok()
                        .flatten()
                        .map(|a| a.to_string())
                        .unwrap_or_default();
                    format!("{a}:{} w{}", d.port, d.weight.unwrap_or(1))
                })
                .collect();
            format!(
                "{key} {} -> [{}]",
                crate::ipvsadm::view::scheduler_name(
                    pb::Scheduler::try_from(s.scheduler).unwrap_or_default()
                ),
                dests.join(", ")
            )
        })
        .collect()
}

#[test]
fn lines_split_like_config_stream_read() {
    let input = "-A -t 10.0.0.1:80 -s rr\n\
                 \n\
                 \t  -a\t-t 10.0.0.1:80  -r 10.0.1.1\r\n\
                 # a comment line\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.2 # trailing comment\n\
                 ipvsadm -D -t 10.0.0.9:80\n\
                 ipvsadm\n\
                 --set 1 2 3";
    let got: Vec<(usize, String)> = lines(input)
        .into_iter()
        .map(|l| (l.number, l.words.join("|")))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "-A|-t|10.0.0.1:80|-s|rr".to_string()),
            (3, "-a|-t|10.0.0.1:80|-r|10.0.1.1".to_string()),
            (5, "-a|-t|10.0.0.1:80|-r|10.0.1.2".to_string()),
            (6, "-D|-t|10.0.0.9:80".to_string()),
            (8, "--set|1|2|3".to_string()),
        ]
    );
}

#[test]
fn save_output_reads_back_as_its_table() {
    let input = "-A -t 10.0.0.1:80 -s rr\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.2:8080 -m -w 3\n\
                 -A -u 10.0.0.2:53 -s sh -o -b sh-fallback,sh-port\n\
                 -A -f 7 -s wlc -p 300\n\
                 -a -f 7 -r 10.0.1.9:0 -g -w 0\n";
    let r = read_input(input).expect("valid input");
    assert_eq!(
        summary(&replaced(&r).unwrap_or_default()),
        vec![
            "10.0.0.1:80 rr -> [10.0.1.1:80 w1, 10.0.1.2:8080 w3]",
            "10.0.0.2:53 sh -> []",
            "fwm 7 wlc -> [10.0.1.9:0 w0]",
        ]
    );
    let table = replaced(&r).unwrap_or_default();
    let udp = table[1].options.clone().unwrap_or_default();
    assert!(udp.one_packet && udp.sched_flag_1 && udp.sched_flag_2);
    assert_eq!(
        table[2]
            .options
            .as_ref()
            .map(|o| crate::durations::secs(o.persistence_timeout.as_ref())),
        Some(300)
    );
    assert!(r.deferred.is_empty());
}

#[test]
fn every_table_command_has_its_meaning() {
    let input = "-A -t 10.0.0.1:80 -s rr\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.1\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.2\n\
                 -A -t 10.0.0.3:80\n\
                 -C\n\
                 -A -t 10.0.0.1:80 -s rr\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.1\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.2\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.3 -w 5\n\
                 -E -t 10.0.0.1:80 -s wrr\n\
                 -e -t 10.0.0.1:80 -r 10.0.1.1 -w 9\n\
                 -d -t 10.0.0.1:80 -r 10.0.1.2\n\
                 -A -t 10.0.0.4:80\n\
                 -A -t 10.0.0.5:80\n\
                 -D -t 10.0.0.4:80\n\
                 -A -t 10.0.0.4:80 -s lc\n";
    let r = read_input(input).expect("valid input");
    assert_eq!(
        summary(&replaced(&r).unwrap_or_default()),
        vec![
            "10.0.0.1:80 wrr -> [10.0.1.1:80 w9, 10.0.1.3:80 w5]",
            "10.0.0.5:80 wlc -> []",
            "10.0.0.4:80 lc -> []",
        ]
    );
}

#[test]
fn settings_and_zero_run_after_the_table() {
    let input = "--set 900 120 300\n\
                 -A -t 10.0.0.1:80\n\
                 -Z -t 10.0.0.1:80\n\
                 --start-daemon master --mcast-interface eth1\n\
                 -Z\n\
                 --stop-daemon backup\n";
    let r = read_input(input).expect("valid input");
    let got: Vec<(usize, &str)> = r
        .deferred
        .iter()
        .map(|d| (d.line, d.text.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            (1, "--set 900 120 300"),
            (3, "-Z -t 10.0.0.1:80"),
            (4, "--start-daemon master --mcast-interface eth1"),
            (5, "-Z"),
            (6, "--stop-daemon backup"),
        ]
    );
    assert_eq!(
        r.deferred[5 - 1].command,
        Command::StopDaemon(DaemonState::Backup)
    );
    assert_eq!(replaced(&r).map(|t| t.len()), Some(1));
}

#[test]
fn input_without_table_lines_leaves_the_table_alone() {
    assert_eq!(
        read_input("").expect("empty input"),
        Restore {
            table: Table::Untouched,
            deferred: Vec::new()
        }
    );
    let r = read_input("--set 0 0 30\n").expect("valid input");
    assert_eq!(r.table, Table::Untouched);
    assert_eq!(r.deferred.len(), 1);
    // An explicit -C asks for an empty table.
    assert_eq!(
        read_input("-C\n").expect("valid").table,
        Table::Replace(Vec::new())
    );
}

#[test]
fn bad_lines_are_refused_with_their_number_and_ipvsadm_words() {
    let base = "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1\n";
    let cases: &[(&str, usize, u8, &str)] = &[
        // ipvsadm's own checks: exit 2.
        (
            "-A -t 10.0.0.2:0",
            3,
            2,
            "Zero port specified for non-persistent service",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.2 -w 65536",
            3,
            2,
            "illegal weight specified",
        ),
        (
            "-A -t 10.0.0.2:80 -n",
            3,
            2,
            "Illegal 'numeric' option with the 'add-service' command",
        ),
        // popt: exit 255.
        (
            "-A -t 10.0.0.2:80 --bogus",
            3,
            255,
            "--bogus: unknown option",
        ),
        ("-A -t", 3, 255, "-t: missing argument"),
        (
            "10.0.0.2",
            3,
            255,
            "Try `ipvsctl -h' or 'ipvsctl --help' for more information.",
        ),
        // ipvsctl's options are not ipvsadm's grammar.
        (
            "-A -t 10.0.0.2:80 --agent unix:/x",
            3,
            255,
            "--agent: unknown option",
        ),
        ("-R --replace", 3, 255, "--replace: unknown option"),
        (
            "-A -u 10.0.0.2:53 -o json",
            3,
            2,
            "unexpected argument json",
        ),
        // What the kernel would refuse at that point: exit 255.
        ("-A -t 10.0.0.1:80", 3, 255, "Service already exists"),
        (
            "-A -t 10.0.0.2:80 -s nosuch",
            3,
            255,
            "Scheduler or persistence engine not found",
        ),
        ("-E -t 10.0.0.2:80 -s nosuch", 3, 255, "No such service"),
        (
            "-a -t 10.0.0.2:80 -r 10.0.1.1",
            3,
            255,
            "Service not defined",
        ),
        (
            "-a -t 10.0.0.1:80 -r 10.0.1.1",
            3,
            255,
            "Destination already exists",
        ),
        (
            "-e -t 10.0.0.1:80 -r 10.0.1.9",
            3,
            255,
            "No such destination",
        ),
        (
            "-d -t 10.0.0.1:80 -r 10.0.1.1:81",
            3,
            255,
            "No such destination",
        ),
        ("-D -t 10.0.0.2:80", 3, 255, "No such service"),
        ("-Z -t 10.0.0.2:80", 3, 255, "No such service"),
        // Not table contents.
        (
            "-L -n",
            3,
            2,
            "-L does not change the table; -R input holds changes only",
        ),
        (
            "-S",
            3,
            2,
            "-S does not change the table; -R input holds changes only",
        ),
        (
            "-R",
            3,
            255,
            "Try `ipvsctl -h' or 'ipvsctl --help' for more information.",
        ),
    ];
    for (line, number, code, message) in cases {
        let input = format!("{base}{line}\n-A -t 10.0.0.9:80\n");
        assert_eq!(
            read_input(&input),
            Err(LineError {
                line: *number,
                code: *code,
                message: message.to_string(),
            }),
            "{line}"
        );
    }
    // The message names the line.
    let e = read_input("\n\n-A -t 10.0.0.1:0\n").err();
    assert_eq!(
        e.map(|e| e.to_string()),
        Some("line 3: Zero port specified for non-persistent service".to_string())
    );
}

#[test]
fn the_first_bad_line_wins() {
    let input = "-a -t 10.0.0.1:80 -r 10.0.1.1\n-A -t 10.0.0.1:0\n";
    assert_eq!(
        read_input(input).err().map(|e| e.line),
        Some(1),
        "the simulation error of line 1 comes before the syntax error of line 2"
    );
}

#[test]
fn model_keys_real_servers_by_address_and_port() {
    let mut m = Model::default();
    let key = ServiceKey::Fwmark {
        mark: 1,
        ipv6: false,
    };
    let spec = crate::ipvsadm::command::ServiceSpec {
        key,
        scheduler: "rr".into(),
        persistent: None,
        netmask: None,
        one_packet: false,
        sched_flags: Default::default(),
        persistence_engine: None,
    };
    let dest = |port: u16| DestSpec {
        addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        port,
        forward: Forward::Masq,
        tunnel: None,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
    };
    assert_eq!(m.run(&Command::AddService(spec.clone())), Ok(()));
    assert_eq!(m.run(&Command::AddServer(key, dest(80))), Ok(()));
    assert_eq!(m.run(&Command::AddServer(key, dest(81))), Ok(()));
    assert_eq!(
        m.run(&Command::AddServer(key, dest(80))),
        Err("Destination already exists")
    );
    assert_eq!(
        m.run(&Command::DeleteServer(
            key,
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            80
        )),
        Ok(())
    );
    assert_eq!(m.services()[0].destinations.len(), 1);
    assert_eq!(m.services()[0].destinations[0].port, 81);
    assert_eq!(m.run(&Command::Flush), Ok(()));
    assert_eq!(m.services(), Vec::new());
    assert_eq!(
        m.run(&Command::AddServer(key, dest(80))),
        Err("Service not defined")
    );
}

#[test]
fn plan_text_lists_changes_then_deferred_lines() {
    let plan = PlanView {
        dry_run: true,
        applied: false,
        changes: vec![
            ChangeView::from(&pb::Change {
                kind: pb::ChangeKind::CreateService as i32,
                description: "-A -t 10.0.0.1:80 -s rr".into(),
                ..Default::default()
            }),
            ChangeView::from(&pb::Change {
                kind: pb::ChangeKind::DeleteDestination as i32,
                description: "-d -t 10.0.0.2:80 -r 10.0.1.1:80".into(),
                ..Default::default()
            }),
        ],
        then: vec!["--set 900 120 300".into()],
    };
    assert_eq!(
        plan.text(),
        "-A -t 10.0.0.1:80 -s rr\n-d -t 10.0.0.2:80 -r 10.0.1.1:80\n--set 900 120 300\n"
    );
    assert_eq!(plan.changes[0].kind, "create_service");
    assert_eq!(plan.changes[1].kind, "delete_destination");
}

/// What each on-top line becomes: its kind, its line number, and the words it was given.
fn kinds(commands: &[pb::TableCommand]) -> Vec<(u32, Op)> {
    commands.iter().map(|c| (c.line, op_of(c))).collect()
}

#[test]
fn on_top_every_table_line_goes_to_the_agent_in_order() {
    let input = "-A -t 10.0.0.1:80 -s rr\n\
                 --set 900 120 300\n\
                 -a -t 10.0.0.1:80 -r 10.0.1.1 -m -w 3\n\
                 -E -t 10.0.0.1:80 -s wrr\n\
                 -e -t 10.0.0.1:80 -r 10.0.1.1 -m -w 4\n\
                 -Z -t 10.0.0.1:80\n\
                 -d -t 10.0.0.1:80 -r 10.0.1.1\n\
                 -Z\n\
                 -D -t 10.0.0.1:80\n\
                 -C\n";
    let r = read_on_top(input).expect("valid input");
    let Table::OnTop(commands) = &r.table else {
        panic!("not on top: {:?}", r.table);
    };
    assert_eq!(
        kinds(commands),
        vec![
            (1, Op::CreateService),
            (3, Op::AddDestination),
            (4, Op::UpdateService),
            (5, Op::UpdateDestination),
            (6, Op::Zero),
            (7, Op::DeleteDestination),
            (9, Op::DeleteService),
            (10, Op::Flush),
        ]
    );
    // -a's real server as ipvsadm sends it; -d names only the address and port.
    use pb::table_command::Command as C;
    let Some(C::AddDestination(add)) = &commands[1].command else {
        panic!("{:?}", commands[1]);
    };
    let dest = add.destination.as_ref().expect("destination");
    assert_eq!((dest.port, dest.weight), (80, Some(3)));
    let Some(C::DeleteDestination(del)) = &commands[5].command else {
        panic!("{:?}", commands[5]);
    };
    let dest = del.destination.as_ref().expect("destination");
    assert_eq!((dest.port, dest.weight, dest.forwarding), (80, None, 0));
    // -Z of one service is checked at its point and zeroed after the table.
    let deferred: Vec<usize> = r.deferred.iter().map(|d| d.line).collect();
    assert_eq!(deferred, vec![2, 6, 8]);
}

#[test]
fn on_top_lines_that_conflict_in_the_input_are_left_to_the_agent() {
    // Whether `-A` of the same service twice fails depends on nothing but the input, yet
    // the agent says it, with the rest of the table's refusals, at the right line.
    let r = read_on_top("-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n").expect("read");
    assert!(matches!(&r.table, Table::OnTop(c) if c.len() == 2), "{r:?}");
    // Input without table lines leaves the table alone.
    let r = read_on_top("--set 1 2 3\n-Z\n").expect("read");
    assert_eq!(r.table, Table::Untouched);
    assert_eq!(read_on_top("").expect("read").table, Table::Untouched);
}

#[test]
fn on_top_a_bad_line_carries_the_lines_before_it() {
    let r = read_on_top("-A -t 10.0.0.1:80\n--set 1 2 3\n-a -t 10.0.0.1:80 -r 10.0.1.1\n-A -t 10.0.0.2:0\n-A -t 10.0.0.3:80\n")
        .expect_err("line 4 is bad");
    assert_eq!(
        r.error,
        LineError {
            line: 4,
            code: 2,
            message: "Zero port specified for non-persistent service".into(),
        }
    );
    assert_eq!(
        kinds(&r.earlier),
        vec![(1, Op::CreateService), (3, Op::AddDestination)]
    );
    assert_eq!(r.lookup, None);
    // A bad first line needs no agent.
    let r = read_on_top("-L\n").expect_err("listing");
    assert!(r.earlier.is_empty() && r.lookup.is_none());
}

#[test]
fn on_top_an_unknown_scheduler_asks_for_the_service_first() {
    for (line, op) in [
        ("-A -t 10.0.0.1:80 -s nosuch", Op::CreateService),
        ("-E -t 10.0.0.1:80 -s nosuch", Op::UpdateService),
    ] {
        let r = read_on_top(&format!("-C\n{line}\n")).expect_err(line);
        assert_eq!(
            (r.error.line, r.error.code, r.error.message.as_str()),
            (2, 255, "Scheduler or persistence engine not found"),
            "{line}"
        );
        assert_eq!(kinds(&r.earlier), vec![(1, Op::Flush)]);
        let lookup = r.lookup.expect("lookup");
        assert_eq!((lookup.line, op_of(&lookup)), (2, op), "{line}");
    }
}
