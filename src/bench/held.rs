//! The hub's own view of what its ledger adds, read from the admin listener of the hub
//! under test at the start and at the end of the window: `aidhub_ledger_settle_seconds`
//! (how long each function's answers were held while the ledger recorded them) and
//! `aidhub_ledger_sync_seconds` (the embedded ledger's own syncs, by kind); and, around
//! both, `aidhub_request_duration_seconds` (each request's time inside the hub, from its
//! head read to its answer made, all functions together) and
//! `aidhub_upstream_duration_seconds` (the part of it spent on the exchange with the
//! partner, from taking a connection to the answer read, every partner and function
//! together); and the connections it opened to its upstreams
//! (`aidhub_upstream_connections_opened_total`, every partner together) and the calls that
//! waited for one (`aidhub_upstream_connection_waits_total`).
//!
//! The load generator sees a durable call's whole latency; the first says how much of it
//! the hub held the partner's answer while the ledger recorded it (for a durable write, the
//! wait for the journal's `fdatasync`), which tells the disk's share from the rest; the
//! second how long the disk took for each sync, and how often it stalled for more than
//! [`SLOW_MS`].

use crate::stage::cluster::admin_get;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// The answers held, by `function`.
const HELD: (&str, Option<&str>) = ("aidhub_ledger_settle_seconds_", Some("function"));
/// The ledger's syncs, by `kind`.
const SYNCS: (&str, Option<&str>) = ("aidhub_ledger_sync_seconds_", Some("kind"));
/// Requests inside the hub, by `function` (summed over them: [`ALL`]).
const REQUESTS: (&str, Option<&str>) = ("aidhub_request_duration_seconds_", Some("function"));
/// The name of the requests' one series, every function together.
const ALL: &str = "all functions";
/// The forwarded requests' time before their exchange, by `function` (summed: [`ALL`]).
const ADMISSIONS: (&str, Option<&str>) = ("aidhub_request_admission_seconds_", Some("function"));
/// The hub's exchanges with its partners, by `target` and `function` together (summed over
/// them: [`EVERY_PARTNER`]).
const EXCHANGES: (&str, Option<&str>) = ("aidhub_upstream_duration_seconds_", None);
/// The name of the exchanges' one series, every partner and function together.
const EVERY_PARTNER: &str = "all partners";
/// Connections opened to the upstreams, one counter per target.
const OPENED: &str = "aidhub_upstream_connections_opened_total{";
/// Calls that waited for an upstream connection, one counter per target.
const WAITS: &str = "aidhub_upstream_connection_waits_total{";
/// How long one read of the metrics may take.
const WITHIN: Duration = Duration::from_secs(2);
/// What counts as a stall: a bucket bound of the hub's histograms, so that the count is
/// exact.
pub const SLOW_MS: f64 = 10.0;

/// One series of a histogram as scraped: cumulative bucket counts by upper bound (seconds),
/// count and sum (seconds).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    buckets: Vec<(f64, f64)>,
    count: f64,
    sum: f64,
}

/// The histograms in one scrape, each by its label's value, and the upstream counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Scrape {
    held: BTreeMap<String, Series>,
    syncs: BTreeMap<String, Series>,
    requests: BTreeMap<String, Series>,
    admissions: BTreeMap<String, Series>,
    /// By their labels (target and function).
    exchanges: BTreeMap<String, Series>,
    /// The upstream connection counters, by their labels (the target).
    upstream: BTreeMap<String, Connections>,
}

/// What the hub's pools of upstream connections did: connections opened (each a TCP
/// connect and a TLS handshake with a partner) and calls that waited for one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Connections {
    /// Connections opened.
    pub opened: u64,
    /// Calls that waited because the most allowed were already opening.
    pub waits: u64,
}

impl Connections {
    /// `0 opened, 0 calls waited for one`.
    fn describe(&self) -> String {
        let calls = if self.waits == 1 { "call" } else { "calls" };
        format!(
            "{} opened, {} {calls} waited for one",
            self.opened, self.waits
        )
    }
}

/// One series over the window: the answers of one function, or the syncs of one kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// The AID1 function, or the kind of sync.
    pub name: String,
    /// Observations.
    pub count: u64,
    /// Their mean, ms.
    pub mean_ms: f64,
    /// The smallest bucket bound, ms, within which 99% of them fell (`None`: the slowest 1%
    /// took longer than the largest bound).
    pub p99_within_ms: Option<f64>,
    /// How many took longer than [`SLOW_MS`].
    pub slow: u64,
    /// The smallest bucket bound, ms, within which every one of them fell (`None`: the
    /// slowest took longer than the largest bound): how long the worst stall lasted, to a
    /// bucket.
    pub slowest_within_ms: Option<f64>,
}

