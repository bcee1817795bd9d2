//! How long the machine kept the cores from a thread that wanted one: a meter thread per
//! core, pinned to it (`taskset`) and at real-time priority (`chrt -f 1`) where the bench
//! may set them, sleeps [`TICK`] at a time and notes how late it woke. Nothing the bench
//! runs can hold such a thread back, so a late wake-up there is time the core went to
//! something no process shows: the hypervisor took the virtual CPU, or the kernel ran with
//! preemption off. Without the permission the meters run at normal priority, and their
//! lateness also holds the wait for a core behind the load; the bench says so.
//!
//! It answers the question a disturbed run leaves: "other processes used 0.00 cores", yet
//! every setup's maximum rose by tens of milliseconds.
//!
//! The hypervisor's share is also counted by the guest kernel as steal time, which each
//! run's line prints beside other processes ([`super::procfs::machine`]); the meters
//! tell how long each pause was, which a total of steal does not, and they also see pauses
//! steal does not count, such as the kernel running with preemption off.

use super::child::succeeds;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a meter sleeps between two looks at the clock.
pub const TICK: Duration = Duration::from_millis(2);
/// Lateness a meter keeps (below it: timer slack and the wake-up's own cost).
const NOTED: Duration = Duration::from_micros(500);
/// A stall the bench counts on its own.
pub const LONG_MS: f64 = 5.0;
/// The meters' thread group (`procfs::thread_group` of `stall-meter-0`).
pub const GROUP: &str = "stall-meter";

/// The meters of one run.
pub struct Meter {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Late>>>,
    realtime: bool,
}

/// One late wake-up: when it came, and how late.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Late {
    at: Instant,
    by: Duration,
}

/// The stalls of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stalls {
    /// How late the worst wake-up of any core's meter was, ms (0 when none was late by
    /// `NOTED`).
    pub longest_ms: f64,
    /// Wake-ups later than [`LONG_MS`].
    pub long: f64,
    /// Every meter ran pinned to its core at real-time priority.
    pub realtime: bool,
}

impl Stalls {
    /// `stalls up to 3.9 ms, 0 over 5 ms` (with `(normal priority)` when the meters could
    /// not be made real-time).
    pub fn describe(&self) -> String {
        let priority = if self.realtime {
            ""
        } else {
            " (normal priority)"
        };
        let longest = match self.noted_ms() {
            Some(ms) => format!("up to {ms:.1} ms"),
            None => quiet(),
        };
        format!(
            "stalls {longest}, {:.0} over {LONG_MS} ms{priority}",
            self.long
        )
    }

    /// `3.9 ms`, or `under 0.5 ms` when no wake-up was late by [`NOTED`]: the meters keep
    /// no lateness below it, so a quiet window has no figure of its own (it printed
    /// `0.0 ms`, as if the meters had woken exactly on time).
    pub fn longest(&self) -> String {
        match self.noted_ms() {
            Some(ms) => format!("{ms:.1} ms"),
            None => quiet(),
        }
    }

    /// The worst lateness, when a meter noted any.
    fn noted_ms(&self) -> Option<f64> {
        (self.longest_ms > 0.0).then_some(self.longest_ms)
    }
}

/// A window in which no meter noted a lateness: `under 0.5 ms`.
fn quiet() -> String {
    format!("under {:.1} ms", NOTED.as_secs_f64() * 1e3)
}

impl Meter {
    /// Starts a meter on each core; returns once every meter has settled its priority.
    pub fn start() -> Meter {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, settled) = std::sync::mpsc::channel();
        let threads = (0..cores)
            .filter_map(|core| {
                let stop = stop.clone();
                let ready = ready.clone();
                std::thread::Builder::new()
                    .name(format!("{GROUP}-{core}"))
                    .spawn(move || {
                        let _ = ready.send(settle(core));
                        watch(&stop)
                    })
                    .ok()
            })
            .collect::<Vec<_>>();
        drop(ready);
        let realtime = !threads.is_empty() && settled.iter().take(threads.len()).all(|ok| ok);
        Meter {
            stop,
            threads,
            realtime,
        }
    }

    /// Stops the meters; the stalls that ended between `from` and `end`.
    pub fn stop(self, from: Instant, end: Instant) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        let late: Vec<Late> = self
            .threads
            .into_iter()
            .filter_map(|t| t.join().ok())
            .flatten()
            .collect();
        summarize(&late, from, end, self.realtime)
    }
}

