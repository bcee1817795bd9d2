//! The bench's figures and how they are printed: one line per measurement as it finishes,
//! then per setup the median of every figure over the runs, the ratios aidhub/direct and
//! aidhub/nginx, and the targets with the measured values against them.

use super::held::SLOW_MS;
use super::stalls::{Stalls, LONG_MS};
use super::Setup;
use std::collections::BTreeMap;

/// What one measurement of one setup found.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// Answered requests per second in the window.
    pub throughput: f64,
    /// Latency percentiles and maximum, ms: p50, p90, p99, p99.9, max.
    pub latency_ms: [f64; 5],
    /// The longest stretch of the window in which no request was answered, ms.
    pub silence_ms: f64,
    /// Open loop: the p99 and maximum of each operation's own time, from its send to its
    /// last answer, without the wait charged for its lane's earlier operations, ms
    /// (`load::Measured::own`); `None` in a closed loop.
    pub own_ms: Option<[f64; 2]>,
    /// By the mix's labels: share of the requests (0..1), p50 and p99 latency in ms.
    pub by_label: BTreeMap<&'static str, [f64; 3]>,
    /// Failed exchanges by kind (onboarding excluded: it stops the bench).
    pub errors: BTreeMap<String, u64>,
    /// CPU time per request of the process under test (direct: the partners), µs.
    pub cpu_us: f64,
    /// CPU time per request of the simulated partners, µs.
    pub partners_cpu_us: f64,
    /// CPU time per request of the load generator (this process), µs.
    pub loadgen_cpu_us: f64,
    /// Peak resident size of the process under test, bytes.
    pub peak_rss: Option<f64>,
    /// Resident size right after start, bytes.
    pub idle_rss: Option<f64>,
    /// Resident bytes per open idle partner connection.
    pub rss_per_conn: Option<f64>,
    /// New mutual-TLS connections per second.
    pub conns_per_s: Option<f64>,
    /// CPU time per new connection of the process under test, µs.
    pub cpu_per_conn_us: Option<f64>,
    /// Failures of the connection measurements by kind.
    pub conn_errors: BTreeMap<String, u64>,
    /// Cores busy with processes other than the bench's during the window (noise).
    pub other_cores: f64,
    /// Which other processes those were, busiest first, in cores (a census just before and
    /// just after the window: `procfs::busiest`); `None` in a median.
    pub others: Option<Vec<(String, f64)>>,
    /// Cores the hypervisor took from the machine during the window (steal time: noise
    /// from outside the machine).
    pub steal_cores: f64,
    /// How long the machine kept a core from a real-time thread during the window
    /// (`stalls.rs`: the hypervisor's or the kernel's share of the noise, which no process
    /// shows).
    pub stalls: Stalls,
    /// The process under test's threads by group (`procfs::thread_group`), per request.
    pub threads: BTreeMap<String, ThreadShare>,
    /// How long the load generator's own threads waited for a core, µs per request (NaN:
    /// the kernel keeps no `schedstat`): latency the bench charged to the setup although no
    /// server held it.
    pub loadgen_queued_us: f64,
    /// The same per time one of them was put on a core, µs.
    pub loadgen_queued_per_run_us: f64,
    /// The hub's own view of how long it held answers for its ledger, and of its ledger's
    /// syncs (of the medians: each series' median over the runs, `held::median`).
    pub held: super::held::Held,
    /// Instructions the hub executed per request in the window, under `--callgrind`.
    pub instructions: Option<f64>,
    /// Under `--callgrind`, of the medians only: how many runs' windows opened no upstream
    /// connection, and those runs' median instructions per request (`None` inside: there
    /// were none). A handshake is about a million instructions, some 500 per request of a
    /// 2 000-request window, so builds compare best on these. `None`: the hub's counters
    /// were not read in every run.
    pub instructions_warm: Option<(usize, Option<f64>)>,
    /// Under `--callgrind --cache-sim`, per request: data reads and writes, first-level
    /// data-cache misses, last-level data misses, first-level instruction-cache misses.
    pub misses: Option<[f64; 4]>,
}

/// What one group of threads of the process under test cost, per request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ThreadShare {
    /// Threads in the group.
    pub threads: f64,
    /// User-space CPU time, µs.
    pub user_us: f64,
    /// Kernel CPU time, µs.
    pub system_us: f64,
    /// Voluntary context switches (waits).
    pub voluntary: f64,
    /// Involuntary context switches (preemptions).
    pub involuntary: f64,
    /// Time ready to run but waiting for a core, µs (NaN: the kernel keeps no `schedstat`).
    pub queued_us: f64,
    /// Times a thread was put on a core.
    pub runs: f64,
}

impl Figures {
    /// All errors of the measurement.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum::<u64>() + self.conn_errors.values().sum::<u64>()
    }

    /// One line as a measurement finishes.
    pub fn line(&self) -> String {
        let own = self.own_ms.map_or(String::new(), |[p99, max]| {
            format!(", own time p99 {p99:.2} ms, max {max:.1} ms")
        });
        let mut line = format!(
            "{:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms{own}, no answer for up to \
             {:.0} ms, {} errors, CPU {:.0} µs/req",
            self.throughput,
            self.latency_ms[0],
            self.latency_ms[2],
            self.latency_ms[4],
            self.silence_ms,
            self.errors.values().sum::<u64>(),
            self.cpu_us,
        );
        if let Some(peak) = self.peak_rss {
            line += &format!(", peak RSS {:.1} MiB", peak / MIB);
        }
        if let Some(rate) = self.conns_per_s {
            line += &format!(", {rate:.0} new conn/s");
        }
        if let Some(per) = self.rss_per_conn {
            line += &format!(", {:.1} KiB/conn", per / 1024.0);
        }
        if let Some(instructions) = self.instructions {
            line += &format!(", {instructions:.0} instructions/req");
        }
        line + &format!(
            "; other processes used {:.2} cores{}, the hypervisor took {:.2} (steal); {}",
            self.other_cores,
            self.naming_others(),
            self.steal_cores,
            self.stalls.describe()
        )
    }

    /// ` (busiest: kworker/1:1H 0.09, postgres 0.04; 0.06 in no process's time)`: the
    /// busiest other processes that used a hundredth of a core or more (at most [`NAMED`]),
    /// and what of `other_cores` no process was charged with (interrupt work a core did
    /// while it idled, a process that ended during the window); empty when nothing is worth
    /// naming or there was no census. The total comes from the machine's busy ticks less the
    /// bench's processes' times, the names from each process's own time: the two can differ
    /// by a few hundredths of a core.
    fn naming_others(&self) -> String {
        let Some(others) = &self.others else {
            return String::new();
        };
        let named: Vec<String> = others
            .iter()
            .filter(|(_, cores)| *cores >= 0.005)
            .take(NAMED)
            .map(|(name, cores)| format!("{name} {cores:.2}"))
            .collect();
        let charged: f64 = others.iter().map(|(_, cores)| cores).sum();
        let unnamed = self.other_cores - charged;
        let mut parts = Vec::new();
        if !named.is_empty() {
            parts.push(format!("busiest: {}", named.join(", ")));
        }
        if unnamed >= 0.02 {
            parts.push(format!("{unnamed:.2} in no process's time"));
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" ({})", parts.join("; "))
        }
    }
}

