//! Closing client connections that stay idle (`listen.idle_timeout_secs`).
//!
//! A connection with no request in flight for the idle timeout is closed: a keep-alive
//! connection its client forgot, one whose host vanished without a FIN, and one that never
//! completes a request (a request head trickled in a byte at a time, an h2 preface that never
//! comes). A request in flight keeps its connection open however long it takes, within its
//! own deadlines (its body, too, must all arrive within the idle timeout:
//! `proxy::read_body_within`).
//!
//! The serving code marks each request busy ([`Activity::busy`]); the connection's reads go
//! through [`IdleIo`], which holds one timer per connection, armed for the moment the
//! connection would have been idle for the timeout, and looked at only when a read finds
//! nothing to read (polled only when it fired or the read's waker changed): no timer is set
//! per request, and a request costs two counter updates and one clock read. When the timer
//! fires on an HTTP/1.1 connection still idle, the read ends the connection as if the client
//! had closed it (the server side then closes its half too). An h2 connection is first asked
//! to go away ([`Activity::go_away_asked`]: the serving code shuts it down gracefully, a
//! GOAWAY frame then the close, so that the client knows no stream of its was lost), and its
//! reads end only if it is still open, and idle, the grace after that ([`go_away_grace`]:
//! a client that answered the GOAWAY's PING is long gone by then).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// One connection's requests in flight, and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    /// When the connection was accepted.
    since: Instant,
    in_flight: AtomicUsize,
    /// When the last request ended (or the connection began), in µs since `since`.
    last_us: AtomicU64,
    /// The timer found the h2 connection idle: it should go away.
    go_away: AtomicBool,
}

/// A request in flight on its connection, until dropped.
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        let at = activity.since.elapsed().as_micros() as u64;
        activity.last_us.store(at, Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    /// A connection accepted now.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            since: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_us: AtomicU64::new(0),
            go_away: AtomicBool::new(false),
        })
    }

    /// Whether an h2 connection's timer found it idle, so that it should now be shut down
    /// gracefully (its task is woken when that happens).
    pub fn go_away_asked(&self) -> bool {
        self.go_away.load(Ordering::Relaxed)
    }

    /// Marks a request in flight until the returned guard is dropped.
    pub fn busy(self: &Arc<Activity>) -> Busy {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    /// The moment the connection will have been idle for `timeout`, when that is after `now`
    /// (with a request in flight, `now + timeout`: the time to look again); `None` once it
    /// has been.
    fn idle_until(&self, timeout: Duration, now: Instant) -> Option<Instant> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(now + timeout);
        }
        let last = self.since + Duration::from_micros(self.last_us.load(Ordering::Relaxed));
        let until = last + timeout;
        (until > now).then_some(until)
    }
}

/// How long an idle h2 connection asked to go away may stay open before its reads end: as
/// long as the idle timeout, at most 5 s. Its client has that long to answer the GOAWAY's
/// PING (one round trip), after which the connection closes by itself.
pub fn go_away_grace(timeout: Duration) -> Duration {
    timeout.min(Duration::from_secs(5))
}

/// How an idle connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Its reads end (HTTP/1.1: nothing is lost, the client sees the close).
    Eof,
    /// It is asked to go away first (h2), its reads ending only if it is still open and idle
    /// [`go_away_grace`] later.
    GoAway,
}

/// A connection's I/O, ended once the connection has been idle for the timeout.
pub struct IdleIo<IO> {
    io: IO,
    activity: Arc<Activity>,
    timeout: Duration,
    close: Close,
    timer: Pin<Box<Sleep>>,
    /// The waker the timer was last polled with, since it was last armed: while a read's
    /// waker is the same and the timer has not fired, it need not be polled again.
    armed: Option<Waker>,
    /// Until when a connection asked to go away may stay open.
    going_until: Option<Instant>,
    /// The timer found the connection idle: every later read ends.
    ended: bool,
}

impl<IO> IdleIo<IO> {
    /// `io`, closed as `close` says after `timeout` without a request in flight (as
    /// `activity` tells).
    pub fn new(io: IO, activity: Arc<Activity>, timeout: Duration, close: Close) -> IdleIo<IO> {
        let timer = Box::pin(tokio::time::sleep_until(activity.since + timeout));
        IdleIo {
            io,
            activity,
            timeout,
            close,
            timer,
            armed: None,
            going_until: None,
            ended: false,
        }
    }

    /// Whether the connection's reads should end now: idle for the timeout (and for an h2
    /// connection, asked to go away and still idle the grace after); otherwise the timer is
    /// armed (with `cx`'s waker) for when to look again.
    fn idle(&mut self, cx: &mut Context<'_>) -> bool {
        let waker = cx.waker();
        if self.armed.as_ref().is_some_and(|w| w.will_wake(waker)) && !self.timer.is_elapsed() {
            return false;
        }
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let until = match self.activity.idle_until(self.timeout, now) {
                Some(until) => until,
                None => match self.going_until {
                    Some(until) if until > now => until,
                    Some(_) => return true,
                    None if self.close == Close::Eof => return true,
                    None => {
                        tracing::debug!(
                            idle_secs = self.timeout.as_secs_f64(),
                            "asking an h2 client connection idle for the idle timeout to go away"
                        );
                        self.activity.go_away.store(true, Ordering::Relaxed);
                        waker.wake_by_ref();
                        *self.going_until.insert(now + go_away_grace(self.timeout))
                    }
                },
            };
            self.timer.as_mut().reset(until);
        }
        self.armed = Some(waker.clone());
        false
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for IdleIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending if this.idle(cx) => {
                tracing::debug!(
                    idle_secs = this.timeout.as_secs_f64(),
                    "closing a client connection idle for the idle timeout"
                );
                this.ended = true;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for IdleIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_idle_only_without_a_request_for_the_whole_timeout() {
        let timeout = Duration::from_secs(10);
        let since = Instant::now();
        let activity = Activity {
            since,
            in_flight: AtomicUsize::new(0),
            last_us: AtomicU64::new(0),
            go_away: AtomicBool::new(false),
        };
        assert_eq!(
            activity.idle_until(timeout, since),
            Some(since + timeout),
            "a new connection has the whole timeout"
        );
        assert_eq!(activity.idle_until(timeout, since + timeout), None);

        activity.in_flight.store(1, Ordering::Relaxed);
        let later = since + Duration::from_secs(40);
        assert_eq!(
            activity.idle_until(timeout, later),
            Some(later + timeout),
            "a request in flight keeps it open however long it takes"
        );
        activity.in_flight.store(0, Ordering::Relaxed);
        activity.last_us.store(34_000_000, Ordering::Relaxed);
        let ended = since + Duration::from_secs(34);
        assert_eq!(
            activity.idle_until(timeout, later),
            Some(ended + timeout),
            "counted from the end of the last request"
        );
        assert_eq!(activity.idle_until(timeout, ended + timeout), None);
    }

    #[test]
    fn a_busy_guard_counts_its_request_until_dropped() {
        let activity = Activity::new();
        let (one, two) = (activity.busy(), activity.busy());
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 2);
        drop(one);
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 1);
        drop(two);
        assert_eq!(activity.in_flight.load(Ordering::Relaxed), 0);
        let now = Instant::now();
        let until = activity
            .idle_until(Duration::from_secs(10), now)
            .expect("just ended");
        assert!(until > now + Duration::from_secs(9), "{until:?}");
    }
}
