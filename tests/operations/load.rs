//! Load generators for the reload tests: tasks repeating one call each over a pooled
//! connection, recording every reply that is not the expected success.

use crate::common::{until, WITHIN};
use aidhub::client::{Caller, HubClient};
use http::Method;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::JoinHandle;

/// Makes one request of a load stream: (path, body).
pub type MakeRequest = Box<dyn Fn() -> (String, Option<Value>) + Send + Sync>;

/// One stream of calls a load task repeats.
pub struct Stream {
    /// Its name in failure messages.
    pub name: &'static str,
    /// The calling partner's client (pooled: its connection lives across the whole run).
    pub client: HubClient,
    /// Its caller identity.
    pub caller: Caller,
    /// The target partner.
    pub target: &'static str,
    /// The method.
    pub method: Method,
    /// A fresh request each time.
    pub request: MakeRequest,
    /// The status every answer must have.
    pub expect: u16,
}

struct Task {
    done: Arc<AtomicUsize>,
    handle: JoinHandle<Vec<String>>,
}

/// Tasks sending calls back to back until stopped, recording every reply that is not the
/// expected success.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<Task>,
}

impl Load {
    /// Starts one task per stream.
    pub fn start(streams: Vec<Stream>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = streams
            .into_iter()
            .map(|s| {
                let done = Arc::new(AtomicUsize::new(0));
                let (stop, counter) = (stop.clone(), done.clone());
                let handle = tokio::spawn(async move {
                    let mut failures = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let (path, body) = (s.request)();
                        let outcome = s
                            .client
                            .call(&s.caller, s.target, s.method.clone(), &path, body.as_ref())
                            .await;
                        match outcome {
                            Ok(reply) if reply.status.as_u16() == s.expect => {}
                            Ok(reply) => failures.push(format!(
                                "{}: {} {}",
                                s.name,
                                reply.status,
                                String::from_utf8_lossy(&reply.body)
                            )),
                            Err(e) => failures.push(format!("{}: no answer: {e}", s.name)),
                        }
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    failures
                });
                Task { done, handle }
            })
            .collect();
        Load { stop, tasks }
    }

    /// Calls each task has completed so far.
    pub fn counts(&self) -> Vec<usize> {
        self.tasks
            .iter()
            .map(|t| t.done.load(Ordering::SeqCst))
            .collect()
    }

    /// Waits until every task has completed `more` calls beyond `since`.
    pub async fn advance(&self, since: &[usize], more: usize) {
        let moved = until(WITHIN * 3, || async {
            self.counts()
                .iter()
                .zip(since)
                .all(|(now, then)| *now >= then + more)
        })
        .await;
        assert!(
            moved,
            "every load task kept completing calls: {:?} since {since:?}",
            self.counts()
        );
    }

    /// Stops the tasks; returns how many calls they made and every failure.
    pub async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = 0;
        let mut failures = Vec::new();
        for task in self.tasks {
            failures.extend(task.handle.await.expect("a load task ends"));
            total += task.done.load(Ordering::SeqCst);
        }
        (total, failures)
    }
}
