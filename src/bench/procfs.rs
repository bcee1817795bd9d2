//! What the kernel says a process under test costs: CPU time (`utime + stime` from
//! `/proc/<pid>/stat`) and memory (`VmRSS`, `VmHWM` from `/proc/<pid>/status`), each summed
//! over the process and all its descendants (nginx's master and workers count as one server);
//! and the same CPU time split by thread, with context switches and the time each thread was
//! ready to run but waited for a core (`/proc/<pid>/task/<tid>/schedstat`), to show where it
//! goes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

/// Clock ticks per second of `utime`/`stime` (`getconf CLK_TCK`; 100 on every Linux we know).
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks: &u64| ticks > 0)
        .unwrap_or(100)
}

/// `pid` and every process below it.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parents: HashMap<u32, Vec<u32>> = HashMap::new();
    for (child, text) in every_stat() {
        if let Some(stat) = parse_stat(&text) {
            parents.entry(stat.ppid).or_default().push(child);
        }
    }
    let mut out = vec![pid];
    let mut next = 0;
    while next < out.len() {
        if let Some(children) = parents.get(&out[next]) {
            out.extend(children);
        }
        next += 1;
    }
    out
}

/// Every process on the machine with its `stat` line (a process that ends during the walk
/// is left out).
fn every_stat() -> impl Iterator<Item = (u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flat_map(|entries| entries.flatten())
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let text = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            Some((pid, text))
        })
}

/// CPU time used so far by `pid` and its descendants (all threads).
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> Duration {
    cpu_time_of(&tree(pid), ticks_per_sec)
}

/// CPU time used so far by the processes `pids` (all threads; a process gone counts
/// nothing). With the list from [`tree`] taken once, a read costs a file per process
/// instead of a walk of every process on the machine.
pub fn cpu_time_of(pids: &[u32], ticks_per_sec: u64) -> Duration {
    ticks_to_time(pids.iter().filter_map(|&p| read_stat(p)), ticks_per_sec)
}

/// CPU time used so far by `pid` alone (all threads; not its children — the bench's own
/// process is the parent of everything it measures).
pub fn own_cpu_time(pid: u32, ticks_per_sec: u64) -> Duration {
    ticks_to_time(read_stat(pid), ticks_per_sec)
}

fn ticks_to_time(stats: impl IntoIterator<Item = Stat>, ticks_per_sec: u64) -> Duration {
    from_ticks(
        stats.into_iter().map(|s| s.utime + s.stime).sum(),
        ticks_per_sec,
    )
}

/// Clock ticks (`/proc`'s unit of CPU time) as time.
fn from_ticks(ticks: u64, ticks_per_sec: u64) -> Duration {
    Duration::from_micros(ticks * 1_000_000 / ticks_per_sec.max(1))
}

/// What the whole machine's cores did so far, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct Machine {
    /// Busy time (all cores: user, nice, system, irq, softirq, steal), to tell how much
    /// other processes took.
    pub busy: Duration,
    /// Time the hypervisor took from this machine's virtual CPUs (steal): a core wanted to
    /// run and the host ran something else. Counted in `busy`, and no process's own.
    pub steal: Duration,
}

/// The machine's busy and steal time so far, from one read of `/proc/stat`.
pub fn machine(ticks_per_sec: u64) -> Machine {
    let (busy, steal) = machine_ticks(&read_machine_line());
    let time = |ticks: u64| from_ticks(ticks, ticks_per_sec);
    Machine {
        busy: time(busy),
        steal: time(steal),
    }
}

fn read_machine_line() -> String {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    text.lines().next().unwrap_or_default().to_owned()
}

