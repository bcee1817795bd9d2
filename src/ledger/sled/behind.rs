//! Write-behind: the request path reads and changes records in memory, one writer thread
//! puts the changes into sled, and a caller that needs its write on disk waits for the
//! writer's next sync.
//!
//! The map holds records decoded, by key: the ones changed and not yet written (pending),
//! and the ones read or written lately (a cache, so that the request path neither looks
//! into sled nor parses JSON for a federation it saw a moment ago). A change is a
//! read-modify-write of one key under that key's lock in the map: take the record in the
//! map (or read it from sled into the map), apply the caller's rule, keep the result as
//! pending with a sequence number. Every caller sees every change at once, whether or not
//! sled has it yet. A final record (a closed activation-code request: nearly every
//! request's own record ends so within moments) leaves the map as soon as it is written,
//! which keeps the map to the records in use; any other record nobody used for an
//! [`EVICT_EVERY`] leaves it once it is written; sled has them. Past [`MAX_CACHED`] records
//! (a bulk import, a burst of open requests) every written record leaves at the next
//! check, used or not.
//!
//! The writer thread runs a round when a caller waits ([`WriteBehind::durable`],
//! [`WriteBehind::flushed`]) and otherwise every [`TICK`]. A round puts into sled the
//! pending values of keys changed by a durable write (the writes an answer relayed to a
//! partner depends on; the backend's module docs list them) and of keys pending for longer
//! than [`AGE`]. The durable ones are also written to the journal (`journal.rs`) and synced
//! there, once for all of them (group commit), before their callers are woken. A written key
//! stays in the map as a cache, no longer pending (unless it changed again meanwhile). A key
//! is listed for the writer when it becomes pending, not on every change, so a record
//! changed again and again (a request opened and closed, a profile reported over and over)
//! costs sled one write per [`AGE`] at most, and a burst of durable writes one `fdatasync`.
//! Every checkpoint interval (`ledger.checkpoint_ms`, [`CHECKPOINT_EVERY`] by default) the
//! writer flushes sled and starts the journal over.
//!
//! A round syncs the journal first and wakes the durable waiters, and only then puts the
//! round's changes into sled, [`SLICE`] at a time: a caller that starts waiting for a durable
//! write meanwhile has its change journalled, synced and added to the round between two
//! slices, instead of waiting behind a few hundred sled inserts (small groups only, and a
//! bounded number per round: a bulk import is held back to sled's pace by waiting for the
//! next round). A storage failure (the journal or sled) stops the writer for
//! good: durable waiters and every later change get the failure, nothing is checkpointed any
//! more, and the journal keeps what was acknowledged for the replay after a restart.
//!
//! What a durable waiter is promised: every durable write made before it waited is on disk
//! (with the state it built on: a durable write's record includes the earlier changes to the
//! same key). Other writes reach sled within [`AGE`] and the disk with the next checkpoint:
//! they protect nothing once the process is gone. Replaying the journal after a crash puts
//! back the last durable state of each key it names, possibly over a later change that was
//! not durable.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use sled::{IVec, Tree};
use tokio::sync::oneshot;

use super::filter::KeyFilter;
use super::journal::{self, Journal};
use crate::ledger::codec::{decode, AnyRecord, Record, TYPICAL_SIZE};
use crate::ledger::LedgerError;
use crate::metrics::Histogram;

/// How long a change nothing waits for may stay in memory only.
pub(super) const AGE: Duration = Duration::from_millis(250);
/// How often the writer looks for aged changes when no caller waits.
pub(super) const TICK: Duration = Duration::from_millis(50);
/// How often the writer wakes when nothing is pending (to checkpoint and evict).
pub(super) const IDLE_TICK: Duration = Duration::from_millis(500);
/// How often sled is flushed and the journal emptied, when something was written (the
/// default of `ledger.checkpoint_ms`).
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The journal size that triggers a checkpoint before [`CHECKPOINT_EVERY`].
const CHECKPOINT_BYTES: u64 = 2 << 20;
/// A sync that takes longer is logged as a warning: the disk stalled, and durable answers
/// waited for it (most syncs take a fraction of a millisecond; the metric has them all).
const SLOW_SYNC: Duration = Duration::from_millis(100);
/// How many changes go into sled between two looks for callers waiting on a durable write
/// (a few hundred microseconds of inserts).
pub(super) const SLICE: usize = 32;
/// The most changes of durable callers a round takes on between its slices.
pub(super) const MID_ROUND_MAX: usize = 256;
/// How often records nobody used since the last time leave the map.
pub(super) const EVICT_EVERY: Duration = Duration::from_secs(10);
/// The most records the map keeps beyond those not yet written (about 100 MiB).
pub(super) const MAX_CACHED: usize = 200_000;

