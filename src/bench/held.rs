//! The hub's own view of what its ledger adds: `aidhub_ledger_settle_seconds`, read from
//! the admin listener of the hub under test at the start and at the end of the window.
//!
//! The load generator sees a durable call's whole latency; this says how much of it the hub
//! held the partner's answer while the ledger recorded it (for a durable write, the wait for
//! the journal's `fdatasync`), which tells the disk's share from the rest.

use crate::stage::cluster::admin_get;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

const SERIES: &str = "aidhub_ledger_settle_seconds_";
/// How long one read of the metrics may take.
const WITHIN: Duration = Duration::from_secs(2);

/// One function's histogram as scraped: cumulative bucket counts by upper bound (seconds),
/// count and sum (seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

/// Every function's histogram in one scrape.
pub type Scrape = BTreeMap<String, Series>;

/// What the hub held one function's answers for, over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    /// The AID1 function.
    pub function: String,
    /// Answers held.
    pub count: u64,
    /// Mean time held, ms.
    pub mean_ms: f64,
    /// The smallest bucket bound, ms, within which 99% of them were released (`None`: the
    /// slowest 1% took longer than the largest bound).
    pub p99_within_ms: Option<f64>,
}

impl Held {
    /// `send_msp_token 1.01 ms mean, 99% within 5 ms (812 answers)`: the count says how much
    /// a bound over few answers is worth.
    pub fn describe(&self) -> String {
        let p99 = match self.p99_within_ms {
            Some(ms) => format!("99% within {ms} ms"),
            None => "1% beyond the largest bucket".to_owned(),
        };
        let answers = if self.count == 1 { "answer" } else { "answers" };
        format!(
            "{} {:.2} ms mean, {p99} ({} {answers})",
            self.function, self.mean_ms, self.count
        )
    }
}

/// Reads the hub's metrics from its admin listener (plain HTTP on loopback).
pub async fn scrape(admin: SocketAddr) -> Result<Scrape, String> {
    let read = tokio::time::timeout(WITHIN, admin_get(admin, "/metrics"));
    match read.await {
        Ok(Ok((200, text))) => Ok(parse(&text)),
        Ok(Ok((status, _))) => Err(format!("http://{admin}/metrics answered {status}")),
        Ok(Err(e)) => Err(format!("http://{admin}/metrics: {e}")),
        Err(_) => Err(format!(
            "http://{admin}/metrics did not answer within {WITHIN:?}"
        )),
    }
}

/// The ledger's hold on answers over a window: the hub's histogram read when the window
/// opens and again when it closes.
pub struct Window {
    admin: Option<SocketAddr>,
    opened: Option<Result<Scrape, String>>,
}

impl Window {
    /// Reads the histogram of the hub whose admin listener is `admin` (`None`: no hub, the
    /// window stays empty).
    pub async fn open(admin: Option<SocketAddr>) -> Window {
        let opened = match admin {
            Some(admin) => Some(scrape(admin).await),
            None => None,
        };
        Window { admin, opened }
    }

    /// Reads it again: what the hub held answers for in between. A failed read is said on
    /// stderr and leaves the figures out.
    pub async fn close(self) -> Vec<Held> {
        let (Some(admin), Some(opened)) = (self.admin, self.opened) else {
            return Vec::new();
        };
        match (opened, scrape(admin).await) {
            (Ok(before), Ok(after)) => since(&after, &before),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("   could not read the hub's metrics: {e}");
                Vec::new()
            }
        }
    }
}

