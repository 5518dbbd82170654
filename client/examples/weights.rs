//! Lists an agent's services, then sets every real server of one service to one weight.
//!
//! ```sh
//! cargo run -p ipvs-client --example weights -- http://127.0.0.1:50051 tcp:192.168.100.1:80 3
//! ```
//!
//! The service is `tcp:ADDR:PORT`, `udp:ADDR:PORT`, `sctp:ADDR:PORT` (IPv6 as `[::1]:80`) or
//! `fwmark:MARK`. A weight of 0 quiesces the servers: no new connections go to them.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context, bail};
use ipvs_client::{Agent, AgentAddress};
use ipvs_proto::v1 as pb;

/// An address as the agent sends it, with IPv6 in brackets so that a port can follow.
fn show_ip(addr: &str) -> String {
    match addr.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("[{v6}]"),
        Ok(v4) => v4.to_string(),
        Err(_) => "?".into(),
    }
}

fn family(ipv6: bool) -> pb::AddressFamily {
    if ipv6 {
        pb::AddressFamily::Inet6
    } else {
        pb::AddressFamily::Inet
    }
}

/// `tcp:10.0.0.1:80`, `udp:[2001:db8::1]:53`, `fwmark:7` as a service key, with its family set
/// as the agent's replies set it, so that it compares equal to the listed key.
fn parse_service(s: &str) -> anyhow::Result<pb::ServiceKey> {
    let (kind, rest) = s
        .split_once(':')
        .with_context(|| format!("service `{s}': expected PROTO:ADDR:PORT or fwmark:MARK"))?;
    match kind {
        "fwmark" => Ok(pb::ServiceKey {
            fwmark: rest.parse().with_context(|| format!("bad mark `{rest}'"))?,
            family: family(false).into(),
            ..Default::default()
        }),
        "tcp" | "udp" | "sctp" => {
            let protocol = match kind {
                "tcp" => pb::Protocol::Tcp,
                "udp" => pb::Protocol::Udp,
                _ => pb::Protocol::Sctp,
            };
            let addr: SocketAddr = rest
                .parse()
                .with_context(|| format!("bad address `{rest}': expected ADDR:PORT"))?;
            Ok(pb::ServiceKey {
                protocol: protocol.into(),
                address: addr.ip().to_string(),
                port: u32::from(addr.port()),
                fwmark: 0,
                family: family(addr.is_ipv6()).into(),
            })
        }
        other => bail!("unknown service kind `{other}': tcp, udp, sctp or fwmark"),
    }
}

/// `key` with the API's defaults written out (TCP for no protocol, IPv4 for a fwmark service
/// without a family, the family an address has) and its address in canonical form, so that
/// two keys for one service are equal however each was written.
fn canonical(key: &pb::ServiceKey) -> pb::ServiceKey {
    if key.fwmark != 0 {
        return pb::ServiceKey {
            fwmark: key.fwmark,
            family: family(key.family == pb::AddressFamily::Inet6 as i32).into(),
            ..Default::default()
        };
    }
    let addr = key.address.parse::<IpAddr>().ok();
    pb::ServiceKey {
        protocol: match pb::Protocol::try_from(key.protocol) {
            Ok(pb::Protocol::Unspecified) => pb::Protocol::Tcp.into(),
            _ => key.protocol,
        },
        address: addr.map_or_else(|| key.address.clone(), |a| a.to_string()),
        port: key.port,
        fwmark: 0,
        family: family(addr.is_some_and(|a| a.is_ipv6())).into(),
    }
}

fn show_service(key: Option<&pb::ServiceKey>) -> String {
    match key {
        Some(k) if k.fwmark != 0 => format!("fwmark:{}", k.fwmark),
        Some(k) => {
            // An unspecified protocol is TCP, the API's default.
            let proto = match pb::Protocol::try_from(k.protocol) {
                Ok(pb::Protocol::Udp) => "udp",
                Ok(pb::Protocol::Sctp) => "sctp",
                Ok(pb::Protocol::Tcp | pb::Protocol::Unspecified) => "tcp",
                Err(_) => "?",
            };
            format!("{proto}:{}:{}", show_ip(&k.address), k.port)
        }
        None => "?".into(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, service, weight] = args.as_slice() else {
        bail!(
            "usage: weights AGENT SERVICE WEIGHT (e.g. unix:/run/ipvs-agent/agent.sock tcp:10.0.0.1:80 5)"
        );
    };
    let address = AgentAddress::parse(address)?;
    let wanted = parse_service(service)?;
    let weight: u16 = weight
        .parse()
        .with_context(|| format!("bad weight `{weight}': 0 to 65535"))?;

    let agent = Agent::connect(&address).await?;
    let mut ipvs = agent.ipvs();
    let services = ipvs
        .list_services(pb::ListServicesRequest {})
        .await?
        .into_inner()
        .services;
    for s in &services {
        println!(
            "{}  {} real servers",
            show_service(s.key.as_ref()),
            s.destinations.len()
        );
    }

    let Some(target) = services
        .iter()
        .find(|s| s.key.as_ref().map(canonical) == Some(canonical(&wanted)))
    else {
        bail!("{service}: no such service on {address}");
    };
    for dest in &target.destinations {
        // UpdateDestination replaces the server's settings: send them back unchanged but
        // for the weight.
        let destination = pb::Destination {
            weight: Some(u32::from(weight)),
            ..dest.clone()
        };
        ipvs.update_destination(pb::UpdateDestinationRequest {
            service: Some(wanted.clone()),
            destination: Some(destination),
        })
        .await
        .with_context(|| format!("{}:{}", show_ip(&dest.address), dest.port))?;
        println!(
            "{service}: {}:{} weight {} -> {weight}",
            show_ip(&dest.address),
            dest.port,
            dest.weight.unwrap_or(1)
        );
    }
    Ok(())
}