impl Timing {
    /// `the slowest within 200 ms`: the bucket bound of the worst one.
    pub fn slowest(&self) -> String {
        match self.slowest_within_ms {
            Some(ms) => format!("the slowest within {ms} ms"),
            None => "the slowest beyond the largest bucket".to_owned(),
        }
    }

    /// `send_msp_token 1.01 ms mean, 99% within 5 ms, 2 over 10 ms (812 answers)`: the
    /// count says how much a bound over few observations is worth; `noun` names them
    /// (singular, plural).
    pub fn describe(&self, noun: (&str, &str)) -> String {
        let p99 = match self.p99_within_ms {
            Some(ms) => format!("99% within {ms} ms"),
            None => "1% beyond the largest bucket".to_owned(),
        };
        let slow = match self.slow {
            0 => String::new(),
            n => format!(", {n} over {SLOW_MS} ms, {}", self.slowest()),
        };
        let noun = if self.count == 1 { noun.0 } else { noun.1 };
        format!(
            "{} {:.2} ms mean, {p99}{slow} ({} {noun})",
            self.name, self.mean_ms, self.count
        )
    }
}

/// The hub's own view of a window: its requests' time inside it, and what its ledger did
/// (empty: no hub, or its metrics could not be read).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Held {
    /// The requests' time inside the hub, all functions together (one series, [`ALL`]): a
    /// tail the load generator saw and this did not was spent outside the hub's handling
    /// (in a socket's queue, TLS, the write of the answer, or the load generator).
    pub requests: Vec<Timing>,
    /// The part of those a forwarded request spent before its exchange, all functions
    /// together (one series, [`ALL`]): the wait for its body, the hub's checks, the ledger's
    /// admission, and any wait for its serving thread in between. A request's tail that
    /// neither this, its exchange nor its ledger hold has was spent after the exchange
    /// outside the hold, or was several shorter waits adding up.
    pub admissions: Vec<Timing>,
    /// The part of those spent on the exchange with the partner, from taking a connection
    /// to the answer read, every partner and function together (one series,
    /// [`EVERY_PARTNER`]): a request's tail that this has too was spent on the partner's
    /// leg — the partner answering late, the connection to it, or the serving thread late to
    /// read the answer that had come — not on the hub's admission, ledger or answer.
    pub exchanges: Vec<Timing>,
    /// Answers held for the ledger, by function, the slowest first.
    pub answers: Vec<Timing>,
    /// The embedded ledger's syncs, by kind, the slowest first (none for a database).
    pub syncs: Vec<Timing>,
    /// The upstream connections opened in the window, each a handshake with a partner, and
    /// the calls that waited for one.
    pub upstream: Option<Connections>,
}

