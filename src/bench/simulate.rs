//! `aidhub simulate` (hidden): the simulated partners of a routes file in a process of their
//! own, so that the bench measures the server under test apart from the partners. Every
//! partner with a loopback upstream gets a [`SimPartner`] on that address with its server
//! certificate from the PKI directory, demanding client certificates of the PKI's CA. The
//! MSPs never deliver async activation codes by themselves: in the bench the load generator
//! plays the MSP. Requests are not recorded (memory stays flat under load).

use crate::aid1::Role;
use crate::config::Routes;
use crate::pki;
use crate::signals::Signals;
use crate::sim::{Side, SimPartner};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Starts the partners and serves until SIGTERM, SIGINT or SIGHUP.
pub async fn run(routes: &Path, certs: &Path) -> ExitCode {
    let mut signals = match Signals::register() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("aidhub simulate: {e}");
            return ExitCode::FAILURE;
        }
    };
    match start(routes, certs).await {
        Ok(partners) => {
            println!("{} simulated partners ready", partners.len());
            signals.next().await;
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("aidhub simulate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn start(routes: &Path, certs: &Path) -> Result<Vec<SimPartner>, String> {
    let base = std::env::current_dir().map_err(|e| e.to_string())?;
    let routes = Routes::load(routes, &base).map_err(|e| e.to_string())?;
    let mut started = Vec::new();
    for partner in &routes.partners {
        let Some(authority) = partner.upstream.origin.authority() else {
            continue;
        };
        let host = authority.host().replace("localhost", "127.0.0.1");
        let Ok(addr) =
            format!("{host}:{}", authority.port_u16().unwrap_or(443)).parse::<SocketAddr>()
        else {
            continue;
        };
        if !addr.ip().is_loopback() {
            continue;
        }
        let side = match partner.role {
            Role::Msp => Side::Msp,
            Role::Cmp => Side::Cmp,
        };
        let (cert, key) = pki::partner_server(certs, &partner.id);
        let sim = SimPartner::start(side, addr, &cert, &key, &pki::ca_cert(certs)).await?;
        sim.forget_requests();
        println!(
            "simulating {} ({}) on {addr}",
            partner.id,
            partner.role.as_str()
        );
        started.push(sim);
    }
    if started.is_empty() {
        return Err("no partner of the routes file has a loopback upstream".into());
    }
    Ok(started)
}
