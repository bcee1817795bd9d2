//! The load generator: lanes that play the mix over their own connections, either as fast as
//! they can (closed loop) or on a fixed schedule (open loop: every operation has an intended
//! send time, and its latency is measured from that time, so a stalled server is charged for
//! the requests it delayed — no coordinated omission), and the CPU time the watched
//! processes spend in the measured window.
//!
//! A lane is one CMP-side connection (Request Activation Code, CSIM status, profile status)
//! and one MSP-side connection (onboarding, Send Activation Code) for one (MSP, CMP) pair and
//! its onboarded federations.

use super::held;
use super::mix::{self, Op, Rng};
use super::procfs;
use super::stalls;
use super::wire::Conn;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::StatusCode;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an open-loop lane that fell behind may go on after the window before it gives
/// up the rest of its schedule.
const LATE: Duration = Duration::from_secs(2);

/// One lane.
pub struct Lane {
    /// Carries CMP → MSP calls.
    pub cmp: Conn,
    /// Carries MSP → CMP calls.
    pub msp: Conn,
    /// The federations of the lane's pair.
    pub tokens: Arc<Vec<Uuid>>,
    /// The pair's account-id secret (for new onboardings).
    pub secret: Arc<[u8]>,
    /// The lane's own generator.
    pub rng: Rng,
}

/// How to run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    /// Traffic before the measured window (connections warm, pools filled).
    pub warmup: Duration,
    /// The measured window.
    pub duration: Duration,
    /// Requests per second for the open loop; `None` for the closed loop.
    pub rate: Option<f64>,
}

/// When a run's traffic starts, and its measured window.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// The first request (warm-up).
    pub start: Instant,
    /// The window opens.
    pub from: Instant,
    /// The window closes.
    pub end: Instant,
}

impl Plan {
    /// The schedule of a run that starts now.
    pub fn schedule(&self) -> Schedule {
        let start = Instant::now() + Duration::from_millis(20);
        let from = start + self.warmup;
        Schedule {
            start,
            from,
            end: from + self.duration,
        }
    }
}

/// What one run measured.
pub struct Measured {
    /// Requests answered as expected in the window (the latencies are of those sent in it).
    pub requests: u64,
    /// The window.
    pub window: Duration,
    /// Latency of the requests begun in the window and answered as expected, µs.
    pub latency: Histogram<u64>,
    /// The same by the mix's labels (see [`mix::Call::label`]).
    pub by_label: BTreeMap<&'static str, Histogram<u64>>,
    /// Open loop: each operation begun in the window, from its send to its last answer, µs,
    /// without the wait `latency` charges for its lane's earlier operations ([`Backlog`]);
    /// empty in a closed loop, whose latency is that time already. Where the latency's
    /// tail is far beyond this one's, it is queueing behind the lane's own earlier
    /// operations (a connection serves one at a time), not any one slow answer.
    pub own: Histogram<u64>,
    /// Failed exchanges by kind, over warm-up and window.
    pub errors: BTreeMap<String, u64>,
    /// CPU time of each watched process over the window.
    pub cpu: Vec<Duration>,
    /// The threads of the process under test over the window, by group.
    pub threads: BTreeMap<String, procfs::ThreadTimes>,
    /// What the hub held answers for while its ledger recorded them, and its ledger's
    /// syncs, over the window (empty when no admin listener was given or it could not be
    /// read).
    pub held: held::Held,
    /// The longest stretch of the window in which no request was answered, to the
    /// millisecond (`Answered`).
    pub silence: Duration,
    /// The machine's other processes that used CPU around the window, busiest first, in
    /// cores (`procfs::busiest`).
    pub others: Vec<(String, f64)>,
    /// This load generator's own threads over the window, all together but the stall
    /// meters (`stalls.rs`, real-time threads of their own): how long they waited for a
    /// core is latency the bench charges to the setup.
    pub generator: procfs::ThreadTimes,
}

/// How long before the window the census of other processes starts: time enough for its
/// walk of every process to end before the window opens.
const CENSUS_LEAD: Duration = Duration::from_millis(100);