impl Held {
    /// The lines the bench prints after a run of the hub, or after its medians.
    pub fn lines(&self, over: &str) -> Vec<String> {
        let line = |timings: &[Timing], what: &str, series: &str, noun| {
            (!timings.is_empty()).then(|| {
                let each: Vec<String> = timings.iter().map(|t| t.describe(noun)).collect();
                format!(
                    "   {what} (the hub's {series} over {over}): {}",
                    each.join("; ")
                )
            })
        };
        [
            line(
                &self.requests,
                "requests inside the hub, from the head read to the answer made",
                "aidhub_request_duration_seconds",
                ("request", "requests"),
            ),
            line(
                &self.admissions,
                "admissions, from the head read to the exchange's start",
                "aidhub_request_admission_seconds",
                ("admission", "admissions"),
            ),
            line(
                &self.exchanges,
                "exchanges with the partners, from a connection taken to the answer read",
                "aidhub_upstream_duration_seconds",
                ("exchange", "exchanges"),
            ),
            line(
                &self.answers,
                "answers held for the ledger",
                "aidhub_ledger_settle_seconds",
                ("answer", "answers"),
            ),
            line(
                &self.syncs,
                "the ledger's syncs",
                "aidhub_ledger_sync_seconds",
                ("sync", "syncs"),
            ),
            self.upstream.map(|connections| {
                format!(
                    "   upstream connections (the hub's aidhub_upstream_connections_opened_total \
                     and aidhub_upstream_connection_waits_total over {over}): {}",
                    connections.describe()
                )
            }),
        ]
        .into_iter()
        .flatten()
        .collect()
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

/// The ledger over a window: the hub's histograms read when the window opens and again
/// when it closes.
pub struct Window {
    admin: Option<SocketAddr>,
    opened: Option<Result<Scrape, String>>,
}

impl Window {
    /// Reads the histograms of the hub whose admin listener is `admin` (`None`: no hub, the
    /// window stays empty).
    pub async fn open(admin: Option<SocketAddr>) -> Window {
        let opened = match admin {
            Some(admin) => Some(scrape(admin).await),
            None => None,
        };
        Window { admin, opened }
    }

    /// Reads them again: what the ledger did in between. A failed read is said on stderr
    /// and leaves the figures out.
    pub async fn close(self) -> Held {
        let (Some(admin), Some(opened)) = (self.admin, self.opened) else {
            return Held::default();
        };
        match (opened, scrape(admin).await) {
            (Ok(before), Ok(after)) => since(&after, &before),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("   could not read the hub's metrics: {e}");
                Held::default()
            }
        }
    }
}

/// The histograms' series and the upstream connection counters of a Prometheus text
/// exposition.
pub fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    for line in text.lines() {
        if let Some(counter) = [OPENED, WAITS].into_iter().find(|c| line.starts_with(c)) {
            let Some((labels, value)) = line[counter.len()..].rsplit_once("} ") else {
                continue;
            };
            if let Ok(value) = value.trim().parse::<f64>() {
                let counts = scrape.upstream.entry(labels.to_owned()).or_default();
                let count = if counter == OPENED {
                    &mut counts.opened
                } else {
                    &mut counts.waits
                };
                *count = value as u64;
            }
            continue;
        }
        let Some((family, (prefix, label))) = [
            (&mut scrape.held, HELD),
            (&mut scrape.syncs, SYNCS),
            (&mut scrape.requests, REQUESTS),
            (&mut scrape.admissions, ADMISSIONS),
            (&mut scrape.exchanges, EXCHANGES),
        ]
        .into_iter()
        .find(|(_, (prefix, _))| line.starts_with(prefix)) else {
            continue;
        };
        let Some(sample) = Sample::parse(&line[prefix.len()..]) else {
            continue;
        };
        let Some(name) = sample.series(label) else {
            continue;
        };
        let series = family.entry(name).or_default();
        match sample.kind {
            "count" => series.count = sample.value,
            "sum" => series.sum = sample.value,
            // `+Inf` is the count again.
            "bucket" => match sample.label("le").map(str::parse::<f64>) {
                Some(Ok(le)) if le.is_finite() => series.buckets.push((le, sample.value)),
                _ => {}
            },
            _ => {}
        }
    }
    scrape
}

/// One sample of a histogram's series: `bucket{function="x",le="0.001"} 12`, its name's
/// family prefix taken off.
struct Sample<'a> {
    /// `bucket`, `sum` or `count`.
    kind: &'a str,
    /// The labels in their order.
    labels: Vec<(&'a str, &'a str)>,
    value: f64,
}

