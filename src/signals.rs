//! The process signals the long-running commands answer: SIGTERM, SIGINT and SIGHUP.
//! Registered before a command starts anything, so that none arrives while its default
//! action (ending the process without destructors) is still in place. `serve` stops on
//! SIGTERM or SIGINT and reloads on SIGHUP; the bench and the partner simulator stop on
//! any of the three.

use tokio::signal::unix::{signal, SignalKind};

/// One of the signals [`Signals`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// SIGTERM: a service manager, `kill`, `timeout`.
    Term,
    /// SIGINT: Ctrl-C.
    Int,
    /// SIGHUP: `kill -HUP`, or the terminal went away.
    Hup,
}

impl Received {
    /// `SIGTERM`, `SIGINT` or `SIGHUP`.
    pub fn name(self) -> &'static str {
        match self {
            Received::Term => "SIGTERM",
            Received::Int => "SIGINT",
            Received::Hup => "SIGHUP",
        }
    }

    /// The exit status of a process that stops because of it (128 + the signal's number).
    pub fn exit_status(self) -> u8 {
        128 + match self {
            Received::Hup => 1,
            Received::Int => 2,
            Received::Term => 15,
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP, taken over from their default action.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Takes the three signals over; the error names the one that could not be.
    pub fn register() -> Result<Signals, String> {
        let on = |kind: SignalKind| {
            signal(kind).map_err(|e| {
                format!(
                    "cannot install a handler for signal {}: {e}",
                    kind.as_raw_value()
                )
            })
        };
        Ok(Signals {
            term: on(SignalKind::terminate())?,
            int: on(SignalKind::interrupt())?,
            hup: on(SignalKind::hangup())?,
        })
    }

    /// The next signal to arrive. A stream that ended (tokio's signal driver is gone, which
    /// happens only as its runtime shuts down) is not taken for its signal: `serve` would
    /// otherwise reload over and over on a SIGHUP stream that ended. With all three ended,
    /// SIGTERM: the process is on its way out.
    pub async fn next(&mut self) -> Received {
        tokio::select! {
            Some(()) = self.term.recv() => Received::Term,
            Some(()) = self.int.recv() => Received::Int,
            Some(()) = self.hup.recv() => Received::Hup,
            else => Received::Term,
        }
    }
}
