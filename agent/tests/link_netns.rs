//! `LinkHandle` against the real kernel, inside a fresh network namespace so the host's links
//! are never touched. Needs root (CAP_SYS_ADMIN for unshare, CAP_NET_ADMIN inside).

use std::{future::Future, net::IpAddr, thread};

use anyhow::{Context, Result};
use ipvs_agent::link::{Cidr, InterfaceAddress, LinkError, LinkHandle, LinkName};
use nix::sched::{CloneFlags, unshare};

/// Runs `test` on a dedicated thread moved into a new network namespace, on a current-thread
/// runtime, so the netlink socket `LinkHandle::new` opens lives in that namespace.
fn in_fresh_netns<F, Fut>(test: F) -> Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Result<()>>,
{
    let worker = thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("unshare(CLONE_NEWNET) (run as root)")?;
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(test())
    });
    worker
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

fn name(s: &str) -> LinkName {
    LinkName::new(s).expect("valid test name")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address parses")
}

fn cidr(s: &str, prefix_len: u8) -> Cidr {
    Cidr::new(ip(s), prefix_len).expect("valid test prefix")
}

/// The addresses of `lo` as (address/prefix, scope), sorted.
async fn lo_addresses(handle: &LinkHandle) -> Result<Vec<(String, String)>> {
    let mut found: Vec<_> = handle
        .list_addresses(Some(&name("lo")))
        .await?
        .into_iter()
        .map(|a: InterfaceAddress| {
            assert_eq!((a.link.as_str(), a.link_index), ("lo", 1), "{a:?}");
            (format!("{}/{}", a.address, a.prefix_len), a.scope)
        })
        .collect();
    found.sort();
    Ok(found)
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|&(a, s)| (a.to_string(), s.to_string()))
        .collect()
}

#[test]
fn loopback_state_and_addresses() -> Result<()> {
    in_fresh_netns(|| async {
        let handle = LinkHandle::new()?;
        let lo = name("lo");

        let links = handle.list().await?;
        assert_eq!(links.len(), 1, "a fresh netns holds only lo: {links:?}");
        let link = &links[0];
        assert_eq!(
            (link.index, link.name.as_str(), link.kind.as_deref()),
            (1, "lo", None)
        );
        assert_eq!(
            (link.up, link.mtu, link.mac.as_slice()),
            (false, 65536, &[0u8; 6][..])
        );
        assert_eq!(handle.get(&lo).await?, *link);
        assert_eq!(lo_addresses(&handle).await?, pairs(&[]));

        let up = handle.set_up(&lo, true).await?;
        assert!(up.up && up.lower_up, "{up:?}");
        assert_eq!(up.flags & 0x1, 0x1, "IFF_UP in raw flags");
        assert_eq!(up.oper_state, "UNKNOWN");
        // Bringing lo up makes the kernel assign its loopback addresses.
        assert_eq!(
            lo_addresses(&handle).await?,
            pairs(&[("127.0.0.1/8", "host"), ("::1/128", "host")])
        );

        handle.add_address(&lo, ip("192.0.2.1"), 24).await?;
        handle.add_address(&lo, ip("2001:db8::1"), 64).await?;
        handle.add_address(&lo, ip("127.0.0.2"), 8).await?;
        assert_eq!(
            lo_addresses(&handle).await?,
            pairs(&[
                ("127.0.0.1/8", "host"),
                ("127.0.0.2/8", "host"),
                ("192.0.2.1/24", "global"),
                ("2001:db8::1/64", "global"),
                ("::1/128", "host"),
            ])
        );
        let all = handle.list_addresses(None).await?;
        assert!(
            all.iter()
                .any(|a| a.address == ip("192.0.2.1") && a.link == "lo" && a.prefix_len == 24),
            "{all:?}"
        );

        assert_eq!(
            handle.add_address(&lo, ip("192.0.2.1"), 24).await,
            Err(LinkError::AddressExists {
                link: "lo".into(),
                cidr: cidr("192.0.2.1", 24)
            })
        );
        assert_eq!(
            handle.add_address(&lo, ip("192.0.2.1"), 33).await,
            Err(LinkError::InvalidPrefix {
                address: ip("192.0.2.1"),
                prefix_len: 33,
                max: 32
            })
        );

        handle.delete_address(&lo, ip("192.0.2.1"), 24).await?;
        handle.delete_address(&lo, ip("2001:db8::1"), 64).await?;
        handle.delete_address(&lo, ip("127.0.0.2"), 8).await?;
        assert_eq!(
            lo_addresses(&handle).await?,
            pairs(&[("127.0.0.1/8", "host"), ("::1/128", "host")])
        );
        for (address, prefix_len) in [("192.0.2.1", 24), ("2001:db8::1", 64)] {
            let err = handle.delete_address(&lo, ip(address), prefix_len).await;
            assert_eq!(
                err,
                Err(LinkError::AddressNotFound {
                    link: "lo".into(),
                    cidr: cidr(address, prefix_len)
                })
            );
        }

        let down = handle.set_up(&lo, false).await?;
        assert!(!down.up && !down.lower_up, "{down:?}");
        assert_eq!(down.oper_state, "DOWN");
        Ok(())
    })
}