impl<'a> Sample<'a> {
    fn parse(text: &'a str) -> Option<Sample<'a>> {
        let (kind, rest) = text.split_once('{')?;
        let (mut labels, value) = rest.rsplit_once("} ")?;
        let value = value.trim().parse().ok()?;
        let mut pairs = Vec::new();
        while !labels.is_empty() {
            let (key, rest) = labels.split_once("=\"")?;
            let (value, rest) = rest.split_once('"')?;
            pairs.push((key, value));
            labels = rest.strip_prefix(',').unwrap_or(rest);
        }
        Some(Sample {
            kind,
            labels: pairs,
            value,
        })
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// What tells its series apart: the value of `label`, or (`None`) every label but
    /// `le`, as one key.
    fn series(&self, label: Option<&str>) -> Option<String> {
        match label {
            Some(label) => self.label(label).map(str::to_owned),
            None => {
                let named: Vec<String> = self
                    .labels
                    .iter()
                    .filter(|(key, _)| *key != "le")
                    .map(|(key, value)| format!("{key}={value}"))
                    .collect();
                Some(named.join(","))
            }
        }
    }
}

/// What changed between two scrapes.
pub fn since(after: &Scrape, before: &Scrape) -> Held {
    Held {
        requests: family_since(
            &summed(&after.requests, ALL),
            &summed(&before.requests, ALL),
        ),
        admissions: family_since(
            &summed(&after.admissions, ALL),
            &summed(&before.admissions, ALL),
        ),
        exchanges: family_since(
            &summed(&after.exchanges, EVERY_PARTNER),
            &summed(&before.exchanges, EVERY_PARTNER),
        ),
        answers: family_since(&after.held, &before.held),
        syncs: family_since(&after.syncs, &before.syncs),
        // None when the hub exposes no such counters.
        upstream: (!after.upstream.is_empty()).then(|| {
            // A reload that changes an upstream's settings builds it a new pool, whose
            // counts start again from 0: a count that went down counts from there.
            let increase = |a: u64, b: u64| if a >= b { a - b } else { a };
            let mut total = Connections::default();
            for (target, a) in &after.upstream {
                let b = before.upstream.get(target).copied().unwrap_or_default();
                total.opened += increase(a.opened, b.opened);
                total.waits += increase(a.waits, b.waits);
            }
            total
        }),
    }
}

/// Every series of a family added up into one, named `name` (none when the family has
/// none), bucket by bucket: the hub gives all of a family's series the same bounds.
fn summed(family: &BTreeMap<String, Series>, name: &str) -> BTreeMap<String, Series> {
    let Some(first) = family.values().next() else {
        return BTreeMap::new();
    };
    let mut total = Series {
        buckets: first.buckets.iter().map(|(le, _)| (*le, 0.0)).collect(),
        ..Series::default()
    };
    for series in family.values() {
        total.count += series.count;
        total.sum += series.sum;
        for (le, n) in &series.buckets {
            if let Some((_, sum)) = total.buckets.iter_mut().find(|(bound, _)| bound == le) {
                *sum += n;
            }
        }
    }
    BTreeMap::from([(name.to_owned(), total)])
}

/// One histogram's change between two scrapes, the slowest series first; series with
/// nothing new in between are left out.
fn family_since(
    after: &BTreeMap<String, Series>,
    before: &BTreeMap<String, Series>,
) -> Vec<Timing> {
    let empty = Series::default();
    let mut timings: Vec<Timing> = after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.get(name).unwrap_or(&empty);
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
            // What each cumulative bucket gained, in ascending order of bounds.
            let new: Vec<(f64, f64)> = a
                .buckets
                .iter()
                .map(|(le, n)| (*le, n - earlier(*le)))
                .collect();
            let p99_within_ms = new
                .iter()
                .find(|(_, n)| *n >= 0.99 * count)
                .map(|(le, _)| le * 1000.0);
            let within_slow = new
                .iter()
                .rfind(|(le, _)| *le * 1000.0 <= SLOW_MS)
                .map_or(0.0, |(_, n)| *n);
            let slowest_within_ms = new
                .iter()
                .find(|(_, n)| *n >= count)
                .map(|(le, _)| le * 1000.0);
            Some(Timing {
                name: name.clone(),
                count: count as u64,
                mean_ms: (a.sum - b.sum) / count * 1000.0,
                p99_within_ms,
                slow: (count - within_slow).max(0.0) as u64,
                slowest_within_ms,
            })
        })
        .collect();
    timings.sort_by(|x, y| y.mean_ms.total_cmp(&x.mean_ms));
    timings
}

/// The median over several runs of each series' figures (mean, count, stalls and the 99%
/// bound; a run whose slowest 1% went beyond the largest bucket counts as beyond every
/// bound), the slowest first; of an even number of runs the lower middle one, so that the
/// bound is one a run had. A series only some runs had gets the median of those runs.
pub fn median(runs: &[&Held]) -> Held {
    let of = |family: fn(&Held) -> &[Timing]| {
        family_median(&runs.iter().map(|r| family(r)).collect::<Vec<_>>())
    };
    Held {
        requests: of(|r| &r.requests),
        admissions: of(|r| &r.admissions),
        exchanges: of(|r| &r.exchanges),
        answers: of(|r| &r.answers),
        syncs: of(|r| &r.syncs),
        upstream: connections_median(runs),
    }
}

/// The median of each count over the runs that read them; of an even number the lower
/// middle one.
fn connections_median(runs: &[&Held]) -> Option<Connections> {
    let counted: Vec<Connections> = runs.iter().filter_map(|r| r.upstream).collect();
    let of = |count: fn(&Connections) -> u64| {
        let mut values: Vec<u64> = counted.iter().map(count).collect();
        values.sort_unstable();
        values[(values.len() - 1) / 2]
    };
    (!counted.is_empty()).then(|| Connections {
        opened: of(|c| c.opened),
        waits: of(|c| c.waits),
    })
}