/// The trees behind the write-behind map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum TreeId {
    Federations = 0,
    Requests = 1,
    Profiles = 2,
}

type Key = (TreeId, IVec);

/// What a rule does to a key.
pub(super) enum Change<T> {
    /// Store this record.
    Put(T),
    /// Remove the key.
    Delete,
}

/// A key in the map: its record (`None`: no such record, or removed), and whether that is
/// still to be written.
struct Slot {
    record: Option<AnyRecord>,
    /// The change that made it (0: read from sled).
    seq: u64,
    /// Not yet in sled.
    pending: bool,
    /// Pending and made (or built on) by a durable write.
    durable: bool,
    /// Used since the last eviction pass.
    used: AtomicBool,
}

impl Slot {
    fn read(record: Option<AnyRecord>) -> Slot {
        Slot {
            record,
            seq: 0,
            pending: false,
            durable: false,
            used: AtomicBool::new(true),
        }
    }

    /// The record, if it is a `T`; marks the slot used.
    fn view<T: Record>(&self, key: &[u8]) -> Result<Option<&T>, LedgerError> {
        // Only write when it changes: hot records are read by every serving thread.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
        match &self.record {
            None => Ok(None),
            Some(any) => T::unwrap(any)
                .map(Some)
                .ok_or_else(|| LedgerError::Corrupt {
                    key: crate::ledger::codec::key_name::<T>(key),
                    reason: "a record of another kind under this key".into(),
                }),
        }
    }
}

/// Wakes one waiter with the result of the round that covered it.
type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Default)]
struct Control {
    /// Callers waiting for the durable writes made before they waited to be on disk.
    durable: Vec<Waiter>,
    /// Callers waiting for every change made before they waited to be in sled and on disk
    /// (before a scan of the trees, after a write straight to sled).
    flushed: Vec<Waiter>,
    stop: bool,
    /// The writer sleeps on `wake`. Only then does a caller with work for it signal it:
    /// while it runs, it looks at these lists (under this lock) before it sleeps again, and
    /// a signal would be a system call for nothing.
    asleep: bool,
}

#[derive(Default)]
struct Queues {
    /// Keys that became pending, oldest first: a key is listed when a change finds it
    /// written (or absent), and once more if it changed again while the writer wrote it; its
    /// later changes ride on that listing, so a key is written at most once per [`AGE`] unless
    /// a durable write asks for it sooner. (A key may appear more than once.)
    changed: VecDeque<(Instant, Key)>,
    /// Keys changed by durable writes since the last round.
    durable: Vec<Key>,
}

struct Shared {
    db: sled::Db,
    /// The keys there may be.
    filter: KeyFilter,
    /// How often to checkpoint.
    checkpoint: Duration,
    /// The writer's own state.
    journal: Mutex<Journal>,
    trees: [Tree; 3],
    map: DashMap<Key, Slot, foldhash::quality::RandomState>,
    seq: AtomicU64,
    queues: Mutex<Queues>,
    control: Mutex<Control>,
    wake: Condvar,
    /// Journal syncs, timed: the flushes durable writes waited for.
    journal_syncs: Histogram,
    /// Checkpoints (a sled flush and the journal started over), timed.
    checkpoints: Histogram,
    writes: AtomicU64,
    updates: AtomicU64,
    waiting: AtomicU64,
    paused: AtomicBool,
    /// Why the writer stopped after a storage failure, once it has: changes are refused.
    failed: OnceLock<String>,
    /// Tests make the next round fail with this.
    #[cfg(test)]
    inject: Mutex<Option<String>>,
    /// Tests run this after each slice of sled inserts.
    #[cfg(test)]
    slice_hook: Mutex<Option<Box<dyn FnMut() + Send>>>,
}

