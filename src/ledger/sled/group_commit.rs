//! Group commit: many writers, one `fsync`.
//!
//! A writer that needs its write durable calls [`GroupCommit::durable`] after the write.
//! That queues a waiter for the flusher thread, which takes every waiter queued so far,
//! calls `Db::flush` once and wakes them all. Each write happened before its waiter was
//! queued, which happened before the flusher took the queue, which happened before the
//! flush began: so the flush covers every write of the waiters it wakes. Writers that
//! arrive during a flush are served together by the next one, so N concurrent writers
//! cost a handful of flushes, not N.
//!
//! The flusher is a plain thread (flushing blocks); callers wait on a oneshot and hold no
//! lock while they do.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::ledger::LedgerError;

/// Wakes one waiter with the result of the flush that covered its write.
type Waiter = oneshot::Sender<Result<(), String>>;

/// The handle on the flusher thread; dropping it stops and joins the thread.
pub(super) struct GroupCommit {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

/// What the callers and the flusher thread both see.
#[derive(Default)]
struct Shared {
    /// Flushes made so far.
    flushes: AtomicU64,
    /// Callers waiting for a flush right now.
    waiting: AtomicU64,
    /// Tests hold the flusher back with this, to see queued writers share one flush.
    paused: AtomicBool,
}

impl GroupCommit {
    /// Start the flusher thread for `db`.
    pub(super) fn start(db: sled::Db) -> Result<GroupCommit, LedgerError> {
        let (queue, waiters) = mpsc::channel::<Waiter>();
        let shared = Arc::new(Shared::default());
        let flusher = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ledger-flush".into())
            .spawn(move || run(&db, &waiters, &flusher))
            .map_err(|e| LedgerError::Storage(format!("cannot start the flusher thread: {e}")))?;
        Ok(GroupCommit {
            queue: Some(queue),
            thread: Some(thread),
            shared,
        })
    }

    /// Wait until every write made before this call is on disk.
    pub(super) async fn durable(&self) -> Result<(), LedgerError> {
        let stopped = || LedgerError::Storage("the ledger flusher has stopped".into());
        let (waiter, woken) = oneshot::channel();
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        self.shared.waiting.fetch_add(1, Ordering::Relaxed);
        if queue.send(waiter).is_err() {
            self.shared.waiting.fetch_sub(1, Ordering::Relaxed);
            return Err(stopped());
        }
        match woken.await {
            Ok(result) => result.map_err(LedgerError::Storage),
            Err(_) => Err(stopped()),
        }
    }

    /// How many flushes the flusher has made.
    pub(super) fn flushes(&self) -> u64 {
        self.shared.flushes.load(Ordering::Relaxed)
    }

    /// How many callers wait for a flush right now.
    pub(super) fn waiting(&self) -> u64 {
        self.shared.waiting.load(Ordering::Relaxed)
    }

    /// Hold the flusher back before its next flush (`true`), or let it go.
    #[cfg(test)]
    pub(super) fn pause(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the flusher's loop once it has served what is queued;
        // joining it releases its handle on the database before ours goes.
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the ledger flusher thread panicked");
            }
        }
    }
}

fn run(db: &sled::Db, waiters: &mpsc::Receiver<Waiter>, shared: &Shared) {
    while let Ok(first) = waiters.recv() {
        while shared.paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut batch = vec![first];
        batch.extend(waiters.try_iter());
        let result = db.flush().map(drop).map_err(|e| e.to_string());
        shared.flushes.fetch_add(1, Ordering::Relaxed);
        shared
            .waiting
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        if let Err(cause) = &result {
            tracing::error!(%cause, waiters = batch.len(), "ledger flush failed");
        }
        for waiter in batch {
            // A waiter whose caller went away (its future was dropped) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}