/// The `aidhub_ledger_settle_seconds` series of a Prometheus text exposition, by function.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(SERIES) else {
            continue;
        };
        let Some((kind, rest)) = rest.split_once("{function=\"") else {
            continue;
        };
        let Some((function, rest)) = rest.split_once('"') else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let series = scrape.entry(function.to_owned()).or_default();
        match kind {
            "count" => series.count = value,
            "sum" => series.sum = value,
            "bucket" => {
                let le = labels
                    .strip_prefix(",le=\"")
                    .and_then(|l| l.strip_suffix('"'));
                // `+Inf` is the count again.
                match le.map(str::parse::<f64>) {
                    Some(Ok(le)) if le.is_finite() => series.buckets.push((le, value)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    scrape
}

/// What changed between two scrapes, the slowest functions first; functions with nothing
/// held in between are left out.
pub fn since(after: &Scrape, before: &Scrape) -> Vec<Held> {
    let empty = Series::default();
    let mut held: Vec<Held> = after
        .iter()
        .filter_map(|(function, a)| {
            let b = before.get(function).unwrap_or(&empty);
            let count = a.count - b.count;
            if count < 1.0 {
                return None;
            }
            let earlier = |le: f64| {
                b.buckets
                    .iter()
                    .find(|(bound, _)| *bound == le)
                    .map_or(0.0, |(_, n)| *n)
            };
            let p99_within_ms = a
                .buckets
                .iter()
                .find(|(le, n)| n - earlier(*le) >= 0.99 * count)
                .map(|(le, _)| le * 1000.0);
            Some(Held {
                function: function.clone(),
                count: count as u64,
                mean_ms: (a.sum - b.sum) / count * 1000.0,
                p99_within_ms,
            })
        })
        .collect();
    held.sort_by(|x, y| y.mean_ms.total_cmp(&x.mean_ms));
    held
}

/// The median over several runs of each function's figures (mean, count and the 99% bound;
/// a run whose slowest 1% went beyond the largest bucket counts as beyond every bound), the
/// slowest functions first; of an even number of runs the lower middle one, so that the
/// bound is one a run had. A function only some runs held answers for gets the median of
/// those runs.
pub fn median(runs: &[&[Held]]) -> Vec<Held> {
    let functions: std::collections::BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.iter().map(|h| h.function.as_str()))
        .collect();
    let mut held: Vec<Held> = functions
        .into_iter()
        .map(|function| {
            let of = |f: fn(&Held) -> f64| {
                let mut values: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| run.iter().find(|h| h.function == function).map(f))
                    .collect();
                values.sort_by(f64::total_cmp);
                // The lower middle of an even count: a bucket bound that some run had.
                values[(values.len() - 1) / 2]
            };
            let p99 = of(|h| h.p99_within_ms.unwrap_or(f64::INFINITY));
            Held {
                function: function.to_owned(),
                count: of(|h| h.count as f64) as u64,
                mean_ms: of(|h| h.mean_ms),
                p99_within_ms: p99.is_finite().then_some(p99),
            }
        })
        .collect();
    held.sort_by(|x, y| y.mean_ms.total_cmp(&x.mean_ms));
    held
}

/// The line the bench prints after a run of the hub, or after its medians (`None`: nothing
/// held).
pub fn line(held: &[Held], over: &str) -> Option<String> {
    (!held.is_empty()).then(|| {
        let each: Vec<String> = held.iter().map(Held::describe).collect();
        format!(
            "   answers held for the ledger (the hub's aidhub_ledger_settle_seconds over {over}): {}",
            each.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposition(count: u64, sum: f64, buckets: &[(&str, u64)]) -> String {
        let mut text = String::from(
            "# TYPE aidhub_ledger_settle_seconds histogram\n\
             aidhub_request_duration_seconds_count{function=\"send_msp_token\"} 99\n\
             aidhub_ledger_settle_seconds_count{function=\"send_csim_status\"} 7\n\
             aidhub_ledger_settle_seconds_sum{function=\"send_csim_status\"} 0.00007\n",
        );
        for (le, n) in buckets {
            text += &format!(
                "aidhub_ledger_settle_seconds_bucket{{function=\"send_msp_token\",le=\"{le}\"}} {n}\n"
            );
        }
        text += &format!(
            "aidhub_ledger_settle_seconds_sum{{function=\"send_msp_token\"}} {sum}\n\
             aidhub_ledger_settle_seconds_count{{function=\"send_msp_token\"}} {count}\n"
        );
        text
    }

    #[test]
    fn the_window_is_the_difference_of_two_scrapes() {
        let before = parse(&exposition(
            10,
            0.010,
            &[("0.0005", 2), ("0.001", 10), ("0.005", 10), ("+Inf", 10)],
        ));
        let after = parse(&exposition(
            110,
            0.160,
            &[("0.0005", 2), ("0.001", 80), ("0.005", 109), ("+Inf", 110)],
        ));
        let held = since(&after, &before);
        // send_csim_status held nothing new in between: left out.
        assert_eq!(held.len(), 1, "{held:?}");
        let smt = &held[0];
        assert_eq!(smt.function, "send_msp_token");
        assert_eq!(smt.count, 100);
        assert!((smt.mean_ms - 1.5).abs() < 1e-9, "{smt:?}");
        // 99 of the 100 new ones within 5 ms; only 70 within 1 ms.
        assert_eq!(smt.p99_within_ms, Some(5.0));
        assert_eq!(
            smt.describe(),
            "send_msp_token 1.50 ms mean, 99% within 5 ms (100 answers)"
        );
    }

    #[test]
    fn a_tail_beyond_every_bucket_is_said_so() {
        let after = parse(&exposition(
            100,
            5.0,
            &[("0.0005", 50), ("10", 90), ("+Inf", 100)],
        ));
        let held = since(&after, &Scrape::new());
        assert_eq!(held[0].function, "send_msp_token");
        assert_eq!(held[0].p99_within_ms, None);
        assert!(held[0]
            .describe()
            .contains("1% beyond the largest bucket ("));
        // Slowest first.
        assert_eq!(held[1].function, "send_csim_status");
        assert!((held[1].mean_ms - 0.01).abs() < 1e-9, "{:?}", held[1]);
    }

    #[test]
    fn medians_take_each_function_over_the_runs_that_held_it() {
        let held = |function: &str, count, mean_ms, p99_within_ms| Held {
            function: function.to_owned(),
            count,
            mean_ms,
            p99_within_ms,
        };
        let runs = [
            vec![
                held("send_msp_token", 100, 0.9, Some(5.0)),
                held("request_activation_code", 50, 0.2, Some(1.0)),
            ],
            vec![held("send_msp_token", 120, 1.6, None)],
            vec![
                held("send_msp_token", 110, 1.2, Some(10.0)),
                held("request_activation_code", 70, 0.1, Some(2.0)),
            ],
        ];
        let runs: Vec<&[Held]> = runs.iter().map(Vec::as_slice).collect();
        // Slowest first; a run beyond every bound is above the others.
        assert_eq!(
            median(&runs),
            vec![
                held("send_msp_token", 110, 1.2, Some(10.0)),
                // Two runs: the lower of the two, a bound one of them had.
                held("request_activation_code", 50, 0.1, Some(1.0)),
            ]
        );
        assert_eq!(median(&[]), Vec::<Held>::new());
        let twice_beyond = [
            vec![held("send_msp_token", 1, 9.0, None)],
            vec![held("send_msp_token", 1, 8.0, None)],
        ];
        let twice_beyond: Vec<&[Held]> = twice_beyond.iter().map(Vec::as_slice).collect();
        assert_eq!(median(&twice_beyond)[0].p99_within_ms, None);
        assert_eq!(
            line(&median(&twice_beyond), "the windows").unwrap(),
            "   answers held for the ledger (the hub's aidhub_ledger_settle_seconds over the \
             windows): send_msp_token 8.00 ms mean, 1% beyond the largest bucket (1 answer)"
        );
        assert_eq!(line(&[], "the window"), None);
    }
}