/// The write-behind map and its writer thread; dropping it writes and flushes what is
/// pending, then joins the thread.
pub(super) struct WriteBehind {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl WriteBehind {
    /// Replays the journal of the ledger in `dir` into `trees` (in [`TreeId`] order) of `db`,
    /// then starts the writer.
    pub(super) fn start(
        dir: &std::path::Path,
        db: sled::Db,
        trees: [Tree; 3],
        checkpoint: Duration,
    ) -> Result<WriteBehind, LedgerError> {
        let path = journal::path(dir);
        let (epoch, replayed) = journal::read(&path)?;
        for entry in &replayed {
            let tree = &trees[entry.tree as usize];
            match &entry.value {
                Some(value) => tree.insert(&entry.key, value.clone())?,
                None => tree.remove(&entry.key)?,
            };
        }
        db.flush()?;
        let journal = Journal::open(path, epoch)?;
        if !replayed.is_empty() {
            tracing::info!(
                records = replayed.len(),
                "replayed the ledger journal (durable writes since the last checkpoint)"
            );
        }
        let keys = trees.iter().map(Tree::len).sum();
        let filter = KeyFilter::with_capacity(keys);
        for id in [TreeId::Federations, TreeId::Requests, TreeId::Profiles] {
            for key in trees[id as usize].iter().keys() {
                filter.insert(id, &key?);
            }
        }
        let shared = Arc::new(Shared {
            db,
            filter,
            checkpoint,
            journal: Mutex::new(journal),
            trees,
            // Keys come from partners (request ids, ICCIDs): a seeded hasher of good
            // quality, and enough shards that two serving threads and the writer rarely meet.
            map: DashMap::with_hasher_and_shard_amount(Default::default(), 64),
            seq: AtomicU64::new(0),
            queues: Mutex::default(),
            control: Mutex::default(),
            wake: Condvar::new(),
            journal_syncs: Histogram::default(),
            checkpoints: Histogram::default(),
            writes: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            waiting: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            failed: OnceLock::new(),
            #[cfg(test)]
            inject: Mutex::default(),
            #[cfg(test)]
            slice_hook: Mutex::default(),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|e| LedgerError::Storage(format!("cannot start the ledger writer: {e}")))?;
        Ok(WriteBehind {
            shared,
            thread: Some(thread),
        })
    }

    /// The tree `id` (for scans, after [`WriteBehind::flushed`]).
    pub(super) fn tree(&self, id: TreeId) -> &Tree {
        &self.shared.trees[id as usize]
    }

    /// The record at `key` (from the map, else from sled into the map).
    pub(super) fn get<T: Record>(
        &self,
        tree: TreeId,
        key: &[u8],
    ) -> Result<Option<T>, LedgerError> {
        self.read(tree, key, |record: Option<&T>| record.cloned())
    }

    /// `f` of the record under `key` (`None`: no such record), read in place under the map's
    /// guard: `f` must be quick and must not touch the ledger.
    pub(super) fn read<T: Record, R>(
        &self,
        tree: TreeId,
        key: &[u8],
        f: impl FnOnce(Option<&T>) -> R,
    ) -> Result<R, LedgerError> {
        let key: Key = (tree, IVec::from(key));
        if let Some(slot) = self.shared.map.get(&key) {
            return slot.view(&key.1).map(f);
        }
        // Read sled under the key's lock, so that no change can slip in between.
        match self.shared.map.entry(key.clone()) {
            Entry::Occupied(slot) => slot.get().view(&key.1).map(f),
            Entry::Vacant(vacant) => {
                let record = self.load::<T>(&key)?;
                let result = f(record.as_ref());
                vacant.insert(Slot::read(record.map(T::wrap)));
                Ok(result)
            }
        }
    }

    fn load<T: Record>(&self, key: &Key) -> Result<Option<T>, LedgerError> {
        if !self.shared.filter.may_contain(key.0, &key.1) {
            return Ok(None);
        }
        self.tree(key.0)
            .get(&key.1)?
            .map(|v| decode::<T>(&key.1, &v))
            .transpose()
    }

    /// Applies `rule` to the record at `key` under the key's lock and keeps what it changes.
    /// `durable` marks a write an answer depends on (see [`WriteBehind::durable`]).
    pub(super) fn update<T: Record, R>(
        &self,
        tree: TreeId,
        key: &[u8],
        durable: bool,
        rule: impl FnOnce(Option<&T>) -> Result<(Option<Change<T>>, R), LedgerError>,
    ) -> Result<R, LedgerError> {
        let shared = &*self.shared;
        if let Some(cause) = shared.failed.get() {
            return Err(stopped_by(cause));
        }
        let key: Key = (tree, IVec::from(key));
        let (reply, durable, listed) = match shared.map.entry(key.clone()) {
            Entry::Occupied(mut slot) => {
                let (change, reply) = rule(slot.get().view::<T>(&key.1)?)?;
                let Some(change) = change else {
                    return Ok(reply);
                };
                // A pending key is listed already: the writer writes what the slot holds
                // when that listing is due, this change included.
                let listed = slot.get().pending;
                // A pending durable change stays durable under the changes built on it.
                let durable = durable || (listed && slot.get().durable);
                *slot.get_mut() = self.slot(change, durable);
                (reply, durable, listed)
            }
            Entry::Vacant(vacant) => {
                let current = self.load::<T>(&key)?;
                let (change, reply) = rule(current.as_ref())?;
                let Some(change) = change else {
                    vacant.insert(Slot::read(current.map(T::wrap)));
                    return Ok(reply);
                };
                vacant.insert(self.slot(change, durable));
                (reply, durable, false)
            }
        };
        self.queue(key, durable, listed);
        Ok(reply)
    }

    /// Lists a changed key for the writer: in `changed` unless it is `listed` there already
    /// (it was pending), in `durable` if the change is.
    fn queue(&self, key: Key, durable: bool, listed: bool) {
        let shared = &*self.shared;
        if listed {
            // Its listing writes this change too when due; a durable change cannot wait that
            // long. (The key filter has the key since it was listed.)
            if durable {
                lock(&shared.queues).durable.push(key);
            }
            return;
        }
        shared.filter.insert(key.0, &key.1);
        let mut queues = lock(&shared.queues);
        let was_empty = queues.changed.is_empty();
        queues.changed.push_back((Instant::now(), key.clone()));
        if durable {
            queues.durable.push(key);
        }
        drop(queues);
        if was_empty {
            // The writer sleeps while nothing is pending: it has something to age now. (It
            // looks at the queue under the control lock, so taking that lock first means it
            // either sees this change or is already asleep and gets the signal.)
            let control = lock(&shared.control);
            if control.asleep {
                shared.wake.notify_one();
            }
        }
    }

    /// A pending slot for `change`, with the next sequence number.
    fn slot<T: Record>(&self, change: Change<T>, durable: bool) -> Slot {
        let shared = &*self.shared;
        shared.updates.fetch_add(1, Ordering::Relaxed);
        Slot {
            record: match change {
                Change::Put(record) => Some(record.wrap()),
                Change::Delete => None,
            },
            seq: shared.seq.fetch_add(1, Ordering::AcqRel) + 1,
            pending: true,
            durable,
            used: AtomicBool::new(true),
        }
    }

    /// Waits until every durable write made before this call is on disk (in the journal).
    pub(super) async fn durable(&self) -> Result<(), LedgerError> {
        self.wait(|c| &mut c.durable).await
    }

    /// Waits until every change made before this call is in sled and sled has flushed: a
    /// scan of the trees sees it, and writes made straight to sled are on disk.
    pub(super) async fn flushed(&self) -> Result<(), LedgerError> {
        self.wait(|c| &mut c.flushed).await
    }

    async fn wait(&self, list: fn(&mut Control) -> &mut Vec<Waiter>) -> Result<(), LedgerError> {
        let stopped = || LedgerError::Storage("the ledger writer has stopped".into());
        let (waiter, woken) = oneshot::channel();
        let asleep = {
            let mut control = lock(&self.shared.control);
            if control.stop {
                return Err(stopped());
            }
            list(&mut control).push(waiter);
            // Counted under the lock the writer takes the waiter under: it cannot count the
            // waiter off (`wake`) before it was counted in.
            self.shared.waiting.fetch_add(1, Ordering::Relaxed);
            control.asleep
        };
        if asleep {
            self.shared.wake.notify_one();
        }
        match woken.await {
            Ok(result) => result.map_err(LedgerError::Storage),
            Err(_) => Err(stopped()),
        }
    }

    /// Why the writer stopped for good after a storage failure, if it has.
    pub(super) fn failure(&self) -> Option<LedgerError> {
        self.shared.failed.get().map(|cause| stopped_by(cause))
    }

    /// How many times the writer has synced the journal for durable writes.
    pub(super) fn flushes(&self) -> u64 {
        self.shared.journal_syncs.count()
    }

    /// How long the journal's syncs and the checkpoints took, for the metrics.
    pub(super) fn sync_times(&self) -> Vec<(&'static str, &Histogram)> {
        vec![
            ("journal", &self.shared.journal_syncs),
            ("checkpoint", &self.shared.checkpoints),
        ]
    }

    /// How many callers wait for the writer right now.
    pub(super) fn waiting(&self) -> u64 {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    /// How many records the writer has put into sled (tests only).
    #[cfg(test)]
    pub(super) fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// Notes that sled holds `key`, put there behind the map's back (tests only).
    #[cfg(test)]
    pub(super) fn note_stored(&self, tree: TreeId, key: &[u8]) {
        self.shared.filter.insert(tree, key);
    }

    /// Makes the writer's next write (a round, or durable callers taken mid-round) fail with
    /// `cause`, as a storage failure would.
    #[cfg(test)]
    pub(super) fn fail_next_round(&self, cause: &str) {
        *lock(&self.shared.inject) = Some(cause.to_owned());
    }

    /// Whether the writer sleeps now, waiting for a signal or its tick.
    #[cfg(test)]
    pub(super) fn asleep(&self) -> bool {
        lock(&self.shared.control).asleep
    }

    /// Runs `hook` on the writer thread after each slice of sled inserts.
    #[cfg(test)]
    pub(super) fn on_slice(&self, hook: impl FnMut() + Send + 'static) {
        *lock(&self.shared.slice_hook) = Some(Box::new(hook));
    }

    /// Whether the map holds `key` of `tree` now.
    #[cfg(test)]
    pub(super) fn cached(&self, tree: TreeId, key: &[u8]) -> bool {
        self.shared.map.contains_key(&(tree, IVec::from(key)))
    }

    /// Hold the writer back before its next round (`true`), or let it go.
    #[cfg(test)]
    pub(super) fn pause(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        let shared = &self.shared;
        tracing::info!(
            changes = shared.updates.load(Ordering::Relaxed),
            sled_writes = shared.writes.load(Ordering::Relaxed),
            journal_syncs = self.flushes(),
            checkpoints = shared.checkpoints.count(),
            "ledger writer stopping"
        );
        lock(&self.shared.control).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the ledger writer thread panicked");
            }
        }
    }
}

/// What one round does.
struct Round {
    durable: Vec<Waiter>,
    flushed: Vec<Waiter>,
    stop: bool,
}

impl Shared {
    fn run(&self) {
        let mut state = Writer {
            checkpointed: Instant::now(),
            unflushed: false,
            failed: None,
        };
        let mut evicted = Instant::now();
        let mut checked = Instant::now();
        loop {
            if evicted.elapsed() >= EVICT_EVERY {
                self.evict(false);
                evicted = Instant::now();
            } else if checked.elapsed() >= TICK {
                if self.map.len() > MAX_CACHED {
                    self.evict(true);
                }
                checked = Instant::now();
            }
            let round = self.next_round();
            while self.paused.load(Ordering::Relaxed) && !round.stop {
                std::thread::sleep(Duration::from_millis(1));
            }
            let stop = round.stop;
            self.round(round, &mut state);
            if stop {
                return;
            }
        }
    }

