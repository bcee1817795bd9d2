//! Reload on file change: watches `hub.toml`, `routes.toml` and every certificate, key, CRL
//! and trust anchor they name, and reloads once the files have been quiet for
//! `reload.debounce_ms` (editors and deploy tools write in several steps). The watch stays
//! armed during a reload — a change made meanwhile triggers another — and is renewed when
//! the set of files changes.

use crate::hub::Hub;
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How often a hub with `reload.watch = false` looks whether a reload turned it on.
const DISABLED_RECHECK: Duration = Duration::from_secs(5);

/// Runs until `shutdown` fires.
pub async fn watcher(hub: Hub, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let mut armed: Option<(RecommendedWatcher, HashSet<PathBuf>)> = None;
    loop {
        let snap = hub.snapshot();
        if !snap.config.reload.watch {
            armed = None;
            tokio::select! {
                _ = tokio::time::sleep(DISABLED_RECHECK) => continue,
                _ = shutdown.changed() => return,
            }
        }
        let files = watched(&hub);
        if armed.as_ref().is_none_or(|(_, current)| *current != files) {
            match arm(&files, tx.clone()) {
                Ok(w) => armed = Some((w, files)),
                Err(e) => {
                    tracing::warn!(cause = %e, "cannot watch configuration files; reload with SIGHUP or the admin API");
                    let _ = shutdown.changed().await;
                    return;
                }
            }
        }
        let Some((_, files)) = &armed else { continue };
        // Wait for a change to one of our files, then for quiet.
        loop {
            tokio::select! {
                paths = rx.recv() => match paths {
                    Some(paths) if paths.iter().any(|p| files.contains(&absolute(p))) => break,
                    Some(_) => continue,
                    None => return,
                },
                _ = shutdown.changed() => return,
            }
        }
        let debounce = snap.config.reload.debounce;
        loop {
            tokio::select! {
                _ = rx.recv() => continue,
                _ = tokio::time::sleep(debounce) => break,
                _ = shutdown.changed() => return,
            }
        }
        let reloading = hub.clone();
        // Outcome logged and counted by the reload itself.
        let _ = tokio::task::spawn_blocking(move || reloading.reload("file change")).await;
    }
}

/// Watches the directories of `files` (a file may be replaced by a rename).
fn arm(
    files: &HashSet<PathBuf>,
    tx: mpsc::UnboundedSender<Vec<PathBuf>>,
) -> notify::Result<RecommendedWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Opening or reading a file changes nothing: a backup tool, a health check or the
        // hub's own reload reading the certificates must not set off a reload.
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(event.paths);
            }
        }
    })?;
    let dirs: HashSet<&Path> = files.iter().filter_map(|f| f.parent()).collect();
    for dir in dirs {
        if let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), cause = %e, "cannot watch a configuration directory");
        }
    }
    Ok(watcher)
}

/// Every file the configuration reads, as absolute paths.
fn watched(hub: &Hub) -> HashSet<PathBuf> {
    let snap = hub.snapshot();
    let tls = &snap.config.tls;
    let mut files = vec![hub.source().hub_toml.clone(), snap.config.routes.clone()];
    files.extend([
        tls.server_cert.clone(),
        tls.server_key.clone(),
        tls.client_cert.clone(),
        tls.client_key.clone(),
    ]);
    files.extend(tls.partner_ca.iter().cloned());
    files.extend(tls.crls.iter().cloned());
    for partner in &snap.routes.partners {
        files.extend(partner.upstream.ca.iter().cloned());
    }
    files.iter().map(|f| absolute(f)).collect()
}

/// The path with its directory resolved (the file itself may be replaced by a rename).
fn absolute(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_owned()).unwrap_or_default();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::canonicalize(dir).map_or_else(|_| path.to_path_buf(), |d| d.join(name))
}