fn family_median(runs: &[&[Timing]]) -> Vec<Timing> {
    let names: std::collections::BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.iter().map(|t| t.name.as_str()))
        .collect();
    let mut timings: Vec<Timing> = names
        .into_iter()
        .map(|name| {
            let of = |f: fn(&Timing) -> f64| {
                let mut values: Vec<f64> = runs
                    .iter()
                    .filter_map(|run| run.iter().find(|t| t.name == name).map(f))
                    .collect();
                values.sort_by(f64::total_cmp);
                // The lower middle of an even count: a bucket bound that some run had.
                values[(values.len() - 1) / 2]
            };
            let p99 = of(|t| t.p99_within_ms.unwrap_or(f64::INFINITY));
            let slowest = of(|t| t.slowest_within_ms.unwrap_or(f64::INFINITY));
            Timing {
                name: name.to_owned(),
                count: of(|t| t.count as f64) as u64,
                mean_ms: of(|t| t.mean_ms),
                p99_within_ms: p99.is_finite().then_some(p99),
                slow: of(|t| t.slow as f64) as u64,
                slowest_within_ms: slowest.is_finite().then_some(slowest),
            }
        })
        .collect();
    timings.sort_by(|x, y| y.mean_ms.total_cmp(&x.mean_ms));
    timings
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWERS: (&str, &str) = ("answer", "answers");

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

    fn syncs(kind: &str, count: u64, sum: f64, buckets: &[(&str, u64)]) -> String {
        let mut text = String::new();
        for (le, n) in buckets {
            text +=
                &format!("aidhub_ledger_sync_seconds_bucket{{kind=\"{kind}\",le=\"{le}\"}} {n}\n");
        }
        text + &format!(
            "aidhub_ledger_sync_seconds_sum{{kind=\"{kind}\"}} {sum}\n\
             aidhub_ledger_sync_seconds_count{{kind=\"{kind}\"}} {count}\n"
        )
    }

    fn timing(name: &str, count: u64, mean_ms: f64, p99_within_ms: Option<f64>) -> Timing {
        Timing {
            name: name.to_owned(),
            count,
            mean_ms,
            p99_within_ms,
            slow: 0,
            slowest_within_ms: p99_within_ms,
        }
    }

    /// The one summed series of a family: `expected`, its mean to within rounding.
    #[track_caller]
    fn assert_one(family: &[Timing], expected: Timing) {
        let [actual] = family else {
            panic!("one series expected: {family:?}")
        };
        assert!(
            (actual.mean_ms - expected.mean_ms).abs() < 1e-9,
            "{actual:?}"
        );
        assert_eq!(
            *actual,
            Timing {
                mean_ms: actual.mean_ms,
                ..expected
            }
        );
    }

    #[test]
    fn the_window_is_the_difference_of_two_scrapes() {
        let before = parse(&exposition(
            10,
            0.010,
            &[
                ("0.0005", 2),
                ("0.001", 10),
                ("0.005", 10),
                ("0.01", 10),
                ("+Inf", 10),
            ],
        ));
        let after = parse(&exposition(
            110,
            0.160,
            &[
                ("0.0005", 2),
                ("0.001", 80),
                ("0.005", 109),
                ("0.01", 110),
                ("+Inf", 110),
            ],
        ));
        let held = since(&after, &before);
        // send_csim_status held nothing new in between: left out; no sync series at all.
        assert_eq!(held.answers.len(), 1, "{held:?}");
        assert!(held.syncs.is_empty(), "{held:?}");
        let smt = &held.answers[0];
        assert_eq!(smt.name, "send_msp_token");
        assert_eq!(smt.count, 100);
        assert!((smt.mean_ms - 1.5).abs() < 1e-9, "{smt:?}");
        // 99 of the 100 new ones within 5 ms; only 70 within 1 ms; none over 10 ms.
        assert_eq!(smt.p99_within_ms, Some(5.0));
        assert_eq!(smt.slow, 0);
        assert_eq!(
            smt.describe(ANSWERS),
            "send_msp_token 1.50 ms mean, 99% within 5 ms (100 answers)"
        );
    }

    #[test]
    fn syncs_are_read_by_kind_and_their_stalls_counted() {
        let before = syncs(
            "journal",
            100,
            0.02,
            &[
                ("0.0001", 60),
                ("0.00025", 100),
                ("0.01", 100),
                ("0.5", 100),
                ("+Inf", 100),
            ],
        );
        let after = syncs(
            "journal",
            1100,
            0.52,
            &[
                ("0.0001", 600),
                ("0.00025", 1000),
                ("0.01", 1096),
                ("0.5", 1100),
                ("+Inf", 1100),
            ],
        ) + &syncs(
            "checkpoint",
            2,
            0.006,
            &[("0.005", 2), ("0.01", 2), ("+Inf", 2)],
        );
        let held = since(&parse(&after), &parse(&before));
        assert!(held.answers.is_empty(), "{held:?}");
        let [checkpoint, journal] = &held.syncs[..] else {
            panic!("{held:?}")
        };
        assert_eq!(journal.name, "journal");
        assert_eq!(journal.count, 1000);
        assert!((journal.mean_ms - 0.5).abs() < 1e-9, "{journal:?}");
        // 996 of the new 1000 within 10 ms: 4 stalls, and the 99% bound is 10 ms; all of
        // them within 500 ms.
        assert_eq!(journal.slow, 4);
        assert_eq!(journal.p99_within_ms, Some(10.0));
        assert_eq!(journal.slowest_within_ms, Some(500.0));
        assert_eq!(checkpoint.slow, 0);
        assert_eq!(
            held.lines("the window"),
            vec![
                "   the ledger's syncs (the hub's aidhub_ledger_sync_seconds over the window): \
                 checkpoint 3.00 ms mean, 99% within 5 ms (2 syncs); journal 0.50 ms mean, \
                 99% within 10 ms, 4 over 10 ms, the slowest within 500 ms (1000 syncs)"
                    .to_owned()
            ]
        );
    }

    #[test]
    fn a_tail_beyond_every_bucket_is_said_so() {
        let after = parse(&exposition(
            100,
            5.0,
            &[("0.0005", 50), ("10", 90), ("+Inf", 100)],
        ));
        let held = since(&after, &Scrape::default()).answers;
        assert_eq!(held[0].name, "send_msp_token");
        assert_eq!(held[0].p99_within_ms, None);
        assert!(held[0].describe(ANSWERS).contains(
            "1% beyond the largest bucket, 50 over 10 ms, the slowest beyond the largest \
                 bucket ("
        ));
        // Slowest first.
        assert_eq!(held[1].name, "send_csim_status");
        assert!((held[1].mean_ms - 0.01).abs() < 1e-9, "{:?}", held[1]);
    }

    #[test]
    fn medians_take_each_series_over_the_runs_that_had_it() {
        let answers = |timings: Vec<Timing>| Held {
            answers: timings,
            ..Held::default()
        };
        let runs = [
            answers(vec![
                timing("send_msp_token", 100, 0.9, Some(5.0)),
                timing("request_activation_code", 50, 0.2, Some(1.0)),
            ]),
            answers(vec![timing("send_msp_token", 120, 1.6, None)]),
            answers(vec![
                timing("send_msp_token", 110, 1.2, Some(10.0)),
                timing("request_activation_code", 70, 0.1, Some(2.0)),
            ]),
        ];
        // Slowest first; a run beyond every bound is above the others.
        assert_eq!(
            median(&runs.iter().collect::<Vec<_>>()).answers,
            vec![
                timing("send_msp_token", 110, 1.2, Some(10.0)),
                // Two runs: the lower of the two, a bound one of them had.
                timing("request_activation_code", 50, 0.1, Some(1.0)),
            ]
        );
        assert_eq!(median(&[]), Held::default());
        let twice_beyond = [
            answers(vec![timing("send_msp_token", 1, 9.0, None)]),
            answers(vec![timing("send_msp_token", 1, 8.0, None)]),
        ];
        let twice_beyond = median(&twice_beyond.iter().collect::<Vec<_>>());
        assert_eq!(twice_beyond.answers[0].p99_within_ms, None);
        assert_eq!(
            twice_beyond.lines("the windows"),
            vec![
                "   answers held for the ledger (the hub's aidhub_ledger_settle_seconds over the \
                 windows): send_msp_token 8.00 ms mean, 1% beyond the largest bucket (1 answer)"
                    .to_owned()
            ]
        );
        assert!(Held::default().lines("the window").is_empty());
    }

    #[test]
    fn the_slowest_stalls_bound_is_a_median_too() {
        let journal = |slow: u64, slowest_within_ms: Option<f64>| Held {
            syncs: vec![Timing {
                slow,
                slowest_within_ms,
                ..timing("journal", 1000, 0.2, Some(1.0))
            }],
            ..Held::default()
        };
        let runs = [
            journal(3, Some(500.0)),
            journal(0, Some(1.0)),
            journal(5, None),
        ];
        let median = median(&runs.iter().collect::<Vec<_>>());
        assert_eq!(median.syncs[0].slow, 3);
        assert_eq!(median.syncs[0].slowest_within_ms, Some(500.0));
        assert_eq!(
            median.syncs[0].describe(("sync", "syncs")),
            "journal 0.20 ms mean, 99% within 1 ms, 3 over 10 ms, the slowest within 500 ms \
             (1000 syncs)"
        );
    }

    /// One series of histogram `name` as the hub exposes it: `counts` cumulative in the
    /// buckets of `bounds` (the last `+Inf`, the count), and `sum` seconds.
    fn series(name: &str, labels: &str, bounds: &[&str], counts: [u64; 4], sum: f64) -> String {
        let mut text = String::new();
        for (le, n) in bounds.iter().zip(counts) {
            text += &format!("{name}_bucket{{{labels},le=\"{le}\"}} {n}\n");
        }
        text + &format!(
            "{name}_sum{{{labels}}} {sum}\n{name}_count{{{labels}}} {}\n",
            counts[3]
        )
    }

    /// The requests' series of every function are added up, and only what came in the
    /// window counts: a tail the load generator saw that this line does not have was
    /// spent outside the hub's handling.
    #[test]
    fn requests_inside_the_hub_are_summed_over_the_functions() {
        // One function's series, counted in the buckets of these bounds (cumulative).
        let requests = |function: &str, counts: [u64; 4], sum: f64| {
            let labels = format!("function=\"{function}\"");
            let bounds = ["0.001", "0.01", "0.02", "+Inf"];
            series(
                "aidhub_request_duration_seconds",
                &labels,
                &bounds,
                counts,
                sum,
            )
        };
        let before = requests("send_msp_token", [40, 50, 50, 50], 0.05)
            + &requests("send_csim_status", [100, 100, 100, 100], 0.02);
        // In the window: 60 more Send MSP Token, 3 of them over 10 ms; 940 more Send CSIM
        // Status, all within 1 ms.
        let after = requests("send_msp_token", [80, 107, 110, 110], 0.11)
            + &requests("send_csim_status", [1040, 1040, 1040, 1040], 0.21);
        let held = since(&parse(&after), &parse(&before));
        // 980 of the 1000 within 1 ms, 997 within 10 ms: the 99% bound is 10 ms.
        assert_one(
            &held.requests,
            Timing {
                slow: 3,
                slowest_within_ms: Some(20.0),
                ..timing(ALL, 1000, 0.25, Some(10.0))
            },
        );
        assert_eq!(
            held.lines("the window"),
            vec![
                "   requests inside the hub, from the head read to the answer made (the hub's \
                 aidhub_request_duration_seconds over the window): all functions 0.25 ms mean, \
                 99% within 10 ms, 3 over 10 ms, the slowest within 20 ms (1000 requests)"
                    .to_owned()
            ]
        );
        assert!(since(&parse(""), &parse("")).requests.is_empty());
    }

    /// The exchanges' series, one per partner and function, are added up into one, and
    /// only what came in the window counts: a request's tail that they have too was spent
    /// on the partner's leg.
    #[test]
    fn exchanges_with_the_partners_are_summed_over_partners_and_functions() {
        let exchanges = |target: &str, function: &str, counts: [u64; 4], sum: f64| {
            let labels = format!("target=\"{target}\",function=\"{function}\"");
            let bounds = ["0.001", "0.01", "0.05", "+Inf"];
            series(
                "aidhub_upstream_duration_seconds",
                &labels,
                &bounds,
                counts,
                sum,
            )
        };
        // Two partners, and one of them for two functions: three series that a key of one
        // label would have folded into two.
        let before = exchanges("mspalpha", "send_csim_status", [100, 100, 100, 100], 0.02)
            + &exchanges(
                "mspalpha",
                "request_activation_code",
                [10, 10, 10, 10],
                0.005,
            )
            + &exchanges("cmptwo", "send_msp_token", [0, 0, 0, 0], 0.0);
        // In the window: 400 more, 2 of them over 10 ms and 1 of those over 50 ms; the
        // request line of the same window, summed apart, is not mixed in.
        let after = exchanges("mspalpha", "send_csim_status", [300, 300, 300, 300], 0.06)
            + &exchanges(
                "mspalpha",
                "request_activation_code",
                [100, 109, 110, 110],
                0.255,
            )
            + &exchanges("cmptwo", "send_msp_token", [95, 99, 99, 100], 0.11)
            + "aidhub_request_duration_seconds_count{function=\"send_msp_token\"} 7\n";
        let held = since(&parse(&after), &parse(&before));
        // 385 of the 400 within 1 ms, 398 within 10 ms: the 99% bound is 10 ms.
        assert_one(
            &held.exchanges,
            Timing {
                slow: 2,
                slowest_within_ms: None,
                ..timing(EVERY_PARTNER, 400, 1.0, Some(10.0))
            },
        );
        // After the requests' line, before the ledger's.
        let lines = held.lines("the window");
        assert_eq!(
            lines[1],
            "   exchanges with the partners, from a connection taken to the answer read (the \
             hub's aidhub_upstream_duration_seconds over the window): all partners 1.00 ms \
             mean, 99% within 10 ms, 2 over 10 ms, the slowest beyond the largest bucket (400 \
             exchanges)"
        );
        assert!(
            lines[0].starts_with("   requests inside the hub"),
            "{lines:?}"
        );
        // The medians over runs keep them.
        let median = median(&[&held, &held]);
        assert_eq!(median.exchanges, held.exchanges);
        assert!(since(&parse(""), &parse("")).exchanges.is_empty());
    }

    /// The admissions' series of every function are added up into one line, printed between
    /// the requests' and the exchanges': with them a request's tail inside the hub is split
    /// into before the exchange, the exchange, and the ledger's hold after it.
    #[test]
    fn admissions_are_summed_over_the_functions_between_requests_and_exchanges() {
        let bounds = ["0.001", "0.01", "0.02", "+Inf"];
        let histogram = |name: &str, labels: &str, counts: [u64; 4], sum: f64| {
            series(name, labels, &bounds, counts, sum)
        };
        let admissions = |function: &str, counts: [u64; 4], sum: f64| {
            let labels = format!("function=\"{function}\"");
            histogram("aidhub_request_admission_seconds", &labels, counts, sum)
        };
        let before = admissions("send_msp_token", [5, 5, 5, 5], 0.001)
            + &admissions("send_csim_status", [20, 20, 20, 20], 0.002);
        // In the window: 95 Send MSP Token, 1 of them over 10 ms and within 20; 105 Send
        // CSIM Status, 2 over 10 ms and beyond 20; and the requests and exchanges they made.
        let after = admissions("send_msp_token", [99, 99, 100, 100], 0.031)
            + &admissions("send_csim_status", [123, 123, 123, 125], 0.102)
            + &histogram(
                "aidhub_request_duration_seconds",
                "function=\"send_csim_status\"",
                [150, 190, 200, 200],
                0.5,
            )
            + &histogram(
                "aidhub_upstream_duration_seconds",
                "target=\"mspalpha\",function=\"send_csim_status\"",
                [200, 200, 200, 200],
                0.05,
            );
        let held = since(&parse(&after), &parse(&before));
        // 197 of the 200 within 1 ms, 198 within 20 ms: the 99% bound is 20 ms.
        assert_one(
            &held.admissions,
            Timing {
                slow: 3,
                slowest_within_ms: None,
                ..timing(ALL, 200, 0.65, Some(20.0))
            },
        );
        let lines = held.lines("the window");
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with("   requests inside the hub"),
            "{lines:?}"
        );
        assert_eq!(
            lines[1],
            "   admissions, from the head read to the exchange's start (the hub's \
             aidhub_request_admission_seconds over the window): all functions 0.65 ms mean, \
             99% within 20 ms, 3 over 10 ms, the slowest beyond the largest bucket (200 \
             admissions)"
        );
        assert!(
            lines[2].starts_with("   exchanges with the partners"),
            "{lines:?}"
        );
        assert_eq!(median(&[&held, &held]).admissions, held.admissions);
        assert!(since(&parse(""), &parse("")).admissions.is_empty());
    }

    /// The counters of every upstream are added up, only what the window added counts, and
    /// the medians are each count's own.
    #[test]
    fn upstream_connections_are_counted_over_the_window() {
        let counters = |alpha: u64, two: u64, waits: u64| {
            format!(
                "# TYPE aidhub_upstream_connections_opened_total counter\n\
                 aidhub_upstream_connections_opened_total{{target=\"mspalpha\"}} {alpha}\n\
                 aidhub_upstream_connections_opened_total{{target=\"cmptwo\"}} {two}\n\
                 aidhub_upstream_connection_waits_total{{target=\"mspalpha\"}} {waits}\n\
                 aidhub_upstream_connection_waits_total{{target=\"cmptwo\"}} 0\n"
            )
        };
        let before = parse(&counters(32, 8, 24));
        let after = parse(&counters(35, 9, 25));
        let held = since(&after, &before);
        assert_eq!(
            held.upstream,
            Some(Connections {
                opened: 4,
                waits: 1
            })
        );
        assert_eq!(
            held.lines("the window"),
            vec![
                "   upstream connections (the hub's aidhub_upstream_connections_opened_total and \
                 aidhub_upstream_connection_waits_total over the window): 4 opened, 1 call \
                 waited for one"
                    .to_owned()
            ]
        );
        // Nothing opened: still said.
        let warm = since(&after, &after);
        assert_eq!(warm.upstream, Some(Connections::default()));
        assert!(warm.lines("the window")[0].ends_with(": 0 opened, 0 calls waited for one"));
        // mspalpha's pool built anew counts from 0 again (1 opened since), cmptwo's one
        // more; a hub without the counters has no line.
        let rebuilt = since(&parse(&counters(1, 9, 0)), &before);
        assert_eq!(rebuilt.upstream.map(|c| (c.opened, c.waits)), Some((2, 0)));
        assert_eq!(since(&parse(""), &before).upstream, None);
        let runs: Vec<Held> = [(0, 5), (7, 0), (2, 1), (9, 9)]
            .into_iter()
            .map(|(opened, waits)| Held {
                upstream: Some(Connections { opened, waits }),
                ..Held::default()
            })
            .chain([Held::default()])
            .collect();
        // Four runs read them (the fifth could not): the lower middle of each count.
        assert_eq!(
            median(&runs.iter().collect::<Vec<_>>()).upstream,
            Some(Connections {
                opened: 2,
                waits: 1
            })
        );
    }
}
