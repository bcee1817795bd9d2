//! The sled backend's own tests: the conformance suite, restarts, corrupt records and
//! group commit. The model-based test is in `model_tests.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::SledLedger;
use crate::ledger::codec::{encode, id_key};
use crate::ledger::conformance::{self, new_fed, new_req, pair_a, STALE_MS};
use crate::ledger::{
    ExportRecord, Federation, FederationState, Ledger, LedgerError, ProfileEvent, ProfileSource,
    Settle, Withdrawal,
};

/// A directory of its own under the system's temp dir, removed when dropped.
pub(super) struct TestDir(PathBuf);

impl TestDir {
    pub(super) fn new(name: &str) -> TestDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = format!("aidhub-ledger-{name}-{}-{nanos}-{n}", std::process::id());
        let path = std::env::temp_dir().join(dir);
        std::fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Every record, in export order.
pub(super) async fn dump(l: &dyn Ledger) -> Vec<ExportRecord> {
    let mut records = Vec::new();
    l.export(&mut |r| {
        records.push(r);
        Ok(())
    })
    .await
    .unwrap();
    records
}

#[tokio::test]
async fn conformance_suite() {
    for check in conformance::ALL {
        let dir = TestDir::new(check.name);
        let ledger = SledLedger::open(dir.path()).unwrap();
        eprintln!("conformance check {} on sled", check.name);
        (check.run)(&ledger).await;
    }
}

/// Something in every state, for the restart tests.
async fn populate(l: &SledLedger) -> (Uuid, Uuid) {
    let a = pair_a();
    let token = Uuid::new_v4();
    l.reserve_federation(Uuid::new_v4(), &a, 1, STALE_MS)
        .await
        .unwrap();
    l.confirm_federation(new_fed(token, &a, 2)).await.unwrap();
    let gone = Uuid::new_v4();
    l.learn_federation(new_fed(gone, &a, 3)).await.unwrap();
    let why = Some("moved".to_string());
    l.invalidate_federation(gone, crate::ledger::Withdrawal::MspNotified, why, 4)
        .await
        .unwrap();
    let open = Uuid::new_v4();
    l.open_request(new_req(open, token, &a, 5)).await.unwrap();
    l.settle_request(open, Settle::Async { deadline: 10_000 }, 6)
        .await
        .unwrap();
    let closed = Uuid::new_v4();
    l.open_request(new_req(closed, token, &a, 7)).await.unwrap();
    l.settle_request(closed, Settle::Refused { status: 422 }, 8)
        .await
        .unwrap();
    l.open_request(new_req(Uuid::new_v4(), token, &a, 9))
        .await
        .unwrap();
    let event = ProfileEvent {
        iccid: "8988303000000000001".into(),
        status: "enabled".into(),
        source: ProfileSource::CsimStatus,
    };
    l.record_profiles(token, &[event], 10).await.unwrap();
    (token, open)
}

#[tokio::test]
async fn reopen_after_drop_keeps_everything() {
    let dir = TestDir::new("reopen");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let (token, open) = populate(&ledger).await;
    let (before, stats) = (dump(&ledger).await, ledger.stats().await.unwrap());
    assert_eq!(before.len(), 7);
    let clone = ledger.clone();
    drop(ledger);
    drop(clone);

    let ledger = SledLedger::open(dir.path()).unwrap();
    assert_eq!(dump(&ledger).await, before);
    assert_eq!(ledger.stats().await.unwrap(), stats);
    // The reopened ledger carries on where the old one stopped.
    let a = pair_a();
    let claimed = ledger
        .claim_answer(open, &a.msp, &a.cmp, token, 20, STALE_MS)
        .await;
    assert!(claimed.is_ok(), "{claimed:?}");
    drop(ledger);
    let ledger = SledLedger::open(dir.path()).unwrap();
    let state = ledger.request(open).await.unwrap().unwrap().state.name();
    assert_eq!(state, "answering");
}

#[tokio::test]
async fn a_closed_request_leaves_the_map_once_written_and_sled_still_answers_for_it() {
    use super::behind::TreeId;
    let dir = TestDir::new("final");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let a = pair_a();
    let token = Uuid::new_v4();
    ledger
        .confirm_federation(new_fed(token, &a, 1))
        .await
        .unwrap();
    let (closed, open) = (Uuid::new_v4(), Uuid::new_v4());
    let settles = [
        (closed, Settle::Sync),
        (open, Settle::Async { deadline: 10_000 }),
    ];
    for (id, settle) in settles {
        let opened = ledger.open_request(new_req(id, token, &a, 2)).await;
        assert!(opened.is_ok(), "{opened:?}");
        let settled = ledger.settle_request(id, settle, 3).await;
        assert!(settled.is_ok(), "{settled:?}");
    }
    let store = &ledger.inner.store;
    store.flushed().await.unwrap();

    // Written: the closed request is gone from memory, the open one and the federation
    // (still in use) stay.
    assert!(!store.cached(TreeId::Requests, &id_key(closed)));
    assert!(store.cached(TreeId::Requests, &id_key(open)));
    assert!(store.cached(TreeId::Federations, &id_key(token)));

    // Nothing is lost: the lifecycle still sees the closed request, from sled.
    let state = ledger.request(closed).await.unwrap().unwrap().state.name();
    assert_eq!(state, "closed");
    let again = ledger.open_request(new_req(closed, token, &a, 4)).await;
    assert!(
        matches!(again, Err(LedgerError::DuplicateRequest)),
        "{again:?}"
    );
    let late = ledger
        .claim_answer(closed, &a.msp, &a.cmp, token, 5, STALE_MS)
        .await;
    assert!(late.is_err(), "a closed request takes no answer: {late:?}");
    assert_eq!(ledger.stats().await.unwrap().requests_closed, 1);
}

/// A key is listed for the writer when it becomes pending, not on every change: one changed
/// every few milliseconds (a hot profile, a renewed reservation) is written once per `AGE`,
/// not once per writer tick.
#[tokio::test]
async fn a_record_changed_again_and_again_is_written_once_per_age() {
    use super::behind::AGE;
    use std::time::Duration;

    let dir = TestDir::new("coalesce");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let store = &ledger.inner.store;
    let token = Uuid::new_v4();
    let before = store.writes();
    let started = Instant::now();
    // A reservation renewed every 10 ms: a change nothing waits for, always to one key.
    for at in 0..60 {
        ledger
            .reserve_federation(token, &pair_a(), at, STALE_MS)
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let elapsed = started.elapsed();
    store.flushed().await.unwrap();
    let writes = store.writes() - before;
    // One write per AGE while it changed, one at the end, and the flush's. Listed on every
    // change, it was written about once per writer tick (50 ms) once the first change aged.
    let most = (elapsed.as_millis() / AGE.as_millis()) as u64 + 2;
    assert!(
        (1..=most).contains(&writes),
        "{writes} sled writes for one key changed over {elapsed:?} (expected 1 to {most})"
    );
    // The last change is the one sled has.
    drop(ledger);
    let ledger = SledLedger::open(dir.path()).unwrap();
    let reserved = ledger.federation(token).await.unwrap().unwrap();
    assert_eq!(reserved.state, FederationState::Reserved { at: 59 });
}

/// A change made while the writer writes the key's previous value finds the key pending and
/// is not listed then; the writer lists it once it sees the change, and writes it in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_while_its_key_is_written_is_written_too() {
    use super::behind::{TreeId, AGE};
    use std::time::Duration;

    let dir = TestDir::new("relist");
    let ledger = Arc::new(SledLedger::open(dir.path()).unwrap());
    let token = Uuid::new_v4();
    ledger.inner.store.pause(true);
    ledger
        .reserve_federation(token, &pair_a(), 1, STALE_MS)
        .await
        .unwrap();
    tokio::time::sleep(AGE + Duration::from_millis(100)).await;
    // The writer is held right after it has put the first value into sled.
    let held = HeldRound::hold(ledger).await;
    let HeldRound { ledger, go, .. } = held;
    ledger
        .reserve_federation(token, &pair_a(), 2, STALE_MS)
        .await
        .unwrap();
    drop(go);

    // No flush is asked for: the second value reaches sled once it has aged.
    let tree = ledger.inner.store.tree(TreeId::Federations);
    let deadline = Instant::now() + AGE + Duration::from_secs(10);
    loop {
        let stored = tree.get(id_key(token)).unwrap().unwrap();
        let stored: Federation = crate::ledger::codec::decode(&id_key(token), &stored).unwrap();
        if stored.state == (FederationState::Reserved { at: 2 }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the change made during the write never reached sled: {:?}",
            stored.state
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn unknown_schema_version_is_an_error_naming_the_key() {
    let dir = TestDir::new("corrupt");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let learned = Uuid::new_v4();
    let mut fed = ledger
        .learn_federation(new_fed(learned, &pair_a(), 1))
        .await
        .unwrap();
    // A record the ledger has not read yet, stored by a future version.
    let token = Uuid::new_v4();
    fed.msp_token = token;
    let mut value = encode(&fed);
    value[0] = 3;
    let federations = super::behind::TreeId::Federations;
    let store = &ledger.inner.store;
    store
        .tree(federations)
        .insert(id_key(token), value)
        .unwrap();
    store.note_stored(federations, &id_key(token));
    let expected = LedgerError::Corrupt {
        key: format!("federation/{token}"),
        reason: "unknown schema version tag 3".into(),
    };
    assert_eq!(ledger.federation(token).await, Err(expected.clone()));
    let reserve = ledger
        .reserve_federation(token, &pair_a(), 2, STALE_MS)
        .await;
    assert_eq!(reserve, Err(expected.clone()));
    drop(ledger);
    // A database this version cannot read is refused at start-up, not mid-request.
    assert_eq!(SledLedger::open(dir.path()).err(), Some(expected));
}

/// A ledger written before the binary layout holds JSON values: they are read, counted at
/// start-up, and a record is rewritten in the binary layout when it next changes.
#[tokio::test]
async fn json_records_of_an_older_ledger_are_read_and_rewritten_binary() {
    let dir = TestDir::new("json-v1");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let token = Uuid::new_v4();
    let pair = pair_a();
    let old = Federation {
        msp_token: token,
        pair: pair.clone(),
        sid: None,
        subscription_type: Some("private".into()),
        created_at: 1,
        learned: false,
        state: FederationState::Active,
    };
    let json = [&[1u8][..], &serde_json::to_vec(&old).unwrap()].concat();
    let federations = super::behind::TreeId::Federations;
    let store = &ledger.inner.store;
    store.tree(federations).insert(id_key(token), json).unwrap();
    store.note_stored(federations, &id_key(token));
    drop(ledger);

    let ledger = SledLedger::open(dir.path()).unwrap();
    assert_eq!(ledger.stats().await.unwrap().federations_active, 1);
    assert_eq!(ledger.federation(token).await.unwrap(), Some(old.clone()));
    ledger
        .invalidate_federation(token, Withdrawal::Operator, None, 2)
        .await
        .unwrap();
    ledger.flush().await.unwrap();
    let stored = ledger.inner.store.tree(federations).get(id_key(token));
    assert_eq!(
        stored.unwrap().unwrap()[0],
        2,
        "rewritten in the binary layout"
    );
    drop(ledger);

    let ledger = SledLedger::open(dir.path()).unwrap();
    let stats = ledger.stats().await.unwrap();
    assert_eq!(
        (stats.federations_active, stats.federations_invalid),
        (0, 1)
    );
    let read = ledger.federation(token).await.unwrap().unwrap();
    assert_eq!(
        read.state,
        FederationState::Invalid {
            at: 2,
            by: Withdrawal::Operator,
            reason: None
        }
    );
    assert_eq!(
        (read.pair, read.subscription_type),
        (pair, old.subscription_type)
    );
}

#[tokio::test]
async fn writes_an_answer_depends_on_wait_for_a_flush_and_only_those() {
    let dir = TestDir::new("flush");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let before = ledger.flush_count();
    let token = Uuid::new_v4();
    // A reservation protects nothing once the process is gone: not waited for.
    ledger
        .reserve_federation(token, &pair_a(), 1, STALE_MS)
        .await
        .unwrap();
    assert_eq!(ledger.flush_count(), before);
    // The federation the MSP's 201 announces is.
    ledger
        .confirm_federation(crate::ledger::NewFederation {
            msp_token: token,
            pair: pair_a(),
            sid: None,
            subscription_type: None,
            at: 2,
        })
        .await
        .unwrap();
    assert_eq!(ledger.flush_count(), before + 1);
    // A refusal that rests on a durable write waits too.
    let other = crate::ledger::Pair::new("m9", "c9");
    let taken = ledger.reserve_federation(token, &other, 3, STALE_MS).await;
    assert_eq!(taken, Err(LedgerError::TokenTaken));
    // Opening a request is not waited for; settling it as asynchronous (the CMP's 201) is.
    let id = Uuid::new_v4();
    ledger
        .open_request(crate::ledger::NewAcRequest {
            id,
            msp_token: token,
            pair: pair_a(),
            at: 4,
        })
        .await
        .unwrap();
    assert_eq!(ledger.flush_count(), before + 1);
    ledger
        .settle_request(id, crate::ledger::Settle::Async { deadline: 100 }, 5)
        .await
        .unwrap();
    assert_eq!(ledger.flush_count(), before + 2);
    // Reads do not flush.
    ledger.federation(token).await.unwrap();
    ledger.stats().await.unwrap();
    assert_eq!(ledger.flush_count(), before + 2);
}

/// Run `writers` tasks doing `each` federation confirmations (durable writes) at once; the
/// ops/s and flushes made.
async fn concurrent_confirmations(ledger: &SledLedger, writers: usize, each: usize) -> (f64, u64) {
    let barrier = Arc::new(tokio::sync::Barrier::new(writers));
    let flushes = ledger.flush_count();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (ledger, barrier) = (ledger.clone(), Arc::clone(&barrier));
            tokio::spawn(async move {
                barrier.wait().await;
                for i in 0..each {
                    let fed = crate::ledger::NewFederation {
                        msp_token: Uuid::new_v4(),
                        pair: pair_a(),
                        sid: None,
                        subscription_type: None,
                        at: i as u64,
                    };
                    ledger.confirm_federation(fed).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let rate = (writers * each) as f64 / started.elapsed().as_secs_f64();
    (rate, ledger.flush_count() - flushes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_flushes() {
    let dir = TestDir::new("group");
    let ledger = SledLedger::open(dir.path()).unwrap();
    // Hold the flusher until all 64 writers wait, as they would behind a slow disk.
    ledger.inner.store.pause(true);
    let writers = tokio::spawn({
        let ledger = ledger.clone();
        async move { concurrent_confirmations(&ledger, 64, 1).await }
    });
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while ledger.flush_waiters() < 64 {
        assert!(Instant::now() < deadline, "writers never queued up");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    ledger.inner.store.pause(false);
    let (_, flushes) = writers.await.unwrap();
    assert!(flushes <= 2, "64 queued writers cost {flushes} flushes");
    assert_eq!(ledger.flush_waiters(), 0);
    assert_eq!(ledger.stats().await.unwrap().federations_active, 64);

    // Unheld, on whatever disk this is: still fewer flushes than writers.
    let (_, flushes) = concurrent_confirmations(&ledger, 64, 4).await;
    assert!(flushes < 256, "256 writes cost {flushes} flushes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_callers_have_one_winner() {
    let dir = TestDir::new("race");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let (a, token, rid) = (pair_a(), Uuid::new_v4(), Uuid::new_v4());
    ledger
        .open_request(new_req(rid, token, &a, 1))
        .await
        .unwrap();
    ledger
        .settle_request(rid, Settle::Async { deadline: 1_000 }, 2)
        .await
        .unwrap();

    let claims: Vec<_> = (0..32)
        .map(|_| {
            let (ledger, a) = (ledger.clone(), a.clone());
            tokio::spawn(async move {
                ledger
                    .claim_answer(rid, &a.msp, &a.cmp, token, 3, STALE_MS)
                    .await
            })
        })
        .collect();
    let reservations: Vec<_> = (0..32)
        .map(|i| {
            let ledger = ledger.clone();
            let pair = crate::ledger::Pair::new("m1", format!("c{i}"));
            tokio::spawn(async move { ledger.reserve_federation(token, &pair, 3, STALE_MS).await })
        })
        .collect();
    let mut claimed = Vec::new();
    for task in claims {
        claimed.push(task.await.unwrap());
    }
    let mut reserved = Vec::new();
    for task in reservations {
        reserved.push(task.await.unwrap());
    }
    assert_eq!(claimed.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(claimed
        .iter()
        .all(|r| r.is_ok() || *r == Err(LedgerError::RequestBusy)));
    assert_eq!(reserved.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(reserved
        .iter()
        .all(|r| r.is_ok() || *r == Err(LedgerError::TokenTaken)));
    let stats = ledger.stats().await.unwrap();
    assert_eq!((stats.requests_answering, stats.requests_open), (1, 0));
    assert_eq!(stats.federations_reserved, 1);
}

/// Prints throughput; run with `cargo test timing_report -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "timing report, not a check"]
async fn timing_report() {
    let dir = TestDir::new("timing");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let (single, single_flushes) = concurrent_confirmations(&ledger, 1, 500).await;
    println!("single writer: 500 ops, {single:.0} ops/s, {single_flushes} flushes");
    let (many, many_flushes) = concurrent_confirmations(&ledger, 64, 50).await;
    println!(
        "64 writers: {} ops, {many:.0} ops/s, {many_flushes} flushes",
        64 * 50
    );
    let started = Instant::now();
    for _ in 0..1_000 {
        ledger.stats().await.unwrap();
    }
    println!("stats: {:?} per call", started.elapsed() / 1_000);

    let lines: Vec<_> = (0..200_000)
        .map(|i| new_fed(Uuid::new_v4(), &pair_a(), i))
        .collect();
    let started = Instant::now();
    let report = ledger.import_federations(lines).await.unwrap();
    println!(
        "import: {} federations in {:?}",
        report.added,
        started.elapsed()
    );
    drop(ledger);
    let started = Instant::now();
    let ledger = SledLedger::open(dir.path()).unwrap();
    let stats = ledger.stats().await.unwrap();
    let records = stats.federations_active + stats.federations_reserved;
    println!(
        "reopen: {records} records counted in {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_storage_failure_stops_writes_and_keeps_what_was_acknowledged() {
    let dir = TestDir::new("failstop");
    let ledger = SledLedger::open(dir.path()).unwrap();
    let before = Uuid::new_v4();
    ledger
        .learn_federation(new_fed(before, &pair_a(), 1))
        .await
        .unwrap();
    assert_eq!(ledger.failure(), None, "a working ledger");
    ledger.inner.store.fail_next_round("disk on fire");
    let during = ledger
        .learn_federation(new_fed(Uuid::new_v4(), &pair_a(), 2))
        .await;
    assert_eq!(during, Err(LedgerError::Storage("disk on fire".into())));
    // From now on every change is refused, naming why; reads still answer.
    let after = ledger
        .reserve_federation(Uuid::new_v4(), &pair_a(), 3, STALE_MS)
        .await;
    assert!(
        matches!(&after, Err(LedgerError::Storage(cause))
            if cause.contains("(disk on fire)") && cause.contains("restart the hub")),
        "{after:?}"
    );
    // Readiness and the metrics ask the same question, and hear the same cause.
    assert_eq!(ledger.failure(), after.err());
    assert!(ledger.federation(before).await.unwrap().is_some());
    drop(ledger);
    // The restarted ledger has what was acknowledged before the failure.
    let ledger = SledLedger::open(dir.path()).unwrap();
    assert!(ledger.federation(before).await.unwrap().is_some());
}

/// A ledger whose writer is held after each slice of sled inserts of a round, until told to
/// go on ([`HeldRound::start`]: a backlog of `4 * SLICE` reservations, changes nothing waits
/// for).
struct HeldRound {
    // Dropped first (fields drop in this order): a held writer goes on before the ledger's
    // drop joins it, also when a check fails.
    go: std::sync::mpsc::Sender<()>,
    slices: Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
    ledger: Arc<SledLedger>,
}

impl HeldRound {
    async fn start(dir: &TestDir) -> HeldRound {
        use super::behind::{AGE, SLICE};
        let ledger = Arc::new(SledLedger::open(dir.path()).unwrap());
        ledger.inner.store.pause(true);
        for i in 0..4 * SLICE {
            ledger
                .reserve_federation(Uuid::new_v4(), &pair_a(), i as u64, STALE_MS)
                .await
                .unwrap();
        }
        tokio::time::sleep(AGE + std::time::Duration::from_millis(100)).await;
        HeldRound::hold(ledger).await
    }

    /// Lets the paused writer of `ledger` go and holds it after its first slice.
    async fn hold(ledger: Arc<SledLedger>) -> HeldRound {
        let store = &ledger.inner.store;
        let (at_slice, slices) = std::sync::mpsc::channel::<()>();
        let (go, gate) = std::sync::mpsc::channel::<()>();
        store.on_slice(move || {
            let _ = at_slice.send(());
            let _ = gate.recv();
        });
        store.pause(false);
        let held = HeldRound {
            go,
            slices: Arc::new(std::sync::Mutex::new(slices)),
            ledger,
        };
        held.next_slice().await;
        held
    }

    /// Waits until the writer is held after its next slice.
    async fn next_slice(&self) {
        let slices = Arc::clone(&self.slices);
        tokio::task::spawn_blocking(move || {
            slices
                .lock()
                .unwrap()
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the writer reached the next slice")
        })
        .await
        .unwrap();
    }

    /// Lets the writer go on once a caller waits for it; returns when it is held after the
    /// next slice.
    async fn resume_once_waiting(&self) {
        while self.ledger.inner.store.waiting() == 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        self.go.send(()).unwrap();
        self.next_slice().await;
    }
}

#[tokio::test]
async fn a_caller_that_waits_wakes_the_sleeping_writer_at_once() {
    use super::behind::IDLE_TICK;
    use std::time::Duration;

    let dir = TestDir::new("wake");
    let ledger = SledLedger::open(dir.path()).unwrap();
    // Nothing pending: the writer goes to sleep for its idle tick.
    let asleep = || async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ledger.inner.store.asleep() {
            assert!(Instant::now() < deadline, "the writer never went to sleep");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    };
    // Not a speed check: a writer that missed the signal answers at its idle tick.
    let prompt = |what: &str, started: Instant| {
        let took = started.elapsed();
        assert!(
            took < IDLE_TICK / 2,
            "{what} waited {took:?} for a sleeping writer (idle tick {IDLE_TICK:?})"
        );
    };
    for i in 0..5 {
        ledger.flush().await.unwrap();
        let started = asleep().await;
        // A durable write: its change is queued, then its caller waits for the journal.
        let token = Uuid::new_v4();
        ledger
            .learn_federation(new_fed(token, &pair_a(), i))
            .await
            .unwrap();
        prompt("a durable write", started);
        assert!(ledger.federation(token).await.unwrap().is_some());
        // A flush: nothing is queued, only the caller waits.
        ledger.flush().await.unwrap();
        let started = asleep().await;
        ledger.flush().await.unwrap();
        prompt("a flush", started);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_write_is_not_held_up_behind_a_round_of_sled_inserts() {
    use super::behind::SLICE;
    use std::time::Duration;

    let dir = TestDir::new("slices");
    let held = HeldRound::start(&dir).await;
    // Mid-round, a caller starts a durable write and waits for it.
    let learned = Uuid::new_v4();
    let ledger = Arc::clone(&held.ledger);
    let durable = tokio::spawn(async move {
        ledger
            .learn_federation(new_fed(learned, &pair_a(), 1))
            .await
    });
    held.resume_once_waiting().await;
    // It is answered while the round is still held at its second slice.
    let answered = tokio::time::timeout(Duration::from_secs(10), durable).await;
    assert!(
        matches!(answered, Ok(Ok(Ok(_)))),
        "the durable write waited for the whole round: {answered:?}"
    );
    let HeldRound { ledger, go, .. } = held;
    drop(go);
    ledger.flush().await.unwrap();
    let reserved = ledger.stats().await.unwrap().federations_reserved;
    assert_eq!(reserved, 4 * SLICE as u64);
    drop(ledger);
    let ledger = SledLedger::open(dir.path()).unwrap();
    assert!(ledger.federation(learned).await.unwrap().is_some());
    assert_eq!(
        ledger.stats().await.unwrap().federations_reserved,
        4 * SLICE as u64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_import_waits_for_the_next_round_instead_of_outrunning_sled() {
    use super::behind::MID_ROUND_MAX;

    let dir = TestDir::new("bulk");
    let held = HeldRound::start(&dir).await;
    let lines: Vec<_> = (0..=MID_ROUND_MAX as u64)
        .map(|i| new_fed(Uuid::new_v4(), &pair_a(), i))
        .collect();
    let ledger = Arc::clone(&held.ledger);
    let import = tokio::spawn(async move { ledger.import_federations(lines).await });
    held.resume_once_waiting().await;
    // Held at the second slice: the import is still waiting (it was not taken mid-round).
    assert_eq!(held.ledger.inner.store.waiting(), 1);
    drop(held.go);
    let report = import.await.unwrap().unwrap();
    assert_eq!(report.added, MID_ROUND_MAX as u64 + 1);
}
