//! Commits slow enough to name in the log: the PostgreSQL counterpart of the sled backend's
//! slow-sync warning. A commit waits for the server to write its WAL to disk
//! (`synchronous_commit = on`), and the ledger call (a partner's answer, most often) waits
//! for the commit; when the server or its disk stalls, the log says so instead of leaving
//! the operator to guess why answers were slow.
//!
//! Many calls commit at once, so one stall would slow them all together: at most one warning
//! per [`QUIET`], which counts the slow commits it did not name since the last one.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool_postgres::Transaction;

use super::fault::{db, Fault};

/// A commit that takes longer is logged as a warning (as a journal sync is on sled).
const SLOW_COMMIT: Duration = Duration::from_millis(100);
/// The least time between two warnings.
const QUIET: Duration = Duration::from_secs(1);

/// The slow commits of one ledger (its clones share it).
#[derive(Debug, Default)]
pub(super) struct SlowCommits {
    warned: Mutex<Warned>,
}

#[derive(Debug, Default)]
struct Warned {
    /// When the last warning was logged.
    at: Option<Instant>,
    /// Slow commits since then that no warning named.
    unsaid: u64,
}

impl SlowCommits {
    /// Commits `tx`, and warns when that took [`SLOW_COMMIT`] or longer.
    pub(super) async fn commit(&self, tx: Transaction<'_>) -> Result<(), Fault> {
        let started = Instant::now();
        let result = tx.commit().await.map_err(db);
        let now = Instant::now();
        if let Some(warning) = self.observe(now.saturating_duration_since(started), now) {
            tracing::warn!("{warning}");
        }
        result
    }

    /// The warning for a commit that took `took` and ended at `now`, if one is due.
    fn observe(&self, took: Duration, now: Instant) -> Option<String> {
        if took < SLOW_COMMIT {
            return None;
        }
        // Only slow commits get here: the lock is off the path of the others.
        let mut warned = self.warned.lock().unwrap_or_else(|p| p.into_inner());
        if warned
            .at
            .is_some_and(|at| now.saturating_duration_since(at) < QUIET)
        {
            warned.unsaid += 1;
            return None;
        }
        let unsaid = std::mem::take(&mut warned.unsaid);
        warned.at = Some(now);
        Some(warning(took, unsaid))
    }
}

fn warning(took: Duration, unsaid: u64) -> String {
    let ms = took.as_millis();
    let mut text = format!(
        "ledger: a PostgreSQL commit took {ms} ms: the database or its disk stalled, and the \
         call that committed waited for it"
    );
    if unsaid > 0 {
        text.push_str(&format!(
            " ({unsaid} more slow commits since the last warning)"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_is_named_in_the_log_only_when_it_stalled() {
        let slow = SlowCommits::default();
        let t0 = Instant::now();
        assert_eq!(slow.observe(Duration::from_micros(900), t0), None);
        assert_eq!(slow.observe(Duration::from_millis(99), t0), None);
        assert_eq!(
            slow.observe(Duration::from_micros(152_700), t0).as_deref(),
            Some(
                "ledger: a PostgreSQL commit took 152 ms: the database or its disk stalled, \
                 and the call that committed waited for it"
            )
        );
    }

    #[test]
    fn a_stall_of_many_commits_is_one_warning_a_second_with_the_rest_counted() {
        let slow = SlowCommits::default();
        let t0 = Instant::now();
        let took = SLOW_COMMIT;
        assert!(slow.observe(took, t0).is_some());
        for ms in [1, 200, 999] {
            let at = t0 + Duration::from_millis(ms);
            assert_eq!(slow.observe(took, at), None, "{ms} ms after the warning");
        }
        // Fast commits in between are neither named nor counted.
        assert_eq!(slow.observe(Duration::from_millis(5), t0 + QUIET), None);
        let next = slow.observe(took, t0 + QUIET).unwrap_or_default();
        assert!(
            next.ends_with("(3 more slow commits since the last warning)"),
            "{next}"
        );
        let after = slow.observe(took, t0 + QUIET * 2).unwrap_or_default();
        assert!(
            after.ends_with("the call that committed waited for it"),
            "{after}"
        );
    }
}
