//! Smoke test of the lab VM itself: the kernel has IPVS, the reference `ipvsadm` works, and
//! IPVS state is private to each network namespace (which every other e2e test relies on).

use std::process::{Command, Output};

/// Fails loudly outside the lab VM: these tests need its kernel and must never pass by
/// skipping.
fn require_lab() {
    assert!(
        std::env::var_os("IPVS_LAB").is_some(),
        "e2e tests run only inside the lab VM: use `cargo xtask lab test`"
    );
}

/// Runs a shell script in a fresh network namespace (busybox `unshare -n`) with loopback up,
/// so 127.0.0.1 is a local address there as on any host.
fn in_fresh_netns(script: &str) -> Output {
    let script = format!("ip link set lo up && {script}");
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", &script])
        .output()
        .expect("running unshare -n");
    assert!(
        out.status.success(),
        "{script:?} failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn ipvs_is_available_in_a_fresh_netns() {
    require_lab();
    let out = in_fresh_netns("cat /proc/net/ip_vs && echo --- && ipvsadm -ln");
    let text = String::from_utf8_lossy(&out.stdout);
    let (proc_table, ipvsadm) = text.split_once("---\n").expect("separator");
    for (source, listing) in [("/proc/net/ip_vs", proc_table), ("ipvsadm -ln", ipvsadm)] {
        assert!(
            listing.starts_with("IP Virtual Server version "),
            "{source} header missing:\n{listing}"
        );
        assert!(
            listing.contains("Prot LocalAddress:Port Scheduler Flags"),
            "{source} column header missing:\n{listing}"
        );
        assert!(
            !listing.contains("TCP ") && !listing.contains("UDP "),
            "a fresh namespace has no services, {source} lists:\n{listing}"
        );
    }
}

#[test]
fn services_stay_in_their_namespace() {
    require_lab();
    let out = in_fresh_netns(
        "ipvsadm -A -t 192.168.100.1:80 -s rr && \
         ipvsadm -a -t 192.168.100.1:80 -r 127.0.0.1:8081 -m && \
         ipvsadm -ln",
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        listing.contains("TCP  192.168.100.1:80 rr"),
        "service missing:\n{listing}"
    );
    assert!(
        listing.contains("-> 127.0.0.1:8081"),
        "real server missing:\n{listing}"
    );

    let other = in_fresh_netns("ipvsadm -ln");
    let other = String::from_utf8_lossy(&other.stdout);
    assert!(
        !other.contains("192.168.100.1"),
        "another namespace sees the service:\n{other}"
    );
}