    /// One round, in the order that keeps durable callers waiting least: the durable
    /// changes into the journal and synced, their callers woken; then everything due into
    /// sled; then, when due or asked for, a checkpoint and the callers waiting for it.
    ///
    /// A failure of the journal or of sled stops the writer for good (fail-stop): every
    /// later round answers its callers with the failure, and nothing is checkpointed, so the
    /// journal keeps every durable change for the replay after the operator restarts the hub.
    fn round(&self, round: Round, state: &mut Writer) {
        let Round {
            mut durable,
            flushed,
            stop,
        } = round;
        let result = match &state.failed {
            Some(cause) => Err(cause.clone()),
            None => {
                let all = stop || !flushed.is_empty();
                let mut journal = lock(&self.journal);
                let result = self.write_round(all, &mut journal, state, &mut durable);
                if let Err(cause) = &result {
                    // Refuse changes before anyone hears of the failure.
                    let _ = self.failed.set(cause.clone());
                    tracing::error!(
                        %cause,
                        "the ledger cannot write: durable writes fail from now on; \
                         restart the hub once storage is fixed (the journal replays)"
                    );
                    state.failed = Some(cause.clone());
                }
                result
            }
        };
        wake(&self.waiting, durable, result.clone());
        wake(&self.waiting, flushed, result);
    }