/// How many of the other processes a run's line names at most.
const NAMED: usize = 3;

const MIB: f64 = 1024.0 * 1024.0;

/// The median of each figure over several measurements of one setup; errors are summed.
pub fn median(runs: &[Figures]) -> Figures {
    let med = |f: &dyn Fn(&Figures) -> f64| middle(runs.iter().map(f).collect());
    let opt = |f: &dyn Fn(&Figures) -> Option<f64>| {
        let values: Vec<f64> = runs.iter().filter_map(f).collect();
        (!values.is_empty()).then(|| middle(values))
    };
    let mut errors = BTreeMap::new();
    let mut conn_errors = BTreeMap::new();
    for run in runs {
        for (k, n) in &run.errors {
            *errors.entry(k.clone()).or_default() += n;
        }
        for (k, n) in &run.conn_errors {
            *conn_errors.entry(k.clone()).or_default() += n;
        }
    }
    let labels: std::collections::BTreeSet<&'static str> = runs
        .iter()
        .flat_map(|r| r.by_label.keys().copied())
        .collect();
    let by_label = labels
        .into_iter()
        .map(|label| {
            let of = |i: usize| {
                middle(
                    runs.iter()
                        .filter_map(|r| r.by_label.get(label).map(|v| v[i]))
                        .collect(),
                )
            };
            (label, [of(0), of(1), of(2)])
        })
        .collect();
    let groups: std::collections::BTreeSet<&String> =
        runs.iter().flat_map(|r| r.threads.keys()).collect();
    let threads = groups
        .into_iter()
        .map(|group| {
            let of = |f: fn(&ThreadShare) -> f64| {
                middle(
                    runs.iter()
                        .filter_map(|r| r.threads.get(group).map(f))
                        .collect(),
                )
            };
            let share = ThreadShare {
                threads: of(|t| t.threads),
                user_us: of(|t| t.user_us),
                system_us: of(|t| t.system_us),
                voluntary: of(|t| t.voluntary),
                involuntary: of(|t| t.involuntary),
                queued_us: of(|t| t.queued_us),
                runs: of(|t| t.runs),
            };
            (group.clone(), share)
        })
        .collect();
    Figures {
        throughput: med(&|f| f.throughput),
        latency_ms: [0, 1, 2, 3, 4].map(|i| med(&|f| f.latency_ms[i])),
        silence_ms: med(&|f| f.silence_ms),
        own_ms: opt(&|f| f.own_ms.map(|[p99, _]| p99))
            .zip(opt(&|f| f.own_ms.map(|[_, max]| max)))
            .map(|(p99, max)| [p99, max]),
        by_label,
        errors,
        cpu_us: med(&|f| f.cpu_us),
        partners_cpu_us: med(&|f| f.partners_cpu_us),
        loadgen_cpu_us: med(&|f| f.loadgen_cpu_us),
        peak_rss: opt(&|f| f.peak_rss),
        idle_rss: opt(&|f| f.idle_rss),
        rss_per_conn: opt(&|f| f.rss_per_conn),
        conns_per_s: opt(&|f| f.conns_per_s),
        cpu_per_conn_us: opt(&|f| f.cpu_per_conn_us),
        conn_errors,
        other_cores: med(&|f| f.other_cores),
        others: None,
        steal_cores: med(&|f| f.steal_cores),
        stalls: Stalls {
            longest_ms: med(&|f| f.stalls.longest_ms),
            long: med(&|f| f.stalls.long),
            realtime: runs.iter().all(|f| f.stalls.realtime),
        },
        threads,
        loadgen_queued_us: med(&|f| f.loadgen_queued_us),
        loadgen_queued_per_run_us: med(&|f| f.loadgen_queued_per_run_us),
        held: super::held::median(&runs.iter().map(|r| &r.held).collect::<Vec<_>>()),
        instructions: opt(&|f| f.instructions),
        instructions_warm: instructions_warm(runs),
        misses: (0..4)
            .map(|i| opt(&|f| f.misses.map(|m| m[i])))
            .collect::<Option<Vec<f64>>>()
            .map(|m| [m[0], m[1], m[2], m[3]]),
    }
}

/// The runs whose window opened no upstream connection, and their median count.
fn instructions_warm(runs: &[Figures]) -> Option<(usize, Option<f64>)> {
    let counted: Vec<&Figures> = runs.iter().filter(|f| f.instructions.is_some()).collect();
    if counted.is_empty() || counted.iter().any(|f| f.held.upstream.is_none()) {
        return None;
    }
    let warm: Vec<f64> = counted
        .iter()
        .filter(|f| f.held.upstream.is_some_and(|c| c.opened == 0))
        .filter_map(|f| f.instructions)
        .collect();
    Some((warm.len(), (!warm.is_empty()).then(|| middle(warm))))
}

/// The line of a `--callgrind` bench's median count (`None`: no count), with the count of
/// the runs that opened no upstream connection beside it when some did.
pub fn instructions_line(f: &Figures, runs: usize) -> Option<String> {
    let per_request = f.instructions?;
    let warm = match f.instructions_warm {
        Some((n, _)) if n == runs => "; no window opened an upstream connection".to_owned(),
        Some((n, Some(warm))) => format!(
            "; {warm:.0} over the {n} of {runs} runs whose window opened no upstream \
             connection: a handshake in a window is about a million instructions, so compare \
             builds on these"
        ),
        Some((_, None)) => {
            "; every window opened an upstream connection, and its handshake is in the count"
                .to_owned()
        }
        None => String::new(),
    };
    Some(format!(
        "   callgrind: {per_request:.0} instructions per request (the hub's user space, all \
         threads, in the window; median of {runs} runs){warm}; read a dump with \
         `callgrind_annotate --inclusive=yes <dump>`"
    ))
}