/// A process whose CPU time a run reads.
#[derive(Debug, Clone, Copy)]
pub enum Watch {
    /// The process and every process below it.
    Tree(u32),
    /// The process alone.
    Own(u32),
    /// The whole machine.
    Machine,
    /// What the hypervisor took from the machine (steal time).
    Steal,
}

/// What a run reads at the window's edges: the processes of each watched tree and of the
/// threads' tree, listed once before the window. Listing walks every process on the machine
/// (7–18 ms of a core on VM 29, which the load needs); with the list, a read at an edge
/// reads a few files per process (0.4–3 ms). The listed processes are the servers and the
/// partners, which start no process during a run.
struct Sampled {
    watch: Vec<(Watch, Vec<u32>)>,
    threads: Vec<u32>,
}

impl Sampled {
    fn list(watch: Vec<Watch>, threads_of: u32) -> Sampled {
        let watch = watch
            .into_iter()
            .map(|w| match w {
                Watch::Tree(pid) => (w, procfs::tree(pid)),
                Watch::Own(_) | Watch::Machine | Watch::Steal => (w, Vec::new()),
            })
            .collect();
        Sampled {
            watch,
            threads: procfs::tree(threads_of),
        }
    }

    /// The CPU time of each watch, and the threads by group.
    fn read(&self, ticks: u64) -> (Vec<Duration>, BTreeMap<String, procfs::ThreadTimes>) {
        // One read for both machine watches, so that steal is never more than busy.
        let machine = procfs::machine(ticks);
        let cpu = self
            .watch
            .iter()
            .map(|(w, pids)| match *w {
                Watch::Tree(_) => procfs::cpu_time_of(pids, ticks),
                Watch::Own(pid) => procfs::own_cpu_time(pid, ticks),
                Watch::Machine => machine.busy,
                Watch::Steal => machine.steal,
            })
            .collect();
        (cpu, procfs::threads_of(&self.threads, ticks))
    }
}

/// Runs `lanes` under `plan` while watching the CPU time of `watch`, that of the threads
/// of `threads_of` (a process and its descendants) by thread group, and the ledger's hold
/// on answers from the metrics of the hub whose admin listener is `admin`.
pub async fn run(
    lanes: Vec<Lane>,
    plan: Plan,
    schedule: Schedule,
    watch: Vec<Watch>,
    threads_of: u32,
    admin: Option<SocketAddr>,
) -> Measured {
    let Schedule { start, from, end } = schedule;
    let ticks = procfs::clock_ticks();
    let sampler = tokio::spawn(async move {
        let sampled = Sampled::list(watch, threads_of);
        // The census walks every process: taken just before the window opens and once it
        // has closed, it names the other processes without costing the window a core.
        let ours = std::process::id();
        tokio::time::sleep_until(from.checked_sub(CENSUS_LEAD).unwrap_or(from).into()).await;
        let census = procfs::census(ours);
        tokio::time::sleep_until(from.into()).await;
        let (before, threads_before) = sampled.read(ticks);
        let generator_before = own_threads(ours, ticks);
        let held = held::Window::open(admin).await;
        tokio::time::sleep_until(end.into()).await;
        let (after, threads_after) = sampled.read(ticks);
        let generator = procfs::since(&own_threads(ours, ticks), &generator_before);
        let cpu = after
            .into_iter()
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b))
            .collect::<Vec<_>>();
        let held = held.close().await;
        let others = procfs::busiest(&census, &procfs::census(ours), ticks);
        (
            cpu,
            procfs::threads_since(&threads_after, &threads_before),
            held,
            others,
            generator,
        )
    });
    let count = lanes.len().max(1);
    let period = plan
        .rate
        .map(|rate| count as f64 * mix::requests_per_op() / rate.max(0.001));
    let mut tasks = Vec::new();
    for (i, mut lane) in lanes.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut rec = Recorder::new(from, end);
            match period {
                None => {
                    while Instant::now() < end {
                        let op = mix::pick(&mut lane.rng);
                        lane.play(op, Instant::now(), &mut rec).await;
                    }
                }
                Some(period) => {
                    let phase = period * i as f64 / count as f64;
                    let mut backlog = Backlog::new(start);
                    for k in 0u64.. {
                        let intended = start + Duration::from_secs_f64(phase + period * k as f64);
                        if intended >= end {
                            break;
                        }
                        if Instant::now() > end + LATE {
                            let left = ((end - intended).as_secs_f64() / period).ceil() as u64;
                            *rec.errors
                                .entry("behind schedule: operations not sent".into())
                                .or_default() += left;
                            break;
                        }
                        tokio::time::sleep_until(intended.into()).await;
                        let sent = Instant::now();
                        let op = mix::pick(&mut lane.rng);
                        lane.play(op, backlog.since(intended, sent), &mut rec).await;
                        let finished = Instant::now();
                        rec.own_time(sent, finished);
                        backlog.done(sent, finished);
                    }
                }
            }
            rec
        }));
    }
    let mut total = Recorder::new(from, end);
    for task in tasks {
        match task.await {
            Ok(rec) => total.merge(rec),
            Err(e) => *total.errors.entry(format!("lane failed: {e}")).or_default() += 1,
        }
    }
    let (cpu, threads, held, others, generator) = sampler.await.unwrap_or_default();
    Measured {
        requests: total.answered,
        window: plan.duration,
        latency: total.latency,
        by_label: total.by_label,
        own: total.own,
        errors: total.errors,
        cpu,
        threads,
        held,
        silence: total.answered_at.longest_silence(),
        others,
        generator,
    }
}