/// The busy and the steal ticks of `/proc/stat`'s `cpu` line.
fn machine_ticks(line: &str) -> (u64, u64) {
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let field = |i: usize| fields.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    let busy = [0, 1, 2, 5, 6, 7].iter().map(|&i| field(i)).sum();
    (busy, field(7))
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), summed over the process tree, in
/// bytes. `None` when the process is gone.
pub fn memory(pid: u32, field: &str) -> Option<u64> {
    let values: Vec<u64> = tree(pid)
        .into_iter()
        .filter_map(|p| status_kib(p, field))
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<u64>() * 1024)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status_field(&text, field)
}

/// The number of a `status` line `field: <number> [unit]`.
fn status_field(status: &str, field: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// CPU time and context switches of the threads that share a name (serving threads
/// `aidhub-serve-1` and `aidhub-serve-2` are the group `aidhub-serve`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadTimes {
    /// Threads in the group.
    pub threads: u32,
    /// User-space CPU time.
    pub user: Duration,
    /// Kernel CPU time.
    pub system: Duration,
    /// Times a thread gave up the CPU to wait (I/O, a lock, an empty queue).
    pub voluntary: u64,
    /// Times a thread was taken off the CPU while it could still run (preempted).
    pub involuntary: u64,
    /// Time a thread was ready to run but waited for a core (`schedstat`'s second field;
    /// `None` where the kernel keeps no `schedstat`, built without `CONFIG_SCHED_INFO`).
    pub queued: Option<Duration>,
    /// Times a thread was put on a core (`schedstat`'s third field).
    pub runs: u64,
}

/// The threads of the processes `pids` (a [`tree`], say), grouped by name ([`thread_group`]).
pub fn threads_of(pids: &[u32], ticks_per_sec: u64) -> BTreeMap<String, ThreadTimes> {
    let mut groups: BTreeMap<String, ThreadTimes> = BTreeMap::new();
    let time = |ticks: u64| from_ticks(ticks, ticks_per_sec);
    for &process in pids {
        let dir = Path::new("/proc").join(process.to_string()).join("task");
        let Ok(tasks) = std::fs::read_dir(dir) else {
            continue;
        };
        for task in tasks.flatten() {
            let path = task.path();
            // A thread that ends between the listing and the reads is left out.
            let (Ok(stat), Ok(status)) = (
                std::fs::read_to_string(path.join("stat")),
                std::fs::read_to_string(path.join("status")),
            ) else {
                continue;
            };
            let (Some(name), Some(stat)) = (thread_name(&stat), parse_stat(&stat)) else {
                continue;
            };
            let group = groups.entry(thread_group(name).to_owned()).or_default();
            group.threads += 1;
            group.user += time(stat.utime);
            group.system += time(stat.stime);
            group.voluntary += status_field(&status, "voluntary_ctxt_switches").unwrap_or(0);
            group.involuntary += status_field(&status, "nonvoluntary_ctxt_switches").unwrap_or(0);
            if let Some((queued, runs)) = std::fs::read_to_string(path.join("schedstat"))
                .ok()
                .and_then(|text| parse_schedstat(&text))
            {
                group.queued = Some(group.queued.unwrap_or_default() + queued);
                group.runs += runs;
            }
        }
    }
    groups
}

/// What the groups of `after` did since `before` (thread counts as in `after`; a thread that
/// ended in between takes its time with it).
pub fn threads_since(
    after: &BTreeMap<String, ThreadTimes>,
    before: &BTreeMap<String, ThreadTimes>,
) -> BTreeMap<String, ThreadTimes> {
    after
        .iter()
        .map(|(name, a)| {
            let b = before.get(name).copied().unwrap_or_default();
            (name.clone(), since(a, &b))
        })
        .collect()
}

/// What one group's threads did between two reads (`threads` is the later count).
pub fn since(a: &ThreadTimes, b: &ThreadTimes) -> ThreadTimes {
    ThreadTimes {
        threads: a.threads,
        user: a.user.saturating_sub(b.user),
        system: a.system.saturating_sub(b.system),
        voluntary: a.voluntary.saturating_sub(b.voluntary),
        involuntary: a.involuntary.saturating_sub(b.involuntary),
        queued: a
            .queued
            .map(|q| q.saturating_sub(b.queued.unwrap_or_default())),
        runs: a.runs.saturating_sub(b.runs),
    }
}