/// The line of nginx's median count in a `--callgrind` bench (`None`: no count).
pub fn nginx_instructions_line(f: &Figures, runs: usize) -> Option<String> {
    let per_request = f.instructions?;
    Some(format!(
        "   callgrind: nginx {per_request:.0} instructions per request (its user space in the \
         window, as one process doing a worker's job; median of {runs} runs; nginx does not \
         say whether a window opened an upstream connection, its dump does: \
         `SSL_do_handshake` with `--inclusive=yes` is a few thousand instructions when it \
         opened none)"
    ))
}

/// The line of a `--cache-sim` bench's median data-cache figures for `setup` (`None`: the
/// caches were not simulated).
pub fn misses_line(setup: &str, f: &Figures) -> Option<String> {
    let [data, first, last, code] = f.misses?;
    let per_thousand = |n: f64| n * 1000.0 / f.instructions.unwrap_or(0.0).max(1.0);
    Some(format!(
        "   callgrind's cache simulation: {setup} {data:.0} data reads and writes, {first:.0} \
         first-level and {last:.1} last-level data misses per request ({:.1} and {:.2} per \
         1 000 instructions); {code:.0} first-level instruction misses per request ({:.1} per \
         1 000)",
        per_thousand(first),
        per_thousand(last),
        per_thousand(code)
    ))
}