    /// The work of a round that can fail; wakes the `durable` waiters itself (emptying the
    /// list) as soon as the journal is synced, and leaves in it those it could not wake.
    ///
    /// The round's changes go into sled [`SLICE`] at a time; callers that start waiting for
    /// a durable write meanwhile are not held up behind those inserts: between slices their
    /// changes are journalled, synced and appended to the round, and they are woken — up to
    /// [`MID_ROUND_MAX`] changes per round, so that a steady stream cannot keep a round from
    /// ending, nor a bulk write outrun sled.
    fn write_round(
        &self,
        all: bool,
        journal: &mut Journal,
        state: &mut Writer,
        durable: &mut Vec<Waiter>,
    ) -> Result<(), String> {
        self.injected()?;
        let mut batch = self.collect(if all { Due::All } else { Due::Aged });
        let mut inserted = 0;
        let mut appended = 0;
        let mut synced = self.journal(&batch, journal, durable)?;
        loop {
            if !synced {
                // No room in this epoch: the rest goes into sled now, and the sled flush of
                // a checkpoint makes it (and everything journalled before) durable.
                self.insert(&batch[inserted..])?;
                inserted = batch.len();
                self.checkpoint(journal, state)?;
                wake(&self.waiting, std::mem::take(durable), Ok(()));
            }
            if inserted == batch.len() {
                break;
            }
            let end = batch.len().min(inserted + SLICE);
            self.insert(&batch[inserted..end])?;
            inserted = end;
            #[cfg(test)]
            if let Some(hook) = lock(&self.slice_hook).as_mut() {
                hook();
            }
            synced = true;
            if appended < MID_ROUND_MAX && self.take_durable_waiters(durable) {
                self.injected()?;
                let from = batch.len();
                batch.extend(self.collect(Due::Durable));
                appended += batch.len() - from;
                synced = self.journal(&batch[from..], journal, durable)?;
            }
        }
        state.unflushed |= !batch.is_empty();
        let due = state.unflushed
            && (state.checkpointed.elapsed() >= self.checkpoint
                || journal.len() >= CHECKPOINT_BYTES);
        if all || due {
            self.checkpoint(journal, state)?;
        }
        // Written: no longer pending, unless it changed again meanwhile. A final record
        // leaves the map now; a lookup finds it in sled (the key filter has its key). A key
        // that changed again while it was written found it pending, so that change was not
        // listed: it is listed now.
        let mut unlisted = Vec::new();
        for change in batch {
            let written = |slot: &Slot| slot.seq == change.seq;
            if change.is_final {
                let removed = self.map.remove_if(&change.key, |_, slot| written(slot));
                if removed.is_none() && self.map.get(&change.key).is_some_and(|s| s.pending) {
                    unlisted.push(change.key);
                }
            } else if let Some(mut slot) = self.map.get_mut(&change.key) {
                if written(&slot) {
                    slot.pending = false;
                    slot.durable = false;
                } else if slot.pending {
                    drop(slot);
                    unlisted.push(change.key);
                }
            }
        }
        if !unlisted.is_empty() {
            let mut queues = lock(&self.queues);
            // Taken under the lock, as every listing's time: the queue stays in time order.
            let now = Instant::now();
            queues
                .changed
                .extend(unlisted.into_iter().map(|key| (now, key)));
        }
        Ok(())
    }

