//! Durability across a crash of the real binary (issue 3, "The ledger"): `aidhub serve` runs
//! as a child process in front of simulated partners, a burst of concurrent onboardings and
//! async activation-code requests is under way when the child is killed with SIGKILL, and
//! the hub restarted on the same files still knows every federation and open request it
//! had acknowledged; the ledger export afterwards parses line by line. And a disk that
//! stalls (the ledger's file system frozen under the running hub) holds the durable answer
//! until it thaws, and the hub's log names the stall.

mod support;

use aidhub::account_id::{self, AccountClaims};
use aidhub::client::{Caller, HubClient, Reply, Version};
use aidhub::config::Routes;
use aidhub::ledger::{AcState, ExportRecord, FederationState, LedgerStats, Outcome, Pair};
use aidhub::pki;
use aidhub::sim::{Side, SimPartner};
use http::Method;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{account_secret, assert_metric, bodies, credential, Admin, HUB_TOML, PARTNERS};
use uuid::Uuid;

/// The pairs the burst federates (all permitted by the stage's agreements).
const PAIRS: [(&str, &str); 3] = [
    ("mspalpha", "cmpone"),
    ("mspbeta", "cmpone"),
    ("mspalpha", "cmptwo"),
];
/// Concurrent partner tasks in the burst.
const TASKS: usize = 8;
/// The child is killed once this many federations and this many open requests were
/// acknowledged (while every task keeps sending).
const KILL_AFTER: (usize, usize) = (150, 120);

/// A temporary hub directory (config, routes, PKI, ledger) with simulated partners running
/// in this process, and the logs of the children started on it.
struct Site {
    dir: tempfile::TempDir,
    partners: BTreeMap<String, SimPartner>,
    callers: BTreeMap<String, Caller>,
    logs: Vec<PathBuf>,
}