/// Pins the calling thread to `core` and makes it real-time; true when both worked.
fn settle(core: usize) -> bool {
    let Some(tid) = own_tid() else {
        return false;
    };
    let run = |program: &str, args: &[&str]| succeeds(Path::new(program), args);
    let pinned = run("taskset", &["-p", "-c", &core.to_string(), &tid]);
    pinned && run("chrt", &["-f", "-p", "1", &tid])
}

/// The calling thread's id (`/proc/thread-self` links to `<pid>/task/<tid>`).
fn own_tid() -> Option<String> {
    let link = std::fs::read_link("/proc/thread-self").ok()?;
    Some(link.file_name()?.to_str()?.to_owned())
}

/// Sleeps [`TICK`] at a time until `stop`; every wake-up later than [`NOTED`].
fn watch(stop: &AtomicBool) -> Vec<Late> {
    watch_with(stop, std::thread::sleep)
}

/// [`watch`] with the sleep given (a test's sleep oversleeps on purpose).
fn watch_with(stop: &AtomicBool, mut sleep: impl FnMut(Duration)) -> Vec<Late> {
    let mut late = Vec::new();
    let mut due = Instant::now() + TICK;
    while !stop.load(Ordering::Relaxed) {
        sleep(due.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        let by = now.saturating_duration_since(due);
        if by >= NOTED {
            late.push(Late { at: now, by });
        }
        due = now + TICK;
    }
    late
}

/// The longest and the count over [`LONG_MS`] of the wake-ups between `from` and `end`.
fn summarize(late: &[Late], from: Instant, end: Instant, realtime: bool) -> Stalls {
    let ms: Vec<f64> = late
        .iter()
        .filter(|l| l.at >= from && l.at <= end)
        .map(|l| l.by.as_secs_f64() * 1e3)
        .collect();
    Stalls {
        longest_ms: ms.iter().copied().fold(0.0, f64::max),
        long: ms.iter().filter(|&&m| m > LONG_MS).count() as f64,
        realtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_the_late_wake_ups_inside_it_only() {
        let t0 = Instant::now();
        let at = |ms: u64, by_ms: u64| Late {
            at: t0 + Duration::from_millis(ms),
            by: Duration::from_millis(by_ms),
        };
        let late = [at(5, 40), at(100, 3), at(150, 7), at(200, 9), at(400, 60)];
        let window = summarize(
            &late,
            t0 + Duration::from_millis(100),
            t0 + Duration::from_millis(300),
            true,
        );
        assert_eq!(window.longest_ms, 9.0);
        assert_eq!(window.long, 2.0);
        assert_eq!(window.describe(), "stalls up to 9.0 ms, 2 over 5 ms");
        assert_eq!(window.longest(), "9.0 ms");
        let quiet = summarize(&[], t0, t0 + Duration::from_secs(1), false);
        assert_eq!(
            quiet.describe(),
            "stalls under 0.5 ms, 0 over 5 ms (normal priority)"
        );
        assert_eq!(quiet.longest(), "under 0.5 ms");
        let noted = [Late {
            at: t0 + Duration::from_millis(150),
            by: NOTED,
        }];
        let slight = summarize(&noted, t0, t0 + Duration::from_secs(1), true);
        assert_eq!(slight.describe(), "stalls up to 0.5 ms, 0 over 5 ms");
    }

    #[test]
    fn a_meter_notes_each_wake_up_later_than_its_tick() {
        // A sleep that overshoots by 30 ms on its third call, as a stolen core would.
        let stop = AtomicBool::new(false);
        let mut calls = 0;
        let late = watch_with(&stop, |d| {
            calls += 1;
            let extra = if calls == 3 {
                Duration::from_millis(30)
            } else {
                Duration::ZERO
            };
            std::thread::sleep(d + extra);
            if calls == 5 {
                stop.store(true, Ordering::Relaxed);
            }
        });
        // The overshoot is noted; a busy machine may add lateness of its own to any call,
        // so nothing else is asserted.
        let stolen = late.iter().map(|l| l.by).max().unwrap_or_default();
        assert!(stolen >= Duration::from_millis(30), "{late:?}");
        assert!(calls == 5, "{calls} sleeps");
    }
}