    /// Writes the durable changes of `changes` to the journal, syncs it and wakes the
    /// `durable` waiters; false (nothing synced, nobody woken) when the journal has no room
    /// left in this epoch.
    fn journal(
        &self,
        changes: &[Written],
        journal: &mut Journal,
        durable: &mut Vec<Waiter>,
    ) -> Result<bool, String> {
        for change in changes.iter().filter(|c| c.durable) {
            journal.push(&journal::Entry {
                tree: change.key.0,
                key: change.key.1.clone(),
                value: change.value.clone(),
            });
        }
        if !journal.fits() {
            return Ok(false);
        }
        let started = Instant::now();
        if journal.sync().map_err(|e| e.to_string())? {
            timed(&self.journal_syncs, Synced::Journal, started.elapsed());
        }
        wake(&self.waiting, std::mem::take(durable), Ok(()));
        Ok(true)
    }

    /// The storage failure a test asked for, if any, as if the next write had failed.
    fn injected(&self) -> Result<(), String> {
        #[cfg(test)]
        if let Some(cause) = lock(&self.inject).take() {
            return Err(cause);
        }
        Ok(())
    }

    /// Moves the callers waiting for durable writes into `durable` if there are any and their
    /// changes are a small group (at most [`MID_ROUND_MAX`]); true if it did. A bulk write
    /// (an import) waits for the next round instead: the sled inserts of this one are what
    /// holds it back to the pace sled can take.
    fn take_durable_waiters(&self, durable: &mut Vec<Waiter>) -> bool {
        let mut control = lock(&self.control);
        // Lock order: control, then queues (as in `next_round`).
        if control.durable.is_empty() || lock(&self.queues).durable.len() > MID_ROUND_MAX {
            return false;
        }
        durable.append(&mut control.durable);
        true
    }