impl Site {
    async fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let certs = support::certs(dir.path());
        let hosts = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let specs: Vec<pki::PartnerCerts<'_>> = PARTNERS
            .iter()
            .map(|(id, _)| pki::PartnerCerts { id, hosts: &hosts })
            .collect();
        let request = pki::PkiRequest {
            dir: &certs,
            hub_hosts: &hosts,
            partners: &specs,
            days: 30,
        };
        pki::ensure(&request, &mut |_| {}).expect("the PKI is made");
        let mut partners = BTreeMap::new();
        let mut routes = String::new();
        for (id, side) in PARTNERS {
            let (cert, key) = pki::partner_server(&certs, id);
            let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
            // MSPs without a delivery answer async requests with 201 and deliver nothing:
            // this test sends the Send Activation Codes itself.
            let sim = SimPartner::start(*side, any_port, &cert, &key, &pki::ca_cert(&certs))
                .await
                .expect("a simulated partner starts");
            routes.push_str(&partner_entry(id, *side, sim.addr));
            partners.insert(id.to_string(), sim);
        }
        std::fs::write(dir.path().join("routes.toml"), &routes).expect("routes.toml");
        // Generous upstream timeouts: this test is about durability, and a busy CI machine
        // must not turn a slow in-process partner into a 504, nor its slow handshake into a
        // 502 (the checks after the restart open a few hundred calls at once on a hub with no
        // upstream connection yet: one CI run had a handshake over the stage's 500 ms). No
        // checkpoint during the test: what the crash leaves is in sled's unflushed state and
        // the journal of durable writes.
        let hub_toml = format!(
            "{}\n[timeouts.functions]\nrequest_activation_code = 15000\n\
             [listen]\npartners = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\n",
            HUB_TOML
                .replace("connect_ms = 500", "connect_ms = 10000")
                .replace("default_ms = 2000", "default_ms = 15000")
                .replace(
                    "early_answer_wait_ms = 3000",
                    "early_answer_wait_ms = 3000\ncheckpoint_ms = 600000"
                )
        );
        assert!(
            hub_toml.contains("connect_ms = 10000") && hub_toml.contains("default_ms = 15000"),
            "the generous timeouts took: {hub_toml}"
        );
        std::fs::write(dir.path().join("hub.toml"), hub_toml).expect("hub.toml");
        let table = Routes::load(&dir.path().join("routes.toml"), dir.path())
            .unwrap_or_else(|e| panic!("routes.toml is valid: {e}\n{routes}"));
        let callers = table
            .partners
            .iter()
            .map(|p| (p.id.to_string(), Caller::for_partner(p)))
            .collect();
        Site {
            dir,
            partners,
            callers,
            logs: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn aidhub(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aidhub"));
        command
            .args(["--config", "hub.toml"])
            .args(args)
            .current_dir(self.path())
            .env_remove("RUST_LOG")
            .env_remove("AIDHUB_CONFIG");
        command
    }

    /// Starts `aidhub serve` and waits until it answers over TLS.
    async fn serve(&mut self) -> Served {
        let log = self
            .path()
            .join(format!("serve-{}.log", self.logs.len() + 1));
        self.logs.push(log.clone());
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = self
            .aidhub(&["serve", "--grace-secs", "1"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("aidhub starts");
        let mut served = Served {
            child,
            addr: None,
            admin: None,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let (addr, admin) = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addrs) = welcome_addrs(&text) {
                break addrs;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("aidhub serve exited with {status}:\n{text}");
            }
            assert!(Instant::now() < deadline, "aidhub did not start:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        served.addr = Some(addr);
        served.admin = Some(admin);
        let probe = self.client(addr, "cmpone");
        let caller = self.callers["cmpone"].clone();
        let path = format!("/v1/statuses/{}", Uuid::new_v4());
        let body = bodies::csim_status("enabled");
        loop {
            let reply = probe
                .call(&caller, "mspalpha", Method::POST, &path, Some(&body))
                .await;
            match reply {
                Ok(r) => {
                    assert_eq!(r.status, 404, "an unknown token is refused");
                    break;
                }
                Err(e) => assert!(Instant::now() < deadline, "no TLS answer: {e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        served
    }

    /// Replaces `from` (which must be there) with `to` in the site's hub.toml.
    fn edit_hub_toml(&self, from: &str, to: &str) {
        let path = self.path().join("hub.toml");
        let text = std::fs::read_to_string(&path).expect("hub.toml");
        std::fs::write(&path, support::edit(&text, from, to)).expect("hub.toml");
    }

    /// Moves the ledger onto a [`TestDisk`] of its own; `None` where this machine cannot make
    /// one, after saying that the test (which `does` things to the disk) skipped, and why.
    fn ledger_on_disk(&self, does: &str) -> Option<TestDisk> {
        match TestDisk::new(self.path()) {
            Ok(disk) => {
                let on_disk = format!("path = \"{}/ledger\"", disk.mount());
                self.edit_hub_toml("path = \"ledger\"", &on_disk);
                Some(disk)
            }
            Err(why) => {
                eprintln!("skipped: this test {does} a loop-mounted file system, and here {why}");
                None
            }
        }
    }

    fn client(&self, addr: SocketAddr, id: &str) -> HubClient {
        let certs = support::certs(self.path());
        let (cert, key) = pki::partner_client(&certs, id);
        HubClient::new(
            &format!("https://localhost:{}", addr.port()),
            &pki::ca_cert(&certs),
            &cert,
            &key,
            Version::Http1,
        )
        .expect("a partner client")
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for log in &self.logs {
                let text = std::fs::read_to_string(log).unwrap_or_default();
                eprintln!("---- {} ----\n{text}", log.display());
            }
        }
    }
}

/// The ledger journal's epoch and the length of its first record (0: none).
fn journal_state(path: &Path) -> (u64, u32) {
    let bytes = std::fs::read(path).expect("the ledger journal");
    let word = |at: usize, n: usize| {
        bytes[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |v, b| (v << 8) | u64::from(*b))
    };
    (word(8, 8), word(4096, 4) as u32)
}

/// A running `aidhub serve`; killed when dropped.
struct Served {
    child: Child,
    addr: Option<SocketAddr>,
    admin: Option<SocketAddr>,
}

impl Served {
    fn addr(&self) -> SocketAddr {
        self.addr.expect("started")
    }

    /// A client of its admin listener.
    fn admin(&self) -> Admin {
        Admin::at(self.admin.expect("started"))
    }

    /// SIGKILL (`Child::kill` on unix), then reap it.
    fn crash(&mut self) {
        self.child.kill().expect("the child can be killed");
        let status = self.child.wait().expect("the child is reaped");
        assert!(!status.success(), "killed, not exited: {status}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The partner and admin addresses the welcome in `log` names, once it has both.
fn welcome_addrs(log: &str) -> Option<(SocketAddr, SocketAddr)> {
    let after = |marker: &str| -> Option<SocketAddr> {
        let rest = log.split(marker).nth(1)?;
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((
        after("aidhub is serving AID1 on https://")?,
        after("admin API on http://")?,
    ))
}

/// One `[[partner]]` of routes.toml for a stage partner whose upstream is `addr`.
fn partner_entry(id: &str, side: Side, addr: SocketAddr) -> String {
    let role = if side == Side::Msp { "msp" } else { "cmp" };
    let secret = match side {
        Side::Cmp => format!("account_id_secret = \"{}\"\n", account_secret(id)),
        Side::Msp => String::new(),
    };
    format!(
        "[[partner]]\nid = \"{id}\"\nrole = \"{role}\"\nidentities = [\"cn:{id}\"]\n\
         credential = {cred}\n{secret}\
         [partner.upstream]\nurl = \"https://127.0.0.1:{port}\"\nca = [\"certs/ca.pem\"]\n\
         credential = {{ api_key = \"hubAt{id}\" }}\nserver_name = \"localhost\"\n\n",
        cred = credential(id),
        port = addr.port(),
    )
}

fn account_id(cmp: &str) -> String {
    let now = aidhub::aid1::lifecycle::now_ms() / 1000;
    let claims = AccountClaims {
        sid: Uuid::new_v4(),
        exp: now + 600,
        iat: Some(now),
        has_ver: false,
    };
    account_id::sign(&claims, None, false, account_secret(cmp).as_bytes())
}

/// What the crashed hub acknowledged with success.
#[derive(Default)]
struct Acked {
    /// 201 to Send MSP Token: token and pair.
    federations: Vec<(Uuid, Pair)>,
    /// 201 to an async Request Activation Code: request id, token and pair.
    open: Vec<(Uuid, Uuid, Pair)>,
    /// Any answer other than the expected success (a bug, unless the hub was gone).
    unexpected: Vec<String>,
}

/// A partner's view of one hub: a client per partner and the callers.
#[derive(Clone)]
struct Partners {
    clients: BTreeMap<String, HubClient>,
    callers: BTreeMap<String, Caller>,
}

impl Partners {
    fn new(site: &Site, addr: SocketAddr) -> Partners {
        Partners {
            clients: PARTNERS
                .iter()
                .map(|(id, _)| (id.to_string(), site.client(addr, id)))
                .collect(),
            callers: site.callers.clone(),
        }
    }

    async fn call(
        &self,
        from: &str,
        to: &str,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Reply, String> {
        self.clients[from]
            .call(&self.callers[from], to, method, path, Some(body))
            .await
    }
}

/// One task of the burst: onboard, then ask for an async code, until the hub is gone.
async fn burst_task(n: usize, partners: Partners, acked: Arc<Mutex<Acked>>) {
    for round in n.. {
        let (msp, cmp) = PAIRS[round % PAIRS.len()];
        let pair = Pair::new(msp, cmp);
        let token = Uuid::new_v4();
        let path = format!("/cesim/msp/v1/users/{}", account_id(cmp));
        let onboarded = partners
            .call(msp, cmp, Method::POST, &path, &bodies::msp_token(&token))
            .await;
        match onboarded {
            Ok(r) if r.status == 201 => lock(&acked).federations.push((token, pair.clone())),
            Ok(r) => {
                let what = format!("Send MSP Token: {} {:?}", r.status, r.body);
                lock(&acked).unexpected.push(what);
                return;
            }
            Err(_) => return,
        }
        let id = Uuid::new_v4();
        let path = format!("/v1/activation-code-requests/{token}");
        let asked = partners
            .call(
                cmp,
                msp,
                Method::POST,
                &path,
                &bodies::ac_request(&id, "async"),
            )
            .await;
        match asked {
            Ok(r) if r.status == 201 => lock(&acked).open.push((id, token, pair)),
            Ok(r) => {
                let what = format!("Request Activation Code: {} {:?}", r.status, r.body);
                lock(&acked).unexpected.push(what);
                return;
            }
            Err(_) => return,
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_burst_loses_no_acknowledged_federation_or_open_request() {
    let mut site = Site::new().await;
    let mut first = site.serve().await;
    let partners = Partners::new(&site, first.addr());
    let acked = Arc::new(Mutex::new(Acked::default()));
    let tasks: Vec<_> = (0..TASKS)
        .map(|n| tokio::spawn(burst_task(n, partners.clone(), acked.clone())))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (feds, open) = {
            let a = lock(&acked);
            (a.federations.len(), a.open.len())
        };
        if feds >= KILL_AFTER.0 && open >= KILL_AFTER.1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the burst is too slow: {feds} federations, {open} open requests in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every task is between two calls or inside one: this is mid-burst.
    let running = tasks.iter().filter(|t| !t.is_finished()).count();
    first.crash();
    // The journal (src/ledger/sled/journal.rs): a header block naming the epoch, records
    // from offset 4096, each starting with its length.
    let journal = site.path().join("ledger/journal");
    let (epoch, first_record) = journal_state(&journal);
    assert!(
        first_record > 0,
        "the acknowledged durable writes are in the journal at the crash"
    );
    for task in tasks {
        task.await.expect("a burst task");
    }
    let acked = std::mem::take(&mut *lock(&acked));
    assert!(
        acked.unexpected.is_empty(),
        "unexpected answers: {:?}",
        acked.unexpected
    );
    assert_eq!(
        running, TASKS,
        "every task was still sending when the hub died"
    );
    eprintln!(
        "acknowledged before SIGKILL: {} federations, {} open requests",
        acked.federations.len(),
        acked.open.len()
    );

    // Restarted on the same files, the hub replays the journal (and empties it), honours
    // every acknowledged federation (a new code request is not refused with 20) and matches
    // every acknowledged open request.
    let mut second = site.serve().await;
    assert!(
        journal_state(&journal).0 > epoch,
        "the restarted hub replayed the journal into sled and started it over"
    );
    let partners = Partners::new(&site, second.addr());
    let mut checks = tokio::task::JoinSet::new();
    for (token, pair) in acked.federations.clone() {
        let partners = partners.clone();
        checks.spawn(async move {
            let path = format!("/v1/activation-code-requests/{token}");
            let body = bodies::ac_request(&Uuid::new_v4(), "tcu");
            let r = partners
                .call(&pair.cmp, &pair.msp, Method::POST, &path, &body)
                .await;
            (
                format!("federation {token} of {pair:?}"),
                r.map(|r| (r.status.as_u16(), r.body)),
            )
        });
    }
    for (id, token, pair) in acked.open.clone() {
        let partners = partners.clone();
        checks.spawn(async move {
            let path = format!("/cesim/msp/v1/activation-codes/{token}");
            let body = bodies::send_ac(&id);
            let r = partners
                .call(&pair.msp, &pair.cmp, Method::POST, &path, &body)
                .await;
            (
                format!("open request {id} of {pair:?}"),
                r.map(|r| (r.status.as_u16(), r.body)),
            )
        });
    }
    let mut lost = Vec::new();
    while let Some(check) = checks.join_next().await {
        let (what, outcome) = check.expect("a check task");
        if !matches!(outcome, Ok((200, _))) {
            lost.push(format!("{what}: {outcome:?}"));
        }
    }
    assert!(lost.is_empty(), "lost across SIGKILL:\n{}", lost.join("\n"));

    // Killed again, the files read back whole: every export line parses, and the records
    // agree with what was acknowledged (before and after the first crash).
    second.crash();
    let export = site
        .aidhub(&["ledger", "export"])
        .output()
        .expect("ledger export runs");
    assert!(
        export.status.success(),
        "ledger export failed: {}",
        String::from_utf8_lossy(&export.stderr)
    );
    let text = String::from_utf8(export.stdout).expect("the export is UTF-8");
    let mut federations = BTreeMap::new();
    let mut requests = BTreeMap::new();
    let mut profiles = 0;
    for (n, line) in text.lines().enumerate() {
        let record: ExportRecord = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("export line {} does not parse ({e}): {line}", n + 1));
        match record {
            ExportRecord::Federation(f) => {
                federations.insert(f.msp_token, f);
            }
            ExportRecord::Request(r) => {
                requests.insert(r.id, r);
            }
            ExportRecord::Profile(_) => profiles += 1,
        }
    }
    let reserved = federations
        .values()
        .filter(|f| matches!(f.state, FederationState::Reserved { .. }))
        .count();
    let pending = requests
        .values()
        .filter(|r| r.state == AcState::Pending)
        .count();
    eprintln!(
        "caught in flight by the SIGKILL: {reserved} reservations, {pending} pending requests"
    );
    for (token, pair) in &acked.federations {
        let f = &federations[token];
        assert_eq!((&f.pair, &f.state), (pair, &FederationState::Active));
    }
    for (id, token, pair) in &acked.open {
        let r = &requests[id];
        assert_eq!((&r.pair, r.msp_token), (pair, *token));
        assert!(
            matches!(
                r.state,
                AcState::Closed {
                    outcome: Outcome::Answered,
                    ..
                }
            ),
            "request {id} was answered after the restart: {:?}",
            r.state
        );
    }
    let stats = site
        .aidhub(&["ledger", "stats"])
        .output()
        .expect("ledger stats runs");
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats: LedgerStats = serde_json::from_slice(&stats.stdout).expect("stats are JSON");
    let active = federations
        .values()
        .filter(|f| f.state == FederationState::Active)
        .count();
    let open: BTreeSet<_> = requests
        .values()
        .filter(|r| !matches!(r.state, AcState::Closed { .. }))
        .map(|r| r.id)
        .collect();
    assert_eq!(stats.federations_active as usize, active);
    assert_eq!(
        (stats.requests_pending + stats.requests_open + stats.requests_answering) as usize,
        open.len()
    );
    assert_eq!(stats.profiles as usize, profiles);
}

/// A disk of the test's own: a loop-mounted ext4 file system in the site's directory, which
/// stalls on demand (frozen with `fsfreeze`: every write and sync on it waits until it is
/// thawed) or fills up. Thawed, unmounted and detached when dropped.
struct TestDisk {
    device: String,
    mount: PathBuf,
}

/// Runs a command to completion; its stdout, or why it failed.
fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {}: {} {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

impl TestDisk {
    /// Makes and mounts the file system under `dir`; why not, where this machine cannot
    /// (it takes root, a free loop device, mkfs.ext4 and fsfreeze).
    fn new(dir: &Path) -> Result<TestDisk, String> {
        let image = dir.join("disk.img");
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(64 << 20))
            .map_err(|e| format!("{}: {e}", image.display()))?;
        let image = image.to_str().ok_or("a non-UTF-8 temporary path")?;
        let device = run("losetup", &["--find", "--show", image])?;
        let mut disk = TestDisk {
            device,
            mount: PathBuf::new(),
        };
        run("mkfs.ext4", &["-q", "-F", &disk.device])?;
        let mount = dir.join("disk");
        std::fs::create_dir(&mount).map_err(|e| format!("{}: {e}", mount.display()))?;
        let mount_arg = mount
            .to_str()
            .ok_or("a non-UTF-8 temporary path")?
            .to_owned();
        run("mount", &[&disk.device, &mount_arg])?;
        disk.mount = mount;
        run("fsfreeze", &["--freeze", &mount_arg])?;
        disk.thaw();
        Ok(disk)
    }

    fn mount(&self) -> &str {
        self.mount.to_str().unwrap_or_default()
    }

    fn freeze(&self) {
        run("fsfreeze", &["--freeze", self.mount()]).expect("the file system freezes");
    }

    fn thaw(&self) {
        run("fsfreeze", &["--unfreeze", self.mount()]).expect("the file system thaws");
    }

    /// The file that [`TestDisk::fill`] writes.
    fn filler(&self) -> PathBuf {
        self.mount.join("filler")
    }

    /// Writes a file until the file system has no block left (`ENOSPC`), root's reserve
    /// included; how many bytes it took.
    fn fill(&self) -> u64 {
        use std::io::Write;
        let mut file = std::fs::File::create(self.filler()).expect("the filler file");
        let chunk = vec![0xa5u8; 64 << 10];
        let mut written = 0;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // Blocks written behind are only allocated now; ENOSPC may come from here too.
        let _ = file.sync_all();
        written
    }

    /// Gives back the space [`TestDisk::fill`] took.
    fn free(&self) {
        std::fs::remove_file(self.filler()).expect("the filler file is removed");
    }
}

impl Drop for TestDisk {
    fn drop(&mut self) {
        if !self.mount.as_os_str().is_empty() {
            let _ = run("fsfreeze", &["--unfreeze", self.mount()]);
            if run("umount", &[self.mount()]).is_err() {
                let _ = run("umount", &["--lazy", self.mount()]);
            }
        }
        let _ = run("losetup", &["--detach", &self.device]);
    }
}

/// A disk stall under the real binary: with the ledger on a file system that is frozen, an
/// onboarding's 201 waits until the disk takes the federation (durability over latency), and
/// the hub's log names the stall with its length, so that an operator finds the disk as the
/// cause of that latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_stall_holds_the_durable_answer_and_is_named_in_the_log() {
    const FROZEN: Duration = Duration::from_millis(1500);
    let mut site = Site::new().await;
    let Some(disk) = site.ledger_on_disk("freezes") else {
        return;
    };
    let served = site.serve().await;
    let partners = Partners::new(&site, served.addr());
    let onboard = |partners: Partners| async move {
        let token = Uuid::new_v4();
        let path = format!("/cesim/msp/v1/users/{}", account_id("cmpone"));
        let body = bodies::msp_token(&token);
        let started = Instant::now();
        let reply = partners
            .call("mspalpha", "cmpone", Method::POST, &path, &body)
            .await;
        (reply.map(|r| r.status.as_u16()), started.elapsed())
    };
    let (status, _) = onboard(partners.clone()).await;
    assert_eq!(status, Ok(201), "an onboarding on the thawed disk");

    disk.freeze();
    let held = tokio::spawn(onboard(partners.clone()));
    tokio::time::sleep(FROZEN).await;
    assert!(
        !held.is_finished(),
        "the 201 must wait for the disk: {:?}",
        held.await
    );
    disk.thaw();
    let (status, took) = held.await.expect("the onboarding task");
    assert_eq!(
        status,
        Ok(201),
        "the held onboarding is answered once the disk thaws"
    );
    assert!(took >= FROZEN, "answered after {took:?}, frozen {FROZEN:?}");

    let log = site.logs.last().expect("the serve log").clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    let warning = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("ledger: a journal sync (write and fdatasync) took"))
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no warning of the stall:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let ms: u64 = warning
        .split(" took ")
        .nth(1)
        .and_then(|rest| rest.split(" ms").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the stall's length in: {warning}"));
    assert!(
        ms >= 1000 && warning.contains("the disk stalled"),
        "the stall of about {FROZEN:?} named: {warning}"
    );
    drop(served);
}

/// A full disk under the real binary: once the ledger cannot write, the calls that record
/// something are refused with the spec's error body (503, code 216) rather than forwarded
/// unrecorded; readiness turns 503 and names the disk as the cause, and so do the metrics and
/// the log, while the reads still answer. Once the space is freed and the hub restarted,
/// every onboarding it acknowledged is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_ledger_and_readiness_names_it() {
    let mut site = Site::new().await;
    let Some(disk) = site.ledger_on_disk("fills") else {
        return;
    };
    // Checkpoints (sled's flush, which takes new blocks) every 50 ms: the full disk shows
    // within the first calls after it filled.
    site.edit_hub_toml("checkpoint_ms = 600000", "checkpoint_ms = 50");
    let served = site.serve().await;
    let partners = Partners::new(&site, served.addr());
    let admin = served.admin();
    let onboard = |token: Uuid| {
        let partners = partners.clone();
        async move {
            let path = format!("/cesim/msp/v1/users/{}", account_id("cmpone"));
            partners
                .call(
                    "mspalpha",
                    "cmpone",
                    Method::POST,
                    &path,
                    &bodies::msp_token(&token),
                )
                .await
                .expect("an answer from the hub")
        }
    };
    let mut acknowledged = Vec::new();
    let first = Uuid::new_v4();
    assert_eq!(onboard(first).await.status, 201, "an onboarding with room");
    acknowledged.push(first);
    assert_eq!(admin.get("/ready").await.status, 200);
    assert_metric(&admin.metrics().await, "aidhub_ledger_stopped", 0.0);

    let filled = disk.fill();
    assert!(filled > 0, "the filler took the free space");
    // sled first reuses the room its own files have (about 200 onboardings' worth here).
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let token = Uuid::new_v4();
        let reply = onboard(token).await;
        match reply.status.as_u16() {
            201 => acknowledged.push(token),
            503 => break reply,
            other => panic!("an onboarding on the full disk: {other} {:?}", reply.body),
        }
        assert!(
            Instant::now() < deadline,
            "still acknowledged 30 s after the disk filled ({} onboardings)",
            acknowledged.len()
        );
    };
    assert_eq!(refused.code().as_deref(), Some("216"), "{refused:?}");
    // From now on every change is refused before it is forwarded: the CMP never sees it.
    let unseen = Uuid::new_v4();
    let later = onboard(unseen).await;
    assert_eq!(
        (later.status.as_u16(), later.code().as_deref()),
        (503, Some("216"))
    );
    let token = unseen.to_string();
    assert!(
        !site.partners["cmpone"]
            .seen()
            .iter()
            .any(|seen| String::from_utf8_lossy(&seen.body).contains(&token)),
        "the refused onboarding reached the CMP"
    );

    let ready = admin.get("/ready").await;
    assert_eq!(ready.status, 503, "{}", ready.body);
    let body = ready.json();
    assert_eq!(body["ready"], false, "{body}");
    let cause = body["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("No space left on device") && cause.contains("restart the hub"),
        "readiness names the disk and what to do: {cause}"
    );
    assert_metric(&admin.metrics().await, "aidhub_ledger_stopped", 1.0);
    let log = site.logs.last().expect("the serve log").clone();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.contains("the ledger cannot write") && l.contains("No space left")),
        "the log names the failure:\n{text}"
    );

    // The operator frees the space and restarts the hub: nothing acknowledged is lost.
    drop(served);
    disk.free();
    let served = site.serve().await;
    assert_eq!(served.admin().get("/ready").await.status, 200);
    assert_metric(
        &served.admin().metrics().await,
        "aidhub_ledger_stopped",
        0.0,
    );
    let partners = Partners::new(&site, served.addr());
    for token in &acknowledged {
        let reply = partners
            .call(
                "cmpone",
                "mspalpha",
                Method::POST,
                &format!("/v1/statuses/{token}"),
                &bodies::csim_status("enabled"),
            )
            .await
            .expect("an answer from the restarted hub");
        assert!(
            reply.status.is_success(),
            "federation {token}, acknowledged before the disk filled up, after the restart: {} {:?}",
            reply.status,
            reply.body
        );
    }
}