/// The threads of the load generator (the process `ours`) added up, the stall meters left
/// out.
fn own_threads(ours: u32, ticks: u64) -> procfs::ThreadTimes {
    let zero = procfs::ThreadTimes {
        queued: Some(Duration::ZERO),
        ..procfs::ThreadTimes::default()
    };
    procfs::threads_of(&[ours], ticks)
        .into_iter()
        .filter(|(group, _)| group != stalls::GROUP)
        .fold(zero, |sum, (_, t)| procfs::add(&sum, &t))
}

/// An open-loop lane's schedule as it would have run had every operation left at its
/// intended time: latency counts from the intended time plus the wait the server's slow
/// answers to earlier operations would have caused (no coordinated omission), but not the
/// timer's lateness (tokio's timer ticks in milliseconds, and a lane woken late whose
/// earlier answers came back in time has nothing to charge the server for).
///
/// Charging a lane found behind from its intended time instead counted the timer's
/// lateness whenever it pushed an operation past the next one's intended time: at 2 ms
/// between a lane's operations that lifted direct's own p99 from 0.4 to 1.5 ms.
struct Backlog {
    /// When the lane would be free again on that schedule.
    free: Instant,
    /// Where the operation under way would have started on it.
    start: Instant,
}

impl Backlog {
    fn new(start: Instant) -> Backlog {
        Backlog { free: start, start }
    }

    /// The instant an operation intended at `intended` and sent at `sent` counts its first
    /// request's latency from: `sent`, moved back by the wait the schedule owes the server.
    fn since(&mut self, intended: Instant, sent: Instant) -> Instant {
        self.start = intended.max(self.free);
        let owed = self.start - intended;
        sent.checked_sub(owed).unwrap_or(intended)
    }

    /// The operation sent at `sent` finished at `finished`.
    fn done(&mut self, sent: Instant, finished: Instant) {
        self.free = self.start + finished.saturating_duration_since(sent);
    }
}

impl Lane {
    /// Plays one operation; the first request's latency counts from `since` (its send time,
    /// or earlier by the wait an open loop charges the server: [`Backlog`]).
    async fn play(&mut self, op: Op, since: Instant, rec: &mut Recorder) {
        let Some(&token) = self.rng.choose(&self.tokens) else {
            return;
        };
        match op {
            Op::CodeSync => {
                let call = mix::request_code(&token, &Uuid::new_v4(), false);
                exchange(&mut self.cmp, call, since, rec).await;
            }
            Op::CsimStatus => {
                let call = mix::csim_status(&token, self.rng.next_u64());
                exchange(&mut self.cmp, call, since, rec).await;
            }
            Op::ProfileStatus => {
                exchange(&mut self.cmp, mix::profile_status(&token), since, rec).await;
            }
            Op::Onboard => {
                let call = mix::onboard(&Uuid::new_v4(), &self.secret);
                exchange(&mut self.msp, call, since, rec).await;
            }
            Op::CodeAsync => {
                let id = Uuid::new_v4();
                let call = mix::request_code(&token, &id, true);
                if exchange(&mut self.cmp, call, since, rec).await {
                    // The MSP's answer goes out as soon as its 201 is back.
                    let call = mix::send_code(&token, &id);
                    exchange(&mut self.msp, call, Instant::now(), rec).await;
                }
            }
        }
    }
}