    /// Flushes sled, then starts the journal over: everything in it is in sled by then.
    fn checkpoint(&self, journal: &mut Journal, state: &mut Writer) -> Result<(), String> {
        let started = Instant::now();
        self.db.flush().map_err(|e| e.to_string())?;
        journal.restart().map_err(|e| e.to_string())?;
        timed(&self.checkpoints, Synced::Checkpoint, started.elapsed());
        state.unflushed = false;
        state.checkpointed = Instant::now();
        Ok(())
    }

    /// Drops the written records nobody used since the last pass, and starts a new pass.
    /// (`all`: every written record, used or not.)
    fn evict(&self, all: bool) {
        self.map
            .retain(|_, slot| slot.pending || (!all && slot.used.swap(false, Ordering::Relaxed)));
    }

    /// Sleeps until a caller waits, the writer stops, or (while changes are pending) a tick
    /// passes; takes the waiters.
    fn next_round(&self) -> Round {
        let mut control = lock(&self.control);
        loop {
            // Durable waiters are served at once: those arriving while a round syncs share
            // the next one (group commit), and none waits for a timer.
            if control.stop || !control.flushed.is_empty() || !control.durable.is_empty() {
                break;
            }
            // Pending changes age by the tick; otherwise wake now and then anyway, for the
            // checkpoint of what was written and for evictions.
            let tick = if lock(&self.queues).changed.is_empty() {
                IDLE_TICK
            } else {
                TICK
            };
            control.asleep = true;
            let (next, timeout) = self
                .wake
                .wait_timeout(control, tick)
                .unwrap_or_else(|p| p.into_inner());
            control = next;
            control.asleep = false;
            if timeout.timed_out() {
                break;
            }
        }
        Round {
            durable: std::mem::take(&mut control.durable),
            flushed: std::mem::take(&mut control.flushed),
            stop: control.stop,
        }
    }

    /// The pending changes `due`, encoded.
    fn collect(&self, due: Due) -> Vec<Written> {
        let due: Vec<Key> = if let Due::All = due {
            let mut queues = lock(&self.queues);
            queues.changed.clear();
            queues.durable.clear();
            drop(queues);
            self.map
                .iter()
                .filter(|e| e.value().pending)
                .map(|e| e.key().clone())
                .collect()
        } else {
            let mut queues = lock(&self.queues);
            let mut keys = std::mem::take(&mut queues.durable);
            if let Due::Aged = due {
                // The queue is in the order of its times (each taken under this lock): the
                // aged changes are a prefix, found with one clock reading, and moved at once.
                let now = Instant::now();
                let aged = queues
                    .changed
                    .partition_point(|(since, _)| now.saturating_duration_since(*since) >= AGE);
                keys.extend(queues.changed.drain(..aged).map(|(_, key)| key));
            }
            keys
        };
        let mut batch = Vec::with_capacity(due.len());
        let mut seen =
            HashSet::with_capacity_and_hasher(due.len(), foldhash::quality::RandomState::default());
        // One buffer for every record of the round; sled keeps its own copy of each.
        let mut encoded = Vec::with_capacity(TYPICAL_SIZE);
        for key in due {
            if !seen.insert(key.clone()) {
                continue; // listed twice
            }
            // Encoded from the slot, under its shard's read lock: a clone of the record
            // would allocate its strings only to drop them after encoding.
            let Some((value, is_final, seq, durable)) =
                self.map.get(&key).filter(|slot| slot.pending).map(|slot| {
                    let value = slot.record.as_ref().map(|record| {
                        record.encode_into(&mut encoded);
                        IVec::from(encoded.as_slice())
                    });
                    let is_final = slot.record.as_ref().is_some_and(AnyRecord::is_final);
                    (value, is_final, slot.seq, slot.durable)
                })
            else {
                continue; // written by an earlier round
            };
            batch.push(Written {
                key,
                seq,
                durable,
                is_final,
                value,
            });
        }
        batch
    }

