//! What went wrong talking to PostgreSQL, and what the ledger's callers hear of it.
//!
//! A [`Fault`] is either a database error or a ledger error raised on the way (a record
//! this version cannot read). Database errors are sorted once, in [`Fault::into_ledger`]:
//! a lost or refused connection, a server shutting down or out of connections is
//! [`LedgerError::Unavailable`] (the hub answers 503 code 216 and the pool reconnects by
//! itself); a deadlock or serialization failure is [`Fault::is_retryable`] and the whole
//! transaction runs again; anything else is [`LedgerError::Storage`]. Messages carry the
//! server's words and SQLSTATE, never the connection URL.

use tokio_postgres::error::SqlState;

use crate::ledger::LedgerError;

/// A failed step of a ledger call.
#[derive(Debug)]
pub(super) enum Fault {
    /// The database said no, or could not be reached.
    Db(tokio_postgres::Error),
    /// The ledger itself refused (a corrupt record).
    Ledger(LedgerError),
}

/// Wraps a database error (for `map_err`).
pub(super) fn db(e: tokio_postgres::Error) -> Fault {
    Fault::Db(e)
}

impl From<LedgerError> for Fault {
    fn from(e: LedgerError) -> Fault {
        Fault::Ledger(e)
    }
}

impl Fault {
    /// A conflict between transactions: running the same one again will do.
    pub(super) fn is_retryable(&self) -> bool {
        let Fault::Db(e) = self else { return false };
        matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
        )
    }

    /// What the ledger's caller hears.
    pub(super) fn into_ledger(self) -> LedgerError {
        match self {
            Fault::Ledger(e) => e,
            Fault::Db(e) => classify(&e),
        }
    }
}

fn classify(e: &tokio_postgres::Error) -> LedgerError {
    let Some(db) = e.as_db_error() else {
        // No answer from the server: the connection broke, or never came up.
        return LedgerError::Unavailable(format!("PostgreSQL: {e}"));
    };
    let code = db.code();
    let unavailable = code.code().starts_with("08") // connection exception
        || code.code().starts_with("53") // insufficient resources (too many connections)
        || *code == SqlState::ADMIN_SHUTDOWN
        || *code == SqlState::CRASH_SHUTDOWN
        || *code == SqlState::CANNOT_CONNECT_NOW
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION // a standby, during a failover
        || *code == SqlState::QUERY_CANCELED; // statement_timeout
    let text = format!("PostgreSQL {}: {}", code.code(), db.message());
    if unavailable {
        LedgerError::Unavailable(text)
    } else {
        LedgerError::Storage(text)
    }
}

/// A pool that could not hand out a connection (timeout, connect refused): unavailable.
pub(super) fn pool(e: deadpool_postgres::PoolError) -> LedgerError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(&e),
        other => LedgerError::Unavailable(format!("PostgreSQL pool: {other}")),
    }
}