#[test]
fn kernel_refusals_become_precise_errors() -> Result<()> {
    in_fresh_netns(|| async {
        let handle = LinkHandle::new()?;
        let missing = name("nosuchlink0");
        let not_found = Some(LinkError::LinkNotFound("nosuchlink0".into()));

        assert_eq!(handle.delete(&missing).await.err(), not_found);
        assert_eq!(handle.get(&missing).await.err(), not_found);
        assert_eq!(handle.set_up(&missing, true).await.err(), not_found);
        assert_eq!(
            handle
                .add_address(&missing, ip("192.0.2.1"), 24)
                .await
                .err(),
            not_found
        );
        assert_eq!(
            handle
                .delete_address(&missing, ip("192.0.2.1"), 24)
                .await
                .err(),
            not_found
        );
        assert_eq!(handle.list_addresses(Some(&missing)).await.err(), not_found);
        assert_eq!(
            handle.delete(&missing).await.map_err(|e| e.to_string()),
            Err(r#"link "nosuchlink0" not found"#.to_string())
        );

        // The loopback device has no rtnl_link_ops, so the kernel refuses to delete it.
        assert_eq!(
            handle.delete(&name("lo")).await,
            Err(LinkError::NotSupported {
                op: "delete link",
                target: "lo".into()
            })
        );
        Ok(())
    })
}

#[test]
fn dummy_links_or_a_clear_refusal() -> Result<()> {
    in_fresh_netns(|| async {
        let handle = LinkHandle::new()?;
        let dummy = name("dummy1");
        match handle.create_dummy(&dummy).await {
            // Kernels without the dummy driver answer EOPNOTSUPP ("Unknown device type").
            Err(err) => {
                assert_eq!(
                    err,
                    LinkError::NotSupported {
                        op: "create dummy link",
                        target: "dummy1".into()
                    }
                );
                assert_eq!(
                    err.to_string(),
                    r#"cannot create dummy link "dummy1": not supported by this kernel"#
                );
                assert_eq!(handle.list().await?.len(), 1, "nothing was created");
            }
            Ok(link) => {
                assert_eq!(
                    (link.name.as_str(), link.kind.as_deref(), link.up),
                    ("dummy1", Some("dummy"), false)
                );
                assert_eq!(
                    handle.create_dummy(&dummy).await,
                    Err(LinkError::LinkExists("dummy1".into()))
                );
                let up = handle.set_up(&dummy, true).await?;
                assert!(up.up, "{up:?}");
                handle.delete(&dummy).await?;
                assert_eq!(
                    handle.get(&dummy).await,
                    Err(LinkError::LinkNotFound("dummy1".into()))
                );
            }
        }
        Ok(())
    })
}
