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
use pb::service_key::Key;

fn ip(addr: IpAddr) -> pb::IpAddress {
    let ip = match addr {
        IpAddr::V4(v4) => pb::ip_address::Ip::V4(v4.octets().to_vec()),
        IpAddr::V6(v6) => pb::ip_address::Ip::V6(v6.octets().to_vec()),
    };
    pb::IpAddress { ip: Some(ip) }
}

fn show_ip(addr: Option<&pb::IpAddress>) -> String {
    match addr.and_then(|a| a.ip.as_ref()) {
        Some(pb::ip_address::Ip::V4(b)) => <[u8; 4]>::try_from(b.as_slice())
            .map(|o| IpAddr::from(o).to_string())
            .unwrap_or_else(|_| "?".into()),
        Some(pb::ip_address::Ip::V6(b)) => <[u8; 16]>::try_from(b.as_slice())
            .map(|o| format!("[{}]", IpAddr::from(o)))
            .unwrap_or_else(|_| "?".into()),
        None => "?".into(),
    }
}

/// `tcp:10.0.0.1:80`, `udp:[2001:db8::1]:53`, `fwmark:7` as a service key.
fn parse_service(s: &str) -> anyhow::Result<pb::ServiceKey> {
    let (kind, rest) = s
        .split_once(':')
        .with_context(|| format!("service `{s}': expected PROTO:ADDR:PORT or fwmark:MARK"))?;
    let key = match kind {
        "fwmark" => Key::Fwmark(pb::FirewallMark {
            mark: rest.parse().with_context(|| format!("bad mark `{rest}'"))?,
            family: pb::AddressFamily::Inet as i32,
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
            Key::Endpoint(pb::Endpoint {
                protocol: protocol as i32,
                address: Some(ip(addr.ip())),
                port: u32::from(addr.port()),
            })
        }
        other => bail!("unknown service kind `{other}': tcp, udp, sctp or fwmark"),
    };
    Ok(pb::ServiceKey { key: Some(key) })
}

fn show_service(key: Option<&pb::ServiceKey>) -> String {
    match key.and_then(|k| k.key.as_ref()) {
        Some(Key::Endpoint(e)) => {
            let proto = pb::Protocol::try_from(e.protocol)
                .map(|p| {
                    p.as_str_name()
                        .trim_start_matches("PROTOCOL_")
                        .to_lowercase()
                })
                .unwrap_or_else(|_| "?".into());
            format!("{proto}:{}:{}", show_ip(e.address.as_ref()), e.port)
        }
        Some(Key::Fwmark(f)) => format!("fwmark:{}", f.mark),
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

    let Some(target) = services.iter().find(|s| s.key.as_ref() == Some(&wanted)) else {
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
        .with_context(|| format!("{}:{}", show_ip(dest.address.as_ref()), dest.port))?;
        println!(
            "{service}: {}:{} weight {} -> {weight}",
            show_ip(dest.address.as_ref()),
            dest.port,
            dest.weight.unwrap_or(1)
        );
    }
    Ok(())
}