/// Sends one call; records it; true when it got the expected status.
pub async fn exchange(
    conn: &mut Conn,
    call: mix::Call,
    since: Instant,
    rec: &mut Recorder,
) -> bool {
    let request = conn.route().request(call.method, &call.path, call.body);
    let outcome = conn.exchange(request).await;
    rec.record(since, call.label, call.expect, &outcome)
}

/// Latencies, counts and errors of one lane (or all).
pub struct Recorder {
    from: Instant,
    end: Instant,
    latency: Histogram<u64>,
    by_label: BTreeMap<&'static str, Histogram<u64>>,
    /// Open loop: the operations' own time ([`Measured::own`]).
    own: Histogram<u64>,
    /// Answered as expected between `from` and `end`.
    answered: u64,
    /// The window's milliseconds in which an answer came.
    answered_at: Answered,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Recorder {
    /// Records the latency of requests begun at or after `from`, counts the answers that
    /// come between `from` and `end` (the window's throughput, whatever the requests'
    /// start: an open loop over capacity sends late and answers after the window); errors
    /// always.
    pub fn new(from: Instant, end: Instant) -> Recorder {
        Recorder {
            from,
            end,
            latency: histogram(),
            // Every kind's histogram now, not on its first answer in the window: each is
            // 139 KiB to zero, and 32 lanes making six each as the window opened stalled the
            // load generator there (on VM 29, 60–950 requests of the window's first 100 ms
            // took over 5 ms, the slowest 12–65 ms, direct's included).
            by_label: mix::LABELS.iter().map(|&l| (l, histogram())).collect(),
            own: histogram(),
            answered: 0,
            answered_at: Answered::new(end.saturating_duration_since(from)),
            errors: BTreeMap::new(),
        }
    }

    /// Records one exchange begun at `since`; true when it answered `expect`.
    pub fn record(
        &mut self,
        since: Instant,
        label: &'static str,
        expect: u16,
        outcome: &Result<(StatusCode, Bytes), String>,
    ) -> bool {
        let failure = match outcome {
            Ok((status, _)) if status.as_u16() == expect => None,
            Ok((status, body)) => {
                let code = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                    .unwrap_or_else(|| "-".to_owned());
                Some(format!("{label}: status {} code {code}", status.as_u16()))
            }
            Err(cause) => Some(format!("{label}: {cause}")),
        };
        if let Some(kind) = &failure {
            *self.errors.entry(kind.clone()).or_default() += 1;
            return false;
        }
        let now = Instant::now();
        if since >= self.from {
            let micros = now.saturating_duration_since(since).as_micros();
            let micros = micros.clamp(1, 60_000_000) as u64;
            let _ = self.latency.record(micros);
            let _ = self
                .by_label
                .entry(label)
                .or_insert_with(histogram)
                .record(micros);
        }
        if (self.from..self.end).contains(&now) {
            self.answered += 1;
            self.answered_at.mark(now - self.from);
        }
        true
    }

    /// Records the own time of an open loop's operation sent at `sent` and finished at
    /// `finished` (failed or not), when it was sent at or after `from`, as latency counts.
    fn own_time(&mut self, sent: Instant, finished: Instant) {
        if sent >= self.from {
            let micros = finished.saturating_duration_since(sent).as_micros();
            let _ = self.own.record(micros.clamp(1, 60_000_000) as u64);
        }
    }

    fn merge(&mut self, other: Recorder) {
        let _ = self.latency.add(&other.latency);
        let _ = self.own.add(&other.own);
        for (label, h) in other.by_label {
            let _ = self.by_label.entry(label).or_insert_with(histogram).add(&h);
        }
        self.answered += other.answered;
        self.answered_at.merge(&other.answered_at);
        for (kind, n) in other.errors {
            *self.errors.entry(kind).or_default() += n;
        }
    }
}

/// The milliseconds of a window in which at least one answer came, one bit each (1 KiB per
/// lane for an 8 s window), so that the lanes' marks merge into the window's longest
/// silence: a stretch in which nothing at all was answered is a stall of the server under
/// test, its disk or the machine, where a slow tail spread over many lanes is not.
#[derive(Debug, Clone, PartialEq)]
struct Answered {
    bits: Vec<u64>,
    slots: usize,
}

impl Answered {
    fn new(window: Duration) -> Answered {
        let slots = usize::try_from(window.as_millis()).unwrap_or(usize::MAX);
        Answered {
            bits: vec![0; slots.div_ceil(64)],
            slots,
        }
    }