    /// Puts `batch` into sled.
    fn insert(&self, batch: &[Written]) -> Result<(), String> {
        for change in batch {
            let tree = &self.trees[change.key.0 as usize];
            match &change.value {
                Some(value) => tree.insert(&change.key.1, value.clone()),
                None => tree.remove(&change.key.1),
            }
            .map_err(|e| e.to_string())?;
        }
        self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Which pending changes a round collects.
#[derive(Clone, Copy)]
enum Due {
    /// Every one.
    All,
    /// Those of durable writes, and those pending for longer than [`AGE`].
    Aged,
    /// Those of durable writes.
    Durable,
}

/// A change on its way into sled.
struct Written {
    key: Key,
    seq: u64,
    durable: bool,
    /// The record is final ([`AnyRecord::is_final`]): it leaves the map once written.
    is_final: bool,
    value: Option<IVec>,
}

/// The writer thread's own state.
struct Writer {
    checkpointed: Instant,
    /// Something was put into sled since the last checkpoint.
    unflushed: bool,
    /// Why the writer stopped writing, for good.
    failed: Option<String>,
}

/// What the writer syncs.
#[derive(Debug, Clone, Copy)]
enum Synced {
    /// One `fdatasync` of the journal.
    Journal,
    /// A sled flush, then the journal started over.
    Checkpoint,
}

/// Records how long a sync took in `histogram`, and warns when it took [`SLOW_SYNC`] or
/// longer: an operator reading the log then finds the disk named as the cause of the
/// latency durable answers had meanwhile. (A sync that slow cannot repeat more than ten
/// times a second, so the warnings need no limit of their own.)
fn timed(histogram: &Histogram, sync: Synced, took: Duration) {
    histogram.observe(took);
    if let Some(warning) = slow_sync(sync, took) {
        tracing::warn!("{warning}");
    }
}

/// The warning for a sync that took `took`, if it took [`SLOW_SYNC`] or longer.
fn slow_sync(sync: Synced, took: Duration) -> Option<String> {
    if took < SLOW_SYNC {
        return None;
    }
    let ms = took.as_millis();
    Some(match sync {
        Synced::Journal => format!(
            "ledger: a journal sync (write and fdatasync) took {ms} ms: the disk stalled, and \
             every durable answer waited for it"
        ),
        Synced::Checkpoint => format!(
            "ledger: a checkpoint (sled flush) took {ms} ms: the disk stalled, and the durable \
             answers that came meanwhile waited for it"
        ),
    })
}

/// The refusal of every change once the writer stopped after the storage failure `cause`.
fn stopped_by(cause: &str) -> LedgerError {
    LedgerError::Storage(format!(
        "the ledger writer stopped after a storage failure ({cause}); restart the hub once \
         storage is fixed (the journal replays)"
    ))
}

fn wake(waiting: &AtomicU64, waiters: Vec<Waiter>, result: Result<(), String>) {
    waiting.fetch_sub(waiters.len() as u64, Ordering::Relaxed);
    for waiter in waiters {
        // A waiter whose caller went away needs no answer.
        let _ = waiter.send(result.clone());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are queues and lists of waiters: a panic elsewhere cannot leave
    // them inconsistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_is_named_in_the_log_only_when_the_disk_stalled() {
        assert_eq!(slow_sync(Synced::Journal, Duration::from_micros(250)), None);
        assert_eq!(
            slow_sync(Synced::Checkpoint, Duration::from_millis(99)),
            None
        );
        assert_eq!(
            slow_sync(Synced::Journal, Duration::from_micros(413_011)).as_deref(),
            Some(
                "ledger: a journal sync (write and fdatasync) took 413 ms: the disk stalled, \
                 and every durable answer waited for it"
            )
        );
        let checkpoint = slow_sync(Synced::Checkpoint, SLOW_SYNC).unwrap_or_default();
        assert!(
            checkpoint.starts_with("ledger: a checkpoint (sled flush) took 100 ms"),
            "{checkpoint}"
        );
    }
}