/// Two groups' threads together (`queued` only where both have it).
pub fn add(a: &ThreadTimes, b: &ThreadTimes) -> ThreadTimes {
    ThreadTimes {
        threads: a.threads + b.threads,
        user: a.user + b.user,
        system: a.system + b.system,
        voluntary: a.voluntary + b.voluntary,
        involuntary: a.involuntary + b.involuntary,
        queued: a.queued.zip(b.queued).map(|(x, y)| x + y),
        runs: a.runs + b.runs,
    }
}

/// The time a thread waited on a run queue and the times it ran, from its `schedstat`: the
/// nanoseconds it ran, the nanoseconds it waited, and the count of its runs.
fn parse_schedstat(text: &str) -> Option<(Duration, u64)> {
    let mut fields = text.split_whitespace().skip(1);
    let waited = fields.next()?.parse().ok()?;
    let runs = fields.next()?.parse().ok()?;
    Some((Duration::from_nanos(waited), runs))
}

/// A thread's group: its name without a trailing number (`aidhub-serve-2` → `aidhub-serve`,
/// `sled-io-0` → `sled-io`; `nginx` stays `nginx`).
pub fn thread_group(name: &str) -> &str {
    let trimmed = name
        .trim_end_matches(|c: char| c.is_ascii_digit())
        .trim_end_matches(['-', '_', ' ']);
    if trimmed.is_empty() {
        name
    } else {
        trimmed
    }
}

/// The command name of a `stat` line: between the first `(` and the last `)`.
fn thread_name(stat: &str) -> Option<&str> {
    stat.get(stat.find('(')? + 1..stat.rfind(')')?)
}

struct Stat {
    /// `R`, `S`, `D`, … ; `Z`: exited, not yet reaped by its parent.
    state: char,
    ppid: u32,
    utime: u64,
    stime: u64,
    /// When the process started, in clock ticks after boot: with the pid, it names one
    /// process, since a pid can be reused.
    started: u64,
}

/// Whether `pid` still runs: it exists and is not a zombie (a zombie whose parent died
/// first may never be reaped in a container whose init does not reap).
pub fn alive(pid: u32) -> bool {
    read_stat(pid).is_some_and(|stat| stat.state != 'Z')
}

fn read_stat(pid: u32) -> Option<Stat> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

/// Fields after the command name, which is in parentheses and may itself hold spaces and
/// parentheses: state (3), ppid (4), … utime (14), stime (15).
fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: fields.first()?.chars().next()?,
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
        started: fields.get(19)?.parse().ok()?,
    })
}

/// Every process on the machine but the bench's own, with the CPU time each used so far:
/// taken before and after a window, it names the processes that "other processes used"
/// stands for.
pub struct Census {
    at: Instant,
    /// By pid: start time, command name, utime + stime ticks.
    processes: HashMap<u32, (u64, String, u64)>,
}

/// Takes a [`Census`] of every process except `ours` and the processes below it. It walks
/// every process on the machine (a millisecond or two with 80 processes), so the bench
/// takes it outside its windows.
pub fn census(ours: u32) -> Census {
    let all: Vec<(u32, String, Stat)> = every_stat()
        .filter_map(|(pid, text)| Some((pid, thread_name(&text)?.to_owned(), parse_stat(&text)?)))
        .collect();
    let parent: HashMap<u32, u32> = all.iter().map(|(pid, _, s)| (*pid, s.ppid)).collect();
    let below_ours = |mut pid: u32| {
        // Up the parents to init (pid 1) or the kernel (0); a loop cannot outlast the list.
        for _ in 0..=parent.len() {
            if pid == ours {
                return true;
            }
            match parent.get(&pid) {
                Some(&up) if up > 0 && up != pid => pid = up,
                _ => return false,
            }
        }
        false
    };
    let processes = all
        .into_iter()
        .filter(|(pid, _, _)| !below_ours(*pid))
        .map(|(pid, name, s)| (pid, (s.started, name, s.utime + s.stime)))
        .collect();
    Census {
        at: Instant::now(),
        processes,
    }
}