fn middle(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// The cores the setup's own processes kept busy in the window: the server under test, the
/// simulated partners and the load generator. Direct's server is the partners, counted once.
/// Near the machine's core count, every request queues for a core, whatever the server.
pub fn busy_cores(setup: Setup, f: &Figures) -> f64 {
    let server = match setup {
        Setup::Direct => 0.0,
        Setup::Aidhub | Setup::Nginx => f.cpu_us,
    };
    (server + f.partners_cpu_us + f.loadgen_cpu_us) * f.throughput / 1e6
}

fn or_dash(value: Option<f64>, scale: f64, digits: usize) -> String {
    value.map_or("-".to_owned(), |v| format!("{:.*}", digits, v / scale))
}

/// The load table: one row per setup.
pub fn load_table(rows: &[(Setup, Figures)]) -> String {
    let mut out = format!(
        "{:<8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>7} {:>6} {:>10} {:>11} {:>10} {:>5} {:>8}\n",
        "setup",
        "req/s",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "errors",
        "cpu_µs/req",
        "partners_µs",
        "loadgen_µs",
        "cores",
        "peak_MiB"
    );
    for (setup, f) in rows {
        let [p50, p90, p99, p999, max] = f.latency_ms;
        out += &format!(
            "{:<8} {:>8.0} {:>7.2} {:>7.2} {:>7.2} {:>8.2} {:>7.1} {:>6} {:>10.0} {:>11.0} {:>10.0} {:>5.2} {:>8}\n",
            setup.name(),
            f.throughput,
            p50,
            p90,
            p99,
            p999,
            max,
            f.errors.values().sum::<u64>(),
            f.cpu_us,
            f.partners_cpu_us,
            f.loadgen_cpu_us,
            busy_cores(*setup, f),
            or_dash(f.peak_rss, MIB, 1),
        );
    }
    out
}

/// The connections table: one row per setup.
pub fn connections_table(rows: &[(Setup, Figures)]) -> String {
    let mut out = format!(
        "{:<8} {:>8} {:>11} {:>6} {:>9} {:>9}\n",
        "setup", "conn/s", "cpu_µs/conn", "errors", "idle_MiB", "KiB/conn"
    );
    for (setup, f) in rows {
        out += &format!(
            "{:<8} {:>8} {:>11} {:>6} {:>9} {:>9}\n",
            setup.name(),
            or_dash(f.conns_per_s, 1.0, 0),
            or_dash(f.cpu_per_conn_us, 1.0, 0),
            f.conn_errors.values().sum::<u64>(),
            or_dash(f.idle_rss, MIB, 1),
            or_dash(f.rss_per_conn, 1024.0, 1),
        );
    }
    out
}

/// What disturbed the windows, per setup (medians over the runs): the cores other
/// processes used, the cores the hypervisor took and the machine's stalls (`stalls.rs`),
/// from outside the setup; and the longest stretch without an answer, which those make and
/// so does a stall of the setup itself (the hub's disk among them: every lane waits behind
/// a durable call then).
pub fn noise_lines(rows: &[(Setup, Figures)]) -> String {
    let each = |f: &dyn Fn(&Figures) -> String| per_setup(rows, f);
    let how = if rows.iter().all(|(_, f)| f.stalls.realtime) {
        "a real-time thread pinned to each core"
    } else {
        "a thread per core at normal priority, taskset or chrt being refused or missing, so that its lateness holds the wait behind the load too,"
    };
    format!(
        "   cores used by other processes during the windows (median): {}\n   cores the hypervisor took from the machine during the windows (steal time, median): {}\n   longest stall during the windows (median; {how} woke that late from a {} ms sleep; in brackets the stalls over {LONG_MS} ms): {}\n   longest stretch without an answer during the windows (median; a stall of the machine or of the setup itself): {}\n",
        each(&|f| format!("{:.2}", f.other_cores)),
        each(&|f| format!("{:.2}", f.steal_cores)),
        super::stalls::TICK.as_millis(),
        each(&|f| format!("{} ({:.0})", f.stalls.longest(), f.stalls.long)),
        each(&|f| format!("{:.0} ms", f.silence_ms)),
    ) + &format!(
        "   the load generator's own wait for a core during the windows (median; its threads but the stall meters, from schedstat: µs per request, and per time one of them was put on a core; charged to the setup as latency): {}\n",
        each(&|f| if f.loadgen_queued_us.is_nan() {
            "-".to_owned()
        } else {
            format!(
                "{:.1} µs ({:.1} per run)",
                f.loadgen_queued_us, f.loadgen_queued_per_run_us
            )
        }),
    )
}

/// Every error kind of every setup, one per line.
pub fn error_lines(rows: &[(Setup, Figures)]) -> String {
    let mut out = String::new();
    for (setup, f) in rows {
        for (kind, n) in f.errors.iter().chain(&f.conn_errors) {
            out += &format!("  {}: {kind} ×{n}\n", setup.name());
        }
    }
    out
}

/// The errors of `figures` by kind, summed (a setup's measurements at the maximum and at
/// half rate), the most frequent first: `connect: connection refused ×57, …` (empty when
/// there are none). A verdict names them, so that a failed bench says why even where no
/// errors table was printed (`--callgrind`, half rate).
pub fn error_kinds<'a>(figures: impl IntoIterator<Item = &'a Figures>) -> String {
    let mut kinds: BTreeMap<&str, u64> = BTreeMap::new();
    for f in figures {
        for (kind, n) in f.errors.iter().chain(&f.conn_errors) {
            *kinds.entry(kind).or_default() += n;
        }
    }
    let mut kinds: Vec<(&str, u64)> = kinds.into_iter().collect();
    kinds.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    kinds
        .iter()
        .map(|(kind, n)| format!("{kind} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Open loop: each setup's operations' own time beside its latency (median of the runs;
/// empty in a closed loop).
pub fn own_line(rows: &[(Setup, Figures)]) -> String {
    let each: Vec<String> = rows
        .iter()
        .filter_map(|(setup, f)| {
            let [p99, max] = f.own_ms?;
            Some(format!(
                "{} p99 {p99:.2} ms, max {max:.1} (latency p99 {:.2})",
                setup.name(),
                f.latency_ms[2]
            ))
        })
        .collect();
    if each.is_empty() {
        return String::new();
    }
    format!(
        "   each operation's own time, from its send to its last answer, without the wait charged for its lane's earlier operations (a connection serves one at a time; a latency tail far beyond it is that queueing; median): {}\n",
        each.join("; ")
    )
}

/// aidhub against the other setups: throughput, CPU per request and p99.
pub fn ratios(rows: &[(Setup, Figures)]) -> String {
    let find = |s: Setup| rows.iter().find(|(setup, _)| *setup == s).map(|(_, f)| f);
    let Some(hub) = find(Setup::Aidhub) else {
        return String::new();
    };
    let mut out = String::new();
    for other in [Setup::Direct, Setup::Nginx] {
        if let Some(f) = find(other) {
            out += &format!(
                "aidhub/{:<6}  throughput {:.2}×   CPU per request {:.2}×   p99 {:.2}×\n",
                other.name(),
                hub.throughput / f.throughput.max(f64::MIN_POSITIVE),
                hub.cpu_us / f.cpu_us.max(f64::MIN_POSITIVE),
                hub.latency_ms[2] / f.latency_ms[2].max(f64::MIN_POSITIVE),
            );
        }
    }
    out
}

/// The targets that a max-throughput run can judge.
pub fn targets(rows: &[(Setup, Figures)]) -> String {
    let find = |s: Setup| rows.iter().find(|(setup, _)| *setup == s).map(|(_, f)| f);
    let Some(hub) = find(Setup::Aidhub) else {
        return String::new();
    };
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    if let Some(nginx) = find(Setup::Nginx) {
        let t = hub.throughput / nginx.throughput.max(f64::MIN_POSITIVE);
        out += &format!(
            "throughput ≥ 1.2× nginx's: {t:.2}× ({})\n",
            verdict(t >= 1.2)
        );
        let c = hub.cpu_us / nginx.cpu_us.max(f64::MIN_POSITIVE);
        out += &format!(
            "CPU per request ≤ 0.8× nginx's: {c:.2}× ({})\n",
            verdict(c <= 0.8)
        );
        if let (Some(h), Some(n)) = (hub.conns_per_s, nginx.conns_per_s) {
            out += &format!(
                "new connections/s ≥ nginx's: {h:.0} vs {n:.0} ({})\n",
                verdict(h >= n)
            );
        }
    }
    if let Some(idle) = hub.idle_rss {
        out += &format!(
            "idle RSS < 30 MiB: {:.1} MiB ({})\n",
            idle / MIB,
            verdict(idle < 30.0 * MIB)
        );
    }
    if let Some(per) = hub.rss_per_conn {
        out += &format!(
            "RSS per open partner connection < 64 KiB: {:.1} KiB ({})\n",
            per / 1024.0,
            verdict(per < 64.0 * 1024.0)
        );
    }
    out + &disturbed(rows)
}

/// Warnings under verdicts when something outside the setup's own work disturbed its
/// windows: the hypervisor took cores, or the machine stalled.
fn disturbed(rows: &[(Setup, Figures)]) -> String {
    stolen(rows) + &stalled(rows) + &slow_syncs(rows)
}

/// Steal time (cores) from which a setup's median windows count as disturbed: quiet
/// windows of VM 33 had 0.00–0.04, disturbed ones up to 0.82.
const STOLEN_CORES: f64 = 0.05;

/// A warning under verdicts when the machine held a thread off its core for over
/// [`LONG_MS`] in a setup's median run (the stall meters, `stalls.rs`): steal time does not
/// count every such stall (on VM 50 the meters woke 30 and 43 ms late in two of the hub's
/// half-rate runs with no steal time counted, and 36 ms late in a direct run of its h2
/// bench), and a stall holds whatever ran on that core, so its verdict is partly the
/// machine's.
fn stalled(rows: &[(Setup, Figures)]) -> String {
    if rows.iter().all(|(_, f)| f.stalls.long < 1.0) {
        return String::new();
    }
    format!(
        "   disturbed: the machine held a thread off its core for over {LONG_MS} ms during these windows (the stall meters' wake-ups that late, median): {}; the figures above hold those stalls\n",
        per_setup(rows, &|f| if f.stalls.long < 1.0 {
            "0".to_owned()
        } else {
            format!("{:.0} (up to {})", f.stalls.long, f.stalls.longest())
        })
    )
}

/// A warning under verdicts when the hypervisor took cores from the machine during a
/// setup's windows (its median run), so that the figures compared are partly the host's.
fn stolen(rows: &[(Setup, Figures)]) -> String {
    if rows.iter().all(|(_, f)| f.steal_cores < STOLEN_CORES) {
        return String::new();
    }
    format!(
        "   disturbed: the hypervisor took cores from the machine during these windows (steal time, median): {}; the figures above hold its share\n",
        per_setup(rows, &|f| format!("{:.2}", f.steal_cores))
    )
}

/// A warning under verdicts when the hub's ledger took over [`SLOW_MS`] for a sync in its
/// median run. That is the disk's stall, not the hub's work: the journal syncs a few hundred
/// bytes, 0.2 ms at the median on VM 56, where a loop of such syncs beside only a callgrind
/// bench stalled for up to 58 ms in two minutes. Every durable answer waits for the sync under
/// way, and over HTTP/1.1 so do the requests queued behind it on its connection, so one
/// stall of 100 ms in a window of 8 s is the whole p99 of every kind.
fn slow_syncs(rows: &[(Setup, Figures)]) -> String {
    let slow: Vec<String> =
        rows.iter()
            .flat_map(|(setup, f)| {
                f.held.syncs.iter().filter(|t| t.slow > 0).map(move |t| {
                    format!("{} {} {} ({})", setup.name(), t.name, t.slow, t.slowest())
                })
            })
            .collect();
    if slow.is_empty() {
        return String::new();
    }
    format!(
        "   disturbed: the disk took over {SLOW_MS} ms for some of the ledger's syncs during these windows (the hub's aidhub_ledger_sync_seconds, median): {}; durable answers waited for them, and so did the requests queued behind those on their connections (`--ledger-dir /dev/shm` tells the disk's share)\n",
        slow.join(", ")
    )
}

/// One figure per setup, named: `direct 0.41, aidhub 0.00`.
fn per_setup(rows: &[(Setup, Figures)], figure: &dyn Fn(&Figures) -> String) -> String {
    rows.iter()
        .map(|(s, f)| format!("{} {}", s.name(), figure(f)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Latency by the mix's labels, one row per label and a p50/p99 column per setup; marks
/// the requests that wait for a durable ledger write (a journal sync) on the hub.
pub fn label_table(rows: &[(Setup, Figures)]) -> String {
    let labels: std::collections::BTreeSet<&'static str> = rows
        .iter()
        .flat_map(|(_, f)| f.by_label.keys().copied())
        .collect();
    let mut out = format!("{:<32} {:>6}", "request (p50/p99 ms)", "share");
    for (setup, _) in rows {
        out += &format!(" {:>13}", setup.name());
    }
    out.push('\n');
    for label in labels {
        let share = rows
            .iter()
            .find_map(|(_, f)| f.by_label.get(label))
            .map_or(0.0, |v| v[0]);
        let mark = if DURABLE.contains(&label) { " *" } else { "" };
        out += &format!("{:<32} {:>5.1}%", format!("{label}{mark}"), share * 100.0);
        for (_, f) in rows {
            out += &match f.by_label.get(label) {
                Some([_, p50, p99]) => format!(" {:>13}", format!("{p50:.2}/{p99:.2}")),
                None => format!(" {:>13}", "-"),
            };
        }
        out.push('\n');
    }
    out + "   * waits on aidhub for a durable ledger write: the journal synced to disk (fdatasync)\n"
}

/// Where the CPU time of each process under test goes, per request: its thread groups,
/// costliest first, those under 2% of its total folded into one row.
pub fn thread_table(rows: &[(Setup, Figures)]) -> String {
    let mut out = format!(
        "{:<8} {:<22} {:>8} {:>7} {:>7} {:>10} {:>9} {:>11}\n",
        "setup", "threads", "user_µs", "sys_µs", "waits", "preempted", "queued_µs", "queued/run"
    );
    let line = |setup: Setup, name: String, t: &ThreadShare| {
        // Unknown (no `schedstat`: NaN) or undefined (no runs: a division by zero) is "-".
        let figure = |v: f64| {
            if v.is_finite() {
                format!("{v:.1}")
            } else {
                "-".to_owned()
            }
        };
        format!(
            "{:<8} {:<22} {:>8.1} {:>7.1} {:>7.2} {:>10.2} {:>9} {:>11}\n",
            setup.name(),
            name,
            t.user_us,
            t.system_us,
            t.voluntary,
            t.involuntary,
            figure(t.queued_us),
            figure(t.queued_us / t.runs)
        )
    };
    for (setup, f) in rows {
        let mut groups: Vec<(&String, &ThreadShare)> = f.threads.iter().collect();
        groups.sort_by(|a, b| cpu(b.1).total_cmp(&cpu(a.1)));
        let total: f64 = groups.iter().map(|(_, t)| cpu(t)).sum();
        let mut rest = ThreadShare::default();
        for (name, t) in groups {
            if cpu(t) >= total * 0.02 {
                out += &line(*setup, format!("{name} ×{:.0}", t.threads), t);
            } else {
                rest.threads += t.threads;
                rest.user_us += t.user_us;
                rest.system_us += t.system_us;
                rest.voluntary += t.voluntary;
                rest.involuntary += t.involuntary;
                rest.queued_us += t.queued_us;
                rest.runs += t.runs;
            }
        }
        if rest.threads > 0.0 {
            out += &line(*setup, format!("other threads ×{:.0}", rest.threads), &rest);
        }
    }
    out + "   threads: grouped by name without their number; waits and preempted: voluntary and involuntary context switches per request\n\
           \x20  queued_µs: time the threads were ready to run but waited for a core, per request, and queued/run that wait in µs per time a thread was put on a core (schedstat)\n"
}

fn cpu(t: &ThreadShare) -> f64 {
    t.user_us + t.system_us
}

/// The mix's labels whose ledger change on the hub is durable before the answer goes out.
const DURABLE: [&str; 3] = [
    "send_msp_token",
    "request_activation_code async",
    "send_activation_code",
];

/// The half-rate comparison: p99 of each setup and what aidhub adds over direct.
pub fn half_rate(rate: f64, rows: &[(Setup, Figures)]) -> String {
    let mut out = format!(
        "{:<8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>6} {:>10} {:>5}\n",
        "setup", "req/s", "p50_ms", "p99_ms", "p99.9_ms", "max_ms", "errors", "cpu_µs/req", "cores"
    );
    for (setup, f) in rows {
        out += &format!(
            "{:<8} {:>8.0} {:>7.2} {:>7.2} {:>8.2} {:>7.1} {:>6} {:>10.0} {:>5.2}\n",
            setup.name(),
            f.throughput,
            f.latency_ms[0],
            f.latency_ms[2],
            f.latency_ms[3],
            f.latency_ms[4],
            f.errors.values().sum::<u64>(),
            f.cpu_us,
            busy_cores(*setup, f),
        );
    }
    let find = |s: Setup| rows.iter().find(|(setup, _)| *setup == s).map(|(_, f)| f);
    if let (Some(hub), Some(direct)) = (find(Setup::Aidhub), find(Setup::Direct)) {
        let added = hub.latency_ms[2] - direct.latency_ms[2];
        out += &format!(
            "at {rate:.0} req/s aidhub adds {added:.2} ms to p99 over direct (target ≤ 1 ms: {})\n",
            if added <= 1.0 { "met" } else { "MISSED" }
        );
    }
    if let (Some(hub), Some(nginx)) = (find(Setup::Aidhub), find(Setup::Nginx)) {
        out += &format!(
            "at {rate:.0} req/s aidhub's p99 is {:.2} ms against nginx's {:.2} ms\n",
            hub.latency_ms[2], nginx.latency_ms[2]
        );
    }
    out + &disturbed(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(middle(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(middle(vec![5.0, 1.0, 3.0]), 3.0);
        assert_eq!(middle(vec![]), 0.0);
    }

    #[test]
    fn medians_take_each_figure_on_its_own_and_sum_the_errors() {
        let run = |t: f64, e: u64| Figures {
            throughput: t,
            errors: BTreeMap::from([("x".to_owned(), e)]),
            idle_rss: (t > 1.0).then_some(t),
            ..Figures::default()
        };
        let m = median(&[run(1.0, 1), run(3.0, 0), run(2.0, 2)]);
        assert_eq!(m.throughput, 2.0);
        assert_eq!(m.errors["x"], 3);
        assert_eq!(m.idle_rss, Some(2.5));
    }

    #[test]
    fn the_simulated_caches_misses_are_given_per_request_and_per_thousand_instructions() {
        let run = |misses: [f64; 4]| Figures {
            instructions: Some(80_000.0),
            misses: Some(misses),
            ..Figures::default()
        };
        let f = median(&[
            run([30_000.0, 900.0, 40.0, 3_500.0]),
            run([31_000.0, 1_000.0, 50.0, 3_400.0]),
            run([32_000.0, 1_200.0, 45.0, 3_300.0]),
        ]);
        assert_eq!(f.misses, Some([31_000.0, 1_000.0, 45.0, 3_400.0]));
        assert_eq!(
            misses_line("aidhub", &f).unwrap(),
            "   callgrind's cache simulation: aidhub 31000 data reads and writes, 1000 \
             first-level and 45.0 last-level data misses per request (12.5 and 0.56 per 1 000 \
             instructions); 3400 first-level instruction misses per request (42.5 per 1 000)"
        );
        // A run without the figures is left out of the median.
        let unsimulated = Figures {
            misses: None,
            ..run([1.0, 1.0, 1.0, 1.0])
        };
        assert_eq!(
            median(&[run([1.0, 1.0, 1.0, 1.0]), unsimulated])
                .misses
                .map(|m| m[0]),
            Some(1.0)
        );
        assert_eq!(misses_line("aidhub", &Figures::default()), None);
    }

    /// VM 45's callgrind bench: two of three windows opened one upstream connection each,
    /// and their counts were some 550 instructions per request over the third's.
    #[test]
    fn callgrind_counts_are_also_given_over_the_windows_that_opened_no_connection() {
        use super::super::held::{Connections, Held};
        let run = |instructions: f64, opened: Option<u64>| Figures {
            instructions: Some(instructions),
            held: Held {
                upstream: opened.map(|opened| Connections { opened, waits: 0 }),
                ..Held::default()
            },
            ..Figures::default()
        };
        let line = |runs: &[Figures]| instructions_line(&median(runs), runs.len()).unwrap();
        let vm45 = [
            run(78_191.0, Some(0)),
            run(78_744.0, Some(1)),
            run(78_738.0, Some(1)),
        ];
        assert_eq!(median(&vm45).instructions, Some(78_738.0));
        assert_eq!(median(&vm45).instructions_warm, Some((1, Some(78_191.0))));
        assert_eq!(
            line(&vm45),
            "   callgrind: 78738 instructions per request (the hub's user space, all threads, \
             in the window; median of 3 runs); 78191 over the 1 of 3 runs whose window opened \
             no upstream connection: a handshake in a window is about a million instructions, \
             so compare builds on these; read a dump with `callgrind_annotate --inclusive=yes \
             <dump>`"
        );
        let warm = [run(78_000.0, Some(0)), run(78_100.0, Some(0))];
        assert!(line(&warm).contains("runs); no window opened an upstream connection; read"));
        let cold = [run(79_000.0, Some(2)), run(78_900.0, Some(1))];
        assert_eq!(median(&cold).instructions_warm, Some((0, None)));
        assert!(line(&cold).contains("every window opened an upstream connection"));
        // A run whose counters could not be read: nothing is said of connections.
        let unread = [run(78_000.0, Some(0)), run(78_500.0, None)];
        assert_eq!(median(&unread).instructions_warm, None);
        assert!(line(&unread).contains("median of 2 runs); read a dump"));
        // Not a callgrind bench: no line.
        assert_eq!(instructions_line(&Figures::default(), 3), None);
    }

    #[test]
    fn the_own_time_is_a_median_beside_the_latency_and_absent_in_a_closed_loop() {
        let run = |p99: f64, own: Option<[f64; 2]>| Figures {
            latency_ms: [0.5, 1.0, p99, p99, p99],
            own_ms: own,
            ..Figures::default()
        };
        let open = median(&[
            run(120.0, Some([9.0, 20.0])),
            run(5.0, Some([3.0, 15.0])),
            run(20.0, Some([4.0, 25.0])),
        ]);
        assert_eq!(open.own_ms, Some([4.0, 20.0]));
        let closed = median(&[run(2.0, None), run(3.0, None)]);
        assert_eq!(closed.own_ms, None);
        assert_eq!(
            open.line().split(", no answer").next(),
            Some("0 req/s, p50 0.50 ms, p99 20.00 ms, max 20.0 ms, own time p99 4.00 ms, max 20.0 ms")
        );
        assert!(!closed.line().contains("own time"), "{}", closed.line());
        let line = own_line(&[(Setup::Direct, closed), (Setup::Aidhub, open)]);
        assert!(
            line.ends_with("(a connection serves one at a time; a latency tail far beyond it is that queueing; median): aidhub p99 4.00 ms, max 20.0 (latency p99 20.00)\n"),
            "{line}"
        );
        assert_eq!(own_line(&[(Setup::Direct, median(&[run(2.0, None)]))]), "");
    }

    #[test]
    fn error_kinds_are_summed_over_the_measurements_the_most_frequent_first() {
        let failed = |errors: &[(&str, u64)], conn_errors: &[(&str, u64)]| Figures {
            errors: errors.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
            conn_errors: conn_errors
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            ..Figures::default()
        };
        // One setup at the maximum, then at half rate with a failed handshake too.
        let max = failed(&[("timeout", 1), ("status 503", 2)], &[]);
        let half = failed(&[("timeout", 4)], &[("tls: BadSignature", 1)]);
        assert_eq!(
            error_kinds([&max, &half]),
            "timeout ×5, status 503 ×2, tls: BadSignature ×1"
        );
        assert_eq!(error_kinds([&max]), "status 503 ×2, timeout ×1");
        assert_eq!(error_kinds([&Figures::default()]), "");
    }

    #[test]
    fn the_load_table_has_a_row_per_setup_with_its_errors() {
        let rows = vec![
            (Setup::Direct, Figures::default()),
            (Setup::Aidhub, Figures::default()),
        ];
        let table = load_table(&rows);
        let row = table.lines().find(|l| l.starts_with("aidhub ")).unwrap();
        let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
        let column = header.iter().position(|h| *h == "errors").unwrap();
        assert_eq!(row.split_whitespace().nth(column), Some("0"), "{table}");
    }

    #[test]
    fn the_hypervisors_steal_is_printed_apart_from_other_processes() {
        let hub = Figures {
            other_cores: 0.05,
            steal_cores: 0.35,
            ..Figures::default()
        };
        let direct = Figures {
            other_cores: 0.12,
            ..Figures::default()
        };
        assert!(
            hub.line()
                .contains("; other processes used 0.05 cores, the hypervisor took 0.35 (steal); "),
            "{}",
            hub.line()
        );
        let named = Figures {
            other_cores: 0.19,
            others: Some(vec![
                ("kworker/1:1H".into(), 0.09),
                ("postgres".into(), 0.04),
                ("sshd".into(), 0.004),
            ]),
            ..Figures::default()
        };
        assert!(
            named.line().contains(
                "; other processes used 0.19 cores (busiest: kworker/1:1H 0.09, postgres 0.04; 0.06 in \
                 no process's time), the hypervisor took 0.00 (steal); "
            ),
            "{}",
            named.line()
        );
        // At most three names, the busiest (the census lists them busiest first); the rest
        // still count as charged to a process.
        let crowded = Figures {
            other_cores: 0.24,
            others: Some(vec![
                ("kworker/1:1H".into(), 0.09),
                ("postgres".into(), 0.04),
                ("redis-server".into(), 0.03),
                ("beam.smp".into(), 0.02),
            ]),
            ..Figures::default()
        };
        assert!(
            crowded.line().contains(
                "; other processes used 0.24 cores (busiest: kworker/1:1H 0.09, postgres 0.04, \
                 redis-server 0.03; 0.06 in no process's time), "
            ),
            "{}",
            crowded.line()
        );
        let idle_interrupts = Figures {
            other_cores: 0.03,
            others: Some(Vec::new()),
            ..Figures::default()
        };
        assert!(
            idle_interrupts
                .line()
                .contains("; other processes used 0.03 cores (0.03 in no process's time), "),
            "{}",
            idle_interrupts.line()
        );
        let lines = noise_lines(&[(Setup::Direct, direct), (Setup::Aidhub, hub)]);
        let line = |start: &str| lines.lines().find(|l| l.trim_start().starts_with(start));
        assert_eq!(
            line("cores used by other processes"),
            Some("   cores used by other processes during the windows (median): direct 0.12, aidhub 0.05"),
            "{lines}"
        );
        assert_eq!(
            line("cores the hypervisor took"),
            Some("   cores the hypervisor took from the machine during the windows (steal time, median): direct 0.00, aidhub 0.35"),
            "{lines}"
        );
    }

    #[test]
    fn verdicts_say_when_the_hypervisor_took_cores_during_the_windows() {
        let run = |steal_cores: f64| Figures {
            steal_cores,
            ..Figures::default()
        };
        let quiet = [(Setup::Direct, run(0.04)), (Setup::Aidhub, run(0.0))];
        assert!(!half_rate(100.0, &quiet).contains("disturbed"));
        assert!(!targets(&quiet).contains("disturbed"));
        let stolen = [(Setup::Direct, run(0.41)), (Setup::Aidhub, run(0.0))];
        let warning = "   disturbed: the hypervisor took cores from the machine during these windows (steal time, median): direct 0.41, aidhub 0.00; the figures above hold its share\n";
        assert!(half_rate(100.0, &stolen).ends_with(warning));
        assert!(targets(&stolen).ends_with(warning));
    }

    #[test]
    fn verdicts_say_when_the_machine_stalled_during_the_windows() {
        let run = |longest_ms: f64, long: f64| Figures {
            stalls: Stalls {
                longest_ms,
                long,
                realtime: true,
            },
            ..Figures::default()
        };
        // Stalls up to 4.2 ms, and a median run with none over 5 ms, are the quiet machine's.
        let quiet = [
            (Setup::Direct, run(4.2, 0.0)),
            (Setup::Aidhub, run(0.0, 0.0)),
        ];
        assert!(!half_rate(100.0, &quiet).contains("disturbed"));
        assert!(!targets(&quiet).contains("disturbed"));
        let stalled = [
            (Setup::Direct, run(0.6, 0.0)),
            (Setup::Aidhub, run(30.0, 2.0)),
        ];
        let warning = "   disturbed: the machine held a thread off its core for over 5 ms during these windows (the stall meters' wake-ups that late, median): direct 0, aidhub 2 (up to 30.0 ms); the figures above hold those stalls\n";
        assert!(half_rate(100.0, &stalled).ends_with(warning));
        assert!(targets(&stalled).ends_with(warning));
        // Both at once: steal first, then the stalls.
        let both = [(
            Setup::Aidhub,
            Figures {
                steal_cores: 0.2,
                ..run(12.5, 1.0)
            },
        )];
        let verdict = half_rate(100.0, &both);
        assert_eq!(verdict.matches("disturbed").count(), 2, "{verdict}");
        assert!(
            verdict.ends_with("aidhub 1 (up to 12.5 ms); the figures above hold those stalls\n"),
            "{verdict}"
        );
    }

    #[test]
    fn verdicts_say_when_the_disk_stalled_the_ledgers_syncs() {
        use super::super::held::{Held, Timing};
        let sync = |name: &str, slow: u64, slowest_within_ms: Option<f64>| Timing {
            name: name.to_owned(),
            count: 15_000,
            mean_ms: 0.22,
            p99_within_ms: Some(1.0),
            slow,
            slowest_within_ms,
        };
        let hub = |syncs: Vec<Timing>| Figures {
            held: Held {
                syncs,
                ..Held::default()
            },
            ..Figures::default()
        };
        // Syncs within 10 ms, however many, are the disk's usual pace.
        let quiet = [
            (Setup::Direct, Figures::default()),
            (
                Setup::Aidhub,
                hub(vec![
                    sync("journal", 0, Some(2.0)),
                    sync("checkpoint", 0, Some(5.0)),
                ]),
            ),
        ];
        assert!(!half_rate(100.0, &quiet).contains("disturbed"));
        assert!(!targets(&quiet).contains("disturbed"));
        let stalled = [
            (Setup::Direct, Figures::default()),
            (
                Setup::Aidhub,
                hub(vec![
                    sync("checkpoint", 0, Some(5.0)),
                    sync("journal", 1, Some(200.0)),
                ]),
            ),
        ];
        let warning = "   disturbed: the disk took over 10 ms for some of the ledger's syncs during these windows (the hub's aidhub_ledger_sync_seconds, median): aidhub journal 1 (the slowest within 200 ms); durable answers waited for them, and so did the requests queued behind those on their connections (`--ledger-dir /dev/shm` tells the disk's share)\n";
        assert!(half_rate(100.0, &stalled).ends_with(warning));
        assert!(targets(&stalled).ends_with(warning));
        // Beyond the largest bucket, and both kinds.
        let both = [(
            Setup::Aidhub,
            hub(vec![
                sync("checkpoint", 2, Some(20.0)),
                sync("journal", 3, None),
            ]),
        )];
        let verdict = half_rate(100.0, &both);
        assert!(
            verdict.contains("aidhub checkpoint 2 (the slowest within 20 ms), aidhub journal 3 (the slowest beyond the largest bucket); durable"),
            "{verdict}"
        );
    }

    #[test]
    fn busy_cores_count_the_server_the_partners_and_the_load_generator_once_each() {
        // 100 µs per request at 10 000 req/s: one core.
        let hub = Figures {
            throughput: 10_000.0,
            cpu_us: 60.0,
            partners_cpu_us: 20.0,
            loadgen_cpu_us: 20.0,
            ..Figures::default()
        };
        // Direct's server is the partners: its CPU is theirs, counted once.
        let direct = Figures {
            cpu_us: 20.0,
            ..hub.clone()
        };
        assert!((busy_cores(Setup::Aidhub, &hub) - 1.0).abs() < 1e-9);
        assert!((busy_cores(Setup::Direct, &direct) - 0.4).abs() < 1e-9);

        let rows = vec![(Setup::Direct, direct), (Setup::Aidhub, hub)];
        for table in [load_table(&rows), half_rate(10_000.0, &rows)] {
            let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
            let cell = |setup: &str, name: &str| {
                let column = header.iter().position(|h| *h == name).unwrap();
                let row = table.lines().find(|l| l.starts_with(setup)).unwrap();
                row.split_whitespace().nth(column).unwrap().to_owned()
            };
            assert_eq!(cell("direct ", "cores"), "0.40", "{table}");
            assert_eq!(cell("aidhub ", "cores"), "1.00", "{table}");
            assert_eq!(cell("aidhub ", "cpu_µs/req"), "60", "{table}");
        }
    }

    #[test]
    fn the_durable_marks_name_the_mix_labels_that_write_durably() {
        use super::super::mix;
        let id = uuid::Uuid::new_v4();
        let labels = [
            mix::onboard(&id, b"secret").label,
            mix::request_code(&id, &id, true).label,
            mix::send_code(&id, &id).label,
        ];
        assert_eq!(DURABLE, labels);
        assert!(!DURABLE.contains(&mix::request_code(&id, &id, false).label));
    }

    #[test]
    fn the_label_table_has_a_column_per_setup_and_marks_durable_rows() {
        let figures = |p99: f64| Figures {
            by_label: BTreeMap::from([
                ("send_msp_token", [0.1, 0.5, p99]),
                ("send_csim_status", [0.9, 0.2, p99 / 2.0]),
            ]),
            ..Figures::default()
        };
        let table = label_table(&[(Setup::Direct, figures(1.0)), (Setup::Aidhub, figures(3.0))]);
        let row = |start: &str| table.lines().find(|l| l.starts_with(start)).unwrap();
        assert_eq!(
            row("send_msp_token *")
                .split_whitespace()
                .collect::<Vec<_>>(),
            ["send_msp_token", "*", "10.0%", "0.50/1.00", "0.50/3.00"],
            "{table}"
        );
        assert!(row("send_csim_status ").ends_with("0.20/1.50"), "{table}");
    }

    #[test]
    fn the_thread_table_puts_the_costliest_group_first_and_folds_the_small_ones() {
        let share = |threads: f64, user_us: f64| ThreadShare {
            threads,
            user_us,
            system_us: user_us / 2.0,
            voluntary: 0.5,
            involuntary: 0.25,
            queued_us: user_us / 10.0,
            runs: 0.5,
        };
        let figures = Figures {
            threads: BTreeMap::from([
                ("aidhub-serve".to_owned(), share(2.0, 40.0)),
                ("ledger-writer".to_owned(), share(1.0, 60.0)),
                ("sled-io".to_owned(), share(7.0, 0.5)),
                ("aidhub".to_owned(), share(3.0, 0.5)),
            ]),
            ..Figures::default()
        };
        let table = thread_table(&[(Setup::Aidhub, figures)]);
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(1)
            .filter(|l| l.starts_with("aidhub "))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            rows,
            [
                vec![
                    "aidhub",
                    "ledger-writer",
                    "×1",
                    "60.0",
                    "30.0",
                    "0.50",
                    "0.25",
                    "6.0",
                    "12.0"
                ],
                vec![
                    "aidhub",
                    "aidhub-serve",
                    "×2",
                    "40.0",
                    "20.0",
                    "0.50",
                    "0.25",
                    "4.0",
                    "8.0"
                ],
                vec![
                    "aidhub", "other", "threads", "×10", "1.0", "0.5", "1.00", "0.50", "0.1", "0.1"
                ],
            ],
            "{table}"
        );
    }

    #[test]
    fn unknown_or_undefined_queued_figures_are_dashes() {
        let share = |queued_us: f64, runs: f64| ThreadShare {
            threads: 1.0,
            user_us: 10.0,
            queued_us,
            runs,
            ..ThreadShare::default()
        };
        let figures = Figures {
            threads: BTreeMap::from([
                // A kernel without `schedstat`.
                ("nginx".to_owned(), share(f64::NAN, 0.0)),
                // A thread that never ran in the window.
                ("idle".to_owned(), share(0.0, 0.0)),
            ]),
            ..Figures::default()
        };
        let table = thread_table(&[(Setup::Nginx, figures)]);
        let last_two = |group: &str| {
            let row = table.lines().find(|l| l.contains(group)).unwrap();
            let mut columns: Vec<&str> = row.split_whitespace().rev().take(2).collect();
            columns.reverse();
            columns
        };
        assert_eq!(last_two("nginx ×"), ["-", "-"], "{table}");
        assert_eq!(last_two("idle ×"), ["0.0", "-"], "{table}");
    }

    #[test]
    fn thread_groups_take_their_medians_over_the_runs_they_appear_in() {
        let run = |user_us: f64, extra: bool| {
            let mut threads = BTreeMap::from([(
                "aidhub-serve".to_owned(),
                ThreadShare {
                    threads: 2.0,
                    user_us,
                    ..ThreadShare::default()
                },
            )]);
            if extra {
                threads.insert("blocking".to_owned(), ThreadShare::default());
            }
            Figures {
                threads,
                ..Figures::default()
            }
        };
        let m = median(&[run(30.0, false), run(10.0, true), run(20.0, false)]);
        assert_eq!(m.threads["aidhub-serve"].user_us, 20.0);
        assert_eq!(m.threads["aidhub-serve"].threads, 2.0);
        assert!(m.threads.contains_key("blocking"));
    }
}