    /// An answer came `at` into the window.
    fn mark(&mut self, at: Duration) {
        let slot = usize::try_from(at.as_millis()).unwrap_or(usize::MAX);
        if slot < self.slots {
            self.bits[slot / 64] |= 1 << (slot % 64);
        }
    }

    fn merge(&mut self, other: &Answered) {
        for (mine, theirs) in self.bits.iter_mut().zip(&other.bits) {
            *mine |= theirs;
        }
    }

    /// The longest run of milliseconds without an answer (the window's start and end
    /// included: a silence cut by either edge counts as far as the window saw it).
    fn longest_silence(&self) -> Duration {
        let (mut longest, mut run) = (0u64, 0u64);
        for slot in 0..self.slots {
            if self.bits[slot / 64] & (1 << (slot % 64)) == 0 {
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        Duration::from_millis(longest)
    }
}

/// An empty latency histogram: 1 µs to 60 s at 3 significant digits.
fn histogram() -> Histogram<u64> {
    // Valid bounds, so this cannot fail.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Onboards `count` federations spread over `pairs` (each an MSP-side connection towards
/// its CMP and the CMP's account-id secret); returns each pair's tokens.
pub async fn onboard(
    pairs: Vec<(Conn, Arc<[u8]>)>,
    count: usize,
) -> Result<Vec<Arc<Vec<Uuid>>>, String> {
    let n = pairs.len().max(1);
    let mut tasks = Vec::new();
    for (i, (mut conn, secret)) in pairs.into_iter().enumerate() {
        let share = count / n + usize::from(i < count % n);
        tasks.push(tokio::spawn(async move {
            let mut tokens = Vec::with_capacity(share);
            // Only its errors are read.
            let now = Instant::now();
            let mut rec = Recorder::new(now, now);
            for _ in 0..share {
                let token = Uuid::new_v4();
                if !exchange(
                    &mut conn,
                    mix::onboard(&token, &secret),
                    Instant::now(),
                    &mut rec,
                )
                .await
                {
                    let errors: Vec<String> = rec.errors.keys().cloned().collect();
                    return Err(format!("onboarding failed: {}", errors.join("; ")));
                }
                tokens.push(token);
            }
            Ok(Arc::new(tokens))
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.map_err(|e| format!("onboarding task: {e}"))??);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorder_has_every_kinds_histogram_before_its_window() {
        let t0 = Instant::now();
        let rec = Recorder::new(t0, t0 + Duration::from_secs(1));
        let kinds: Vec<&str> = rec.by_label.keys().copied().collect();
        let mut listed = mix::LABELS.to_vec();
        listed.sort_unstable();
        assert_eq!(kinds, listed);
    }

    #[test]
    fn an_operations_own_time_counts_from_the_window_and_merges() {
        let t0 = Instant::now();
        let at = |millis: u64| t0 + Duration::from_millis(millis);
        let mut lane = Recorder::new(at(100), at(1100));
        // Sent in the warm-up: not counted; sent in the window, or late after it: counted.
        lane.own_time(at(90), at(95));
        lane.own_time(at(100), at(103));
        lane.own_time(at(1200), at(1220));
        let mut total = Recorder::new(at(100), at(1100));
        total.own_time(at(500), at(501));
        total.merge(lane);
        assert_eq!(total.own.len(), 3);
        assert_eq!(total.own.max() / 1000, 20);
        assert_eq!(total.own.min() / 100, 10);
    }

    #[test]
    fn the_timers_lateness_is_not_charged_and_the_servers_is_carried_over() {
        let t0 = Instant::now();
        let at = |micros: u64| t0 + Duration::from_micros(micros);
        let mut backlog = Backlog::new(t0);
        // Woken 1 ms late, answered in 1.5 ms: charged from the send.
        assert_eq!(backlog.since(at(0), at(1000)), at(1000));
        backlog.done(at(1000), at(2500));
        // Intended at 2 ms, sent at 2.5 (the lane was busy until then, by the timer's fault:
        // had the first left on time it would have been back at 1.5): nothing owed.
        assert_eq!(backlog.since(at(2000), at(2500)), at(2500));
        backlog.done(at(2500), at(7500));
        // That one took 5 ms, so on time it would have kept the lane until 7 ms: the one
        // intended at 4 ms owes the server 3 ms, wherever the timer put its send.
        assert_eq!(backlog.since(at(4000), at(8000)), at(5000));
        backlog.done(at(8000), at(9000));
        // Free at 8 ms on the schedule: the one intended at 8 ms owes nothing.
        assert_eq!(backlog.since(at(8000), at(9000)), at(9000));
    }

    #[test]
    fn throughput_counts_answers_in_the_window_and_latency_the_requests_begun_in_it() {
        let ok: Result<(StatusCode, Bytes), String> = Ok((StatusCode::OK, Bytes::new()));
        let now = Instant::now();
        let second = Duration::from_secs(1);
        // A window that is open now: begun before it, the request is counted but not timed.
        let mut open = Recorder::new(now, now + second);
        assert!(open.record(now - second, "a", 200, &ok));
        assert!(open.record(now, "a", 200, &ok));
        assert_eq!(open.answered, 2);
        assert_eq!(open.latency.len(), 1);
        // A window that closed before the answers came: timed, not counted.
        let mut closed = Recorder::new(now - second, now);
        assert!(closed.record(now - second, "a", 200, &ok));
        assert_eq!((closed.answered, closed.latency.len()), (0, 1));
        // A failure counts as neither.
        let failed: Result<(StatusCode, Bytes), String> = Err("reset".into());
        assert!(!open.record(now, "a", 200, &failed));
        assert!(!open.record(now, "a", 201, &ok));
        assert_eq!((open.answered, open.latency.len()), (2, 1));
        assert_eq!(open.errors.len(), 2);
        open.merge(closed);
        assert_eq!((open.answered, open.latency.len()), (2, 2));
    }

    #[test]
    fn the_longest_silence_is_the_longest_stretch_no_lane_had_an_answer_in() {
        let ms = Duration::from_millis;
        let mut one = Answered::new(ms(1000));
        let mut other = Answered::new(ms(1000));
        // One lane answers every 10 ms but stops between 300 and 700 ms; the other answers
        // only between 500 and 560 ms, which cuts that silence in two.
        for t in (0..1000).step_by(10).filter(|t| !(300..700).contains(t)) {
            one.mark(ms(t));
        }
        for t in (500..=560).step_by(20) {
            other.mark(ms(t));
        }
        assert_eq!(one.longest_silence(), ms(409));
        one.merge(&other);
        // 291..499 and 561..699 without an answer: 209 ms the longest.
        assert_eq!(one.longest_silence(), ms(209));
        // An answer after the window is not marked; a window with none is one silence.
        let mut none = Answered::new(ms(250));
        none.mark(ms(250));
        assert_eq!(none.longest_silence(), ms(250));
        // Cut by the window's end: counted as far as the window saw it.
        let mut late = Answered::new(ms(100));
        late.mark(ms(0));
        assert_eq!(late.longest_silence(), ms(99));
        assert_eq!(
            Answered::new(Duration::ZERO).longest_silence(),
            Duration::ZERO
        );
    }
}