/// The processes that used CPU between `before` and `after`, by command name (processes of
/// one name summed), in cores over the time between the two, busiest first. A process that
/// started in between counts all its time; one that ended in between took its time with it.
pub fn busiest(before: &Census, after: &Census, ticks_per_sec: u64) -> Vec<(String, f64)> {
    let span = after.at.duration_since(before.at).as_secs_f64();
    if span <= 0.0 {
        return Vec::new();
    }
    let mut by_name: BTreeMap<&str, u64> = BTreeMap::new();
    for (pid, (started, name, ticks)) in &after.processes {
        let earlier = match before.processes.get(pid) {
            Some((s, _, t)) if s == started => *t,
            _ => 0,
        };
        let used = ticks.saturating_sub(earlier);
        if used > 0 {
            *by_name.entry(name).or_default() += used;
        }
    }
    let mut out: Vec<(String, f64)> = by_name
        .into_iter()
        .map(|(name, ticks)| {
            let cores = from_ticks(ticks, ticks_per_sec).as_secs_f64() / span;
            (name.to_owned(), cores)
        })
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line =
            "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1 0 0 0 37 12 0 0 20 0 1 0 9876 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.state, stat.ppid), ('S', 4241));
        assert_eq!((stat.utime, stat.stime), (37, 12));
        assert_eq!(stat.started, 9876);
    }

    fn census_of(at: Instant, processes: &[(u32, u64, &str, u64)]) -> Census {
        Census {
            at,
            processes: processes
                .iter()
                .map(|&(pid, started, name, ticks)| (pid, (started, name.to_owned(), ticks)))
                .collect(),
        }
    }

    #[test]
    fn the_busiest_processes_come_first_by_name_and_a_reused_pid_is_a_new_process() {
        let at = Instant::now();
        let before = census_of(
            at,
            &[
                (10, 1, "postgres", 100),
                (11, 1, "postgres", 50),
                (12, 1, "kworker/1:1H-kblockd", 7),
                (13, 1, "idle", 40),
                (14, 1, "gone", 5),
                (15, 1, "old", 500),
            ],
        );
        let after = census_of(
            at + Duration::from_secs(2),
            &[
                (10, 1, "postgres", 120),
                (11, 1, "postgres", 70),
                // The workqueue it serves is part of a kworker's name and may change.
                (12, 1, "kworker/1:1H", 107),
                (13, 1, "idle", 40),
                // Started in the window: all its time is the window's.
                (16, 2, "sh", 30),
                // Pid 15 ended and a new process took it: not 520 - 500.
                (15, 9, "new", 20),
            ],
        );
        let busiest = busiest(&before, &after, 100);
        let rounded: Vec<(&str, f64)> = busiest
            .iter()
            .map(|(name, cores)| (name.as_str(), (cores * 1000.0).round() / 1000.0))
            .collect();
        assert_eq!(
            rounded,
            vec![
                ("kworker/1:1H", 0.5),
                ("postgres", 0.2),
                ("sh", 0.15),
                ("new", 0.1)
            ]
        );
    }

    #[test]
    fn a_census_finds_a_busy_process_but_not_the_bench_or_its_children() {
        let mut spin = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()
            .expect("sh");
        let ticks = clock_ticks();
        let anyone = census(u32::MAX);
        let not_ours = census(std::process::id());
        std::thread::sleep(Duration::from_millis(500));
        let not_ours_after = census(std::process::id());
        let anyone = busiest(&anyone, &census(u32::MAX), ticks);
        let not_ours_busiest = busiest(&not_ours, &not_ours_after, ticks);
        let spinning = spin.id();
        spin.kill().ok();
        spin.wait().ok();
        let sh = anyone.iter().find(|(name, _)| name == "sh");
        assert!(
            sh.is_some_and(|&(_, cores)| cores > 0.2),
            "a shell loop is busy for half a second: {anyone:?}"
        );
        // By its pid: the machine may run a shell of its own meanwhile (in a CI run after
        // VM 54's session an outside `sh` used 0.02 cores in the window, and a check by name
        // counted it as the bench's).
        assert!(
            !not_ours.processes.contains_key(&spinning)
                && !not_ours_after.processes.contains_key(&spinning),
            "the bench's own children are not other processes"
        );
        assert!(
            not_ours_busiest
                .iter()
                .all(|(name, cores)| name != "sh" || *cores < 0.2),
            "the busy shell loop is not among the other processes: {not_ours_busiest:?}"
        );
    }

    #[test]
    fn a_schedstat_line_gives_the_wait_and_the_runs() {
        assert_eq!(
            parse_schedstat("1369732 977102 4\n"),
            Some((Duration::from_nanos(977_102), 4))
        );
        assert_eq!(parse_schedstat("1369732\n"), None);
    }

    #[test]
    fn two_busy_processes_on_one_core_each_wait_for_it() {
        if !Path::new("/proc/thread-self/schedstat").exists() {
            eprintln!("skipped: this kernel keeps no schedstat (CONFIG_SCHED_INFO is off)");
            return;
        }
        // Two shell loops pinned to the same core: while one runs, the other is ready and
        // waits, so between them they wait about as long as they run.
        let spin = || {
            std::process::Command::new("taskset")
                .args(["-c", "0", "sh", "-c", "while :; do :; done"])
                .spawn()
                .expect("taskset (util-linux)")
        };
        let mut children = [spin(), spin()];
        let pids = children.each_ref().map(|c| c.id());
        std::thread::sleep(Duration::from_millis(100));
        let before = threads_of(&pids, clock_ticks());
        std::thread::sleep(Duration::from_millis(400));
        let after = threads_of(&pids, clock_ticks());
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let delta = threads_since(&after, &before);
        let (queued, runs) = delta.values().fold((Duration::ZERO, 0), |(q, r), t| {
            (q + t.queued.expect("schedstat read"), r + t.runs)
        });
        assert!(queued >= Duration::from_millis(150), "{delta:?}");
        assert!(runs >= 2, "{delta:?}");
    }

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_size() {
        let me = std::process::id();
        assert!(memory(me, "VmRSS").unwrap() > 0);
        assert!(memory(me, "VmHWM").unwrap() >= memory(me, "VmRSS").unwrap() / 2);
        let busy = std::time::Instant::now();
        while busy.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time(me, clock_ticks()) > Duration::ZERO);
        assert!(own_cpu_time(me, clock_ticks()) > Duration::ZERO);
        assert!(machine(clock_ticks()).busy >= own_cpu_time(me, clock_ticks()));
        assert!(tree(me).contains(&me));
        assert!(alive(me));
    }

    #[test]
    fn clock_ticks_become_time_and_a_clock_rate_of_zero_does_not_divide_by_it() {
        assert_eq!(from_ticks(250, 100), Duration::from_millis(2500));
        assert_eq!(from_ticks(3, 0), Duration::from_secs(3));
    }

    #[test]
    fn the_machine_line_counts_steal_as_busy_and_on_its_own() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let line = "cpu  140796 3 44755 128890 2481 7 17656 15889 0 0";
        assert_eq!(
            machine_ticks(line),
            (140796 + 3 + 44755 + 7 + 17656 + 15889, 15889)
        );
        // A kernel too old to count steal: nothing taken.
        assert_eq!(machine_ticks("cpu  10 0 5 100 1 0 2"), (17, 0));
    }

    #[test]
    fn groups_add_up_and_a_wait_is_summed_only_where_every_group_has_one() {
        let ms = Duration::from_millis;
        let group = |threads, queued: Option<u64>, runs| ThreadTimes {
            threads,
            user: ms(10),
            system: ms(5),
            voluntary: 7,
            involuntary: 2,
            queued: queued.map(ms),
            runs,
        };
        let both = add(&group(2, Some(3), 40), &group(1, Some(1), 10));
        assert_eq!(both.threads, 3);
        assert_eq!((both.user, both.system), (ms(20), ms(10)));
        assert_eq!((both.voluntary, both.involuntary), (14, 4));
        assert_eq!((both.queued, both.runs), (Some(ms(4)), 50));
        // A kernel without schedstat: no wait to sum, not a wait of zero.
        assert_eq!(add(&both, &group(1, None, 0)).queued, None);
        // And over a window, the later count of threads with what the counters gained.
        let later = add(&both, &group(1, Some(6), 30));
        let window = since(&later, &both);
        assert_eq!(window.threads, 4);
        assert_eq!((window.queued, window.runs), (Some(ms(6)), 30));
        assert_eq!(window.voluntary, 7);
    }

    #[test]
    fn numbered_threads_share_a_group_and_names_without_numbers_keep_theirs() {
        assert_eq!(thread_group("aidhub-serve-12"), "aidhub-serve");
        assert_eq!(thread_group("sled-io-0"), "sled-io");
        assert_eq!(thread_group("ledger-writer"), "ledger-writer");
        assert_eq!(thread_group("nginx"), "nginx");
        assert_eq!(thread_group("1234"), "1234");
        assert_eq!(
            thread_name("4242 (nginx: worker (x)) S 4241"),
            Some("nginx: worker (x)")
        );
    }

    #[test]
    fn threads_are_grouped_by_name_with_their_cpu_time_and_switches() {
        let ticks = clock_ticks();
        let me = std::process::id();
        let before = threads_of(&tree(me), ticks);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let stopped = std::sync::Arc::new(std::sync::Mutex::new(stopped));
        let (ready, spun) = std::sync::mpsc::channel();
        let probes: Vec<_> = (1..=2)
            .map(|i| {
                let stopped = stopped.clone();
                let ready = ready.clone();
                std::thread::Builder::new()
                    .name(format!("bench-probe-{i}"))
                    .spawn(move || {
                        // Spin until the kernel has charged this thread a few ticks (on
                        // a busy machine 60 ms of wall time may be none of them).
                        let charged = || {
                            std::fs::read_to_string("/proc/thread-self/stat")
                                .ok()
                                .and_then(|text| parse_stat(&text))
                                .map_or(0, |s| s.utime + s.stime)
                        };
                        let (start, busy) = (charged(), std::time::Instant::now());
                        while charged() < start + 3 && busy.elapsed() < Duration::from_secs(10) {}
                        // Sleep a few times: voluntary switches.
                        for _ in 0..3 {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        let _ = ready.send(());
                        let _ = stopped.lock().map(|r| r.recv());
                    })
                    .unwrap()
            })
            .collect();
        for _ in 0..2 {
            spun.recv().unwrap();
        }
        let delta = threads_since(&threads_of(&tree(me), ticks), &before);
        drop(stop);
        for probe in probes {
            probe.join().unwrap();
        }
        let probe = delta.get("bench-probe").expect("the probe threads' group");
        assert_eq!(probe.threads, 2, "{delta:?}");
        assert!(probe.user + probe.system > Duration::ZERO, "{probe:?}");
        assert!(probe.voluntary >= 6, "{probe:?}");
        if Path::new("/proc/thread-self/schedstat").exists() {
            // Each woke from its three sleeps onto a core.
            assert!(probe.runs >= 6, "{probe:?}");
            assert!(probe.queued.is_some(), "{probe:?}");
        }
    }
}
