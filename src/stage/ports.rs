//! Loopback ports for a child process to listen on: the bench's partners, hubs and nginx, and
//! the tests that run the binary.
//!
//! A port is chosen here and bound by the child a moment later, so it must not be taken in
//! between. Binding port 0 and releasing it hands out a port of the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`), which every outgoing connection on the machine draws
//! from as well: a bench opening thousands of connections a second could take it before the
//! child binds it (under valgrind, seconds later). So the ports come from below that range,
//! where only an explicit bind can land, each probed free, and one process never hands the
//! same port out twice in a row of the range.

use std::hash::BuildHasher;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

/// The lowest port handed out: clear of the services a machine of ours runs below it
/// (PostgreSQL 5432, Redis 6379, NATS 4222 …).
const LOWEST: u16 = 10_000;

/// The low bound of the kernel's default ephemeral range, where `/proc` cannot be read.
const DEFAULT_EPHEMERAL_LOW: u16 = 32_768;

/// Where this process's next port is looked for, as an offset into the range; starts at a
/// random offset so that processes started together look in different places.
static CURSOR: OnceLock<AtomicU32> = OnceLock::new();

/// A port on 127.0.0.1 that is free, below the ephemeral range, and not handed out by this
/// process before (until the range wraps around).
pub fn free_port() -> Result<u16, String> {
    let Some((lowest, span)) = range_below(ephemeral_low()) else {
        // The range leaves no room below it: fall back to a port the kernel picks.
        return TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .map_err(|e| format!("no free port on 127.0.0.1: {e}"));
    };
    let cursor = CURSOR.get_or_init(|| {
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        AtomicU32::new((random % u64::from(span)) as u32)
    });
    first_free(lowest, span, cursor, |port| {
        TcpListener::bind(("127.0.0.1", port)).is_ok()
    })
}

/// The ports from [`LOWEST`] up to the ephemeral range: `(LOWEST, how many)`, if there are
/// at least a thousand.
fn range_below(ephemeral_low: u16) -> Option<(u16, u16)> {
    let span = ephemeral_low.checked_sub(LOWEST)?;
    (span >= 1_000).then_some((LOWEST, span))
}

/// The first port from `cursor` on, going round `lowest .. lowest + span` once, that
/// `is_free`; the cursor moves past every port looked at.
fn first_free(
    lowest: u16,
    span: u16,
    cursor: &AtomicU32,
    is_free: impl Fn(u16) -> bool,
) -> Result<u16, String> {
    for _ in 0..span {
        let offset = cursor.fetch_add(1, Ordering::Relaxed) % u32::from(span);
        let port = lowest + offset as u16;
        if is_free(port) {
            return Ok(port);
        }
    }
    Err(format!(
        "no free port on 127.0.0.1 in {lowest}–{}",
        u32::from(lowest) + u32::from(span) - 1
    ))
}

/// The first port of `net.ipv4.ip_local_port_range`, where outgoing connections start.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(DEFAULT_EPHEMERAL_LOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_below_the_ephemeral_range_free_and_never_the_same_twice() {
        let ephemeral_low = ephemeral_low();
        let ports: Vec<u16> = (0..50).map(|_| free_port().unwrap()).collect();
        let mut distinct = ports.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        for port in ports {
            assert!(
                (LOWEST..ephemeral_low).contains(&port),
                "{port} outside {LOWEST}..{ephemeral_low}"
            );
            TcpListener::bind(("127.0.0.1", port)).expect("a port handed out binds");
        }
    }

    #[test]
    fn ports_in_use_are_passed_over_and_the_search_wraps_around() {
        let cursor = AtomicU32::new(8);
        let taken = [10_008, 10_009, 10_000];
        let port = first_free(10_000, 10, &cursor, |p| !taken.contains(&p)).unwrap();
        assert_eq!(
            port, 10_001,
            "past the two taken, round the end, past 10 000"
        );
        let next = first_free(10_000, 10, &cursor, |p| !taken.contains(&p)).unwrap();
        assert_eq!(next, 10_002, "not the same port again");
    }

    #[test]
    fn a_full_range_is_an_error_that_names_it() {
        let error = first_free(10_000, 10, &AtomicU32::new(0), |_| false).unwrap_err();
        assert_eq!(error, "no free port on 127.0.0.1 in 10000–10009");
    }

    #[test]
    fn an_ephemeral_range_that_leaves_too_little_below_it_gives_none() {
        assert_eq!(range_below(32_768), Some((10_000, 22_768)));
        assert_eq!(range_below(10_999), None);
        assert_eq!(range_below(1_024), None);
    }
}
