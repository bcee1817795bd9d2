//! A cluster stage: several hub replicas in-process, each on its own loopback address
//! (127.0.0.1, .2, .3, …) with its own configuration directory, in front of one set of
//! simulated partners and one PKI — the way replicas stand behind a load balancer. What
//! they share (a PostgreSQL schema, a Redis) is whatever the caller's hub.toml edit says.
//!
//! ```ignore
//! let cluster = Cluster::start(3, |i, toml| with_postgres(toml)).await?;
//! cluster.call(0, "cmpone", "mspalpha", Method::POST, "/v1/…", Some(&body)).await;
//! ```

use super::{routes_toml, PARTNERS};
use crate::client::{Caller, HubClient, Reply, Version};
use crate::pki;
use crate::run::{self, Options, Running};
use crate::sim::{AsyncDelivery, Side, SimPartner};
use http::Method;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One replica of a cluster stage.
pub struct Replica {
    /// Its name (`a`, `b`, `c`, …), also its `[admin] replica_id`.
    pub name: String,
    /// Its configuration directory.
    pub dir: PathBuf,
    /// The running hub, until stopped.
    pub running: Option<Running>,
    /// Its partner listener.
    pub addr: SocketAddr,
    /// Its admin listener.
    pub admin: SocketAddr,
}

/// Replicas, partners and the directory holding everything.
pub struct Cluster {
    /// Holds the PKI and each replica's directory.
    pub root: tempfile::TempDir,
    /// The replicas, in start order.
    pub replicas: Vec<Replica>,
    /// The simulated partners by id.
    pub partners: BTreeMap<String, SimPartner>,
}

/// The loopback address of replica `i`: 127.0.0.(i+1).
pub fn replica_ip(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, (i + 1).min(254) as u8))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

impl Cluster {
    /// Generates the PKI (the hub certificate naming every replica's address), starts the
    /// partners and `n` replicas; `edit(i, hub_toml)` writes replica `i`'s hub.toml from the
    /// stage's. Simulated MSPs deliver async codes through replica 0 until told otherwise.
    pub async fn start(n: usize, edit: impl Fn(usize, &str) -> String) -> Result<Cluster, String> {
        let root = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let certs = super::certs(root.path());
        let mut hosts = vec!["localhost".to_owned()];
        hosts.extend((0..n).map(|i| replica_ip(i).to_string()));
        let partner_hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let specs: Vec<pki::PartnerCerts<'_>> = PARTNERS
            .iter()
            .map(|(id, _)| pki::PartnerCerts {
                id,
                hosts: &partner_hosts,
            })
            .collect();
        let request = pki::PkiRequest {
            dir: &certs,
            hub_hosts: &hosts,
            partners: &specs,
            days: 30,
        };
        pki::ensure(&request, &mut |_| {}).map_err(|e| e.to_string())?;
        let mut partners = BTreeMap::new();
        for (id, side) in PARTNERS {
            let (cert, key) = pki::partner_server(&certs, id);
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let sim = SimPartner::start(*side, any, &cert, &key, &pki::ca_cert(&certs)).await?;
            partners.insert(id.to_string(), sim);
        }
        let routes = routes_toml(&partners);
        let mut cluster = Cluster {
            root,
            replicas: Vec::new(),
            partners,
        };
        for i in 0..n {
            let name = ((b'a' + (i % 26) as u8) as char).to_string();
            let dir = cluster.root.path().join(format!("replica-{name}"));
            copy_dir(&certs, &dir.join("certs"))?;
            std::fs::write(dir.join("routes.toml"), &routes).map_err(|e| e.to_string())?;
            let toml = format!(
                "{}\n[admin]\nreplica_id = \"{name}\"\n",
                edit(i, super::HUB_TOML)
            );
            std::fs::write(dir.join("hub.toml"), toml).map_err(|e| e.to_string())?;
            let running = run::start(Options {
                browsers_addr: None,
                devices_addr: None,
                hub_toml: dir.join("hub.toml"),
                base: dir.clone(),
                partners_addr: Some(SocketAddr::new(replica_ip(i), 0)),
                admin_addr: Some(SocketAddr::new(replica_ip(i), 0)),
                grace: Duration::from_secs(5),
            })
            .await
            .map_err(|e| format!("replica {name}: {e}"))?;
            cluster.replicas.push(Replica {
                name,
                dir,
                addr: running.partners_addr,
                admin: running.admin_addr,
                running: Some(running),
            });
        }
        for (id, side) in PARTNERS {
            if *side == Side::Msp {
                cluster.deliver_async_via(id, 0, Duration::from_millis(50))?;
            }
        }
        Ok(cluster)
    }

    /// A client to replica `i` presenting partner `id`'s certificate.
    pub fn client(&self, i: usize, id: &str) -> Result<HubClient, String> {
        let certs = super::certs(self.root.path());
        let (cert, key) = pki::partner_client(&certs, id);
        HubClient::new(
            &format!("https://{}", self.replicas[i].addr),
            &pki::ca_cert(&certs),
            &cert,
            &key,
            Version::Http1,
        )
    }

    /// Partner `id`'s identity and credential (the same at every replica).
    pub fn caller(&self, id: &str) -> Result<Caller, String> {
        let running = self.replicas[0]
            .running
            .as_ref()
            .ok_or("replica a is stopped")?;
        let snap = running.hub.snapshot();
        let partner = snap.partner(id).ok_or_else(|| format!("no partner {id}"))?;
        Ok(Caller::for_partner(partner))
    }

    /// Makes simulated MSP `msp` deliver its async codes through replica `i`.
    pub fn deliver_async_via(&self, msp: &str, i: usize, after: Duration) -> Result<(), String> {
        self.partners[msp].deliver_async_with(AsyncDelivery {
            hub: self.client(i, msp)?,
            caller: self.caller(msp)?,
            after,
        });
        Ok(())
    }

    /// Calls replica `i` as `from` towards `to`.
    pub async fn call(
        &self,
        i: usize,
        from: &str,
        to: &str,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Reply {
        let outcome = match (self.client(i, from), self.caller(from)) {
            (Ok(client), Ok(caller)) => client.call(&caller, to, method, path, body).await,
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        outcome.unwrap_or_else(|e| Reply::transport_error(&e))
    }

    /// `GET path` on replica `i`'s admin listener (plain HTTP on loopback): status and body.
    pub async fn admin_get(&self, i: usize, path: &str) -> Result<(u16, String), String> {
        admin_get(self.replicas[i].admin, path).await
    }

    /// Stops every replica.
    pub async fn stop(&mut self) -> Result<(), String> {
        for replica in &mut self.replicas {
            if let Some(running) = replica.running.take() {
                running.shutdown().await?;
            }
        }
        Ok(())
    }
}

/// `GET path` over plain HTTP/1.1 to an admin listener: status and body.
pub async fn admin_get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response)
        .await
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text}"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    // A chunked body (hyper's default without a length) keeps its chunk lines: fine for the
    // substring checks tests make.
    Ok((status, body.to_owned()))
}
