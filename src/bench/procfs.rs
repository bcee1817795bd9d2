//! What the kernel says a process under test costs: CPU time (`utime + stime` from
//! `/proc/<pid>/stat`) and memory (`VmRSS`, `VmHWM` from `/proc/<pid>/status`), each summed
//! over the process and all its descendants (nginx's master and workers count as one server).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

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
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if let Some(stat) = read_stat(child) {
                parents.entry(stat.ppid).or_default().push(child);
            }
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

/// CPU time used so far by `pid` and its descendants (all threads).
pub fn cpu_time(pid: u32, ticks_per_sec: u64) -> Duration {
    ticks_to_time(tree(pid).into_iter().filter_map(read_stat), ticks_per_sec)
}

/// CPU time used so far by `pid` alone (all threads; not its children — the bench's own
/// process is the parent of everything it measures).
pub fn own_cpu_time(pid: u32, ticks_per_sec: u64) -> Duration {
    ticks_to_time(read_stat(pid), ticks_per_sec)
}

fn ticks_to_time(stats: impl IntoIterator<Item = Stat>, ticks_per_sec: u64) -> Duration {
    let ticks: u64 = stats.into_iter().map(|s| s.utime + s.stime).sum();
    Duration::from_micros(ticks * 1_000_000 / ticks_per_sec.max(1))
}

/// CPU time the whole machine has been busy (all cores: user, nice, system, irq, softirq,
/// steal from the first line of `/proc/stat`), to tell how much other processes took.
pub fn machine_busy(ticks_per_sec: u64) -> Duration {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks = text.lines().next().map_or(0, |line| {
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: all but idle and iowait.
        [0, 1, 2, 5, 6, 7]
            .iter()
            .filter_map(|&i| fields.get(i))
            .sum()
    });
    Duration::from_micros(ticks * 1_000_000 / ticks_per_sec.max(1))
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
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
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
        ppid: fields.get(1)?.parse().ok()?,
        utime: fields.get(11)?.parse().ok()?,
        stime: fields.get(12)?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        let line =
            "4242 (nginx: worker (x)) S 4241 4241 4241 0 -1 4194624 1 0 0 0 37 12 0 0 20 0 1 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!((stat.ppid, stat.utime, stat.stime), (4241, 37, 12));
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
        assert!(machine_busy(clock_ticks()) >= own_cpu_time(me, clock_ticks()));
        assert!(tree(me).contains(&me));
    }
}
