//! [`MemoryTransfers`]: the transfer ledger in maps behind one mutex — the model the sled
//! backend is checked against, and a test double.

use super::{change, Changed, TemporaryToken, TokenChange, Transfer, TransferLedger};
use crate::ledger::LedgerError;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

/// An in-memory [`TransferLedger`]; clones share the records.
#[derive(Clone, Debug, Default)]
pub struct MemoryTransfers {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    tokens: BTreeMap<String, TemporaryToken>,
    bridges: BTreeMap<String, String>,
    transfers: BTreeMap<Uuid, Transfer>,
}

impl MemoryTransfers {
    /// An empty ledger.
    pub fn new() -> MemoryTransfers {
        MemoryTransfers::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Each critical section writes whole records: a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl TransferLedger for MemoryTransfers {
    async fn open_transfer(
        &self,
        transfer: Transfer,
        token: TemporaryToken,
    ) -> Result<(), LedgerError> {
        let mut state = self.state();
        if state.tokens.contains_key(&token.hash) {
            return Ok(());
        }
        state.transfers.insert(transfer.id, transfer);
        state.tokens.insert(token.hash.clone(), token);
        Ok(())
    }

    async fn token(&self, hash: &str) -> Result<Option<TemporaryToken>, LedgerError> {
        let state = self.state();
        let own = state.tokens.get(hash);
        let bridged = || state.bridges.get(hash).and_then(|h| state.tokens.get(h));
        Ok(own.or_else(bridged).cloned())
    }

    async fn change_token(&self, hash: &str, what: TokenChange) -> Result<Changed, LedgerError> {
        let mut state = self.state();
        let Some(cur) = state.tokens.get(hash) else {
            return Ok(Changed::Unknown);
        };
        let (next, answer) = change(cur, &what);
        if let Some(next) = next {
            if let Some(bridge) = &next.bridge_hash {
                state.bridges.insert(bridge.clone(), next.hash.clone());
            }
            state.tokens.insert(next.hash.clone(), next);
        }
        Ok(answer)
    }

    async fn step(&self, id: Uuid, step: super::Step) -> Result<Option<Transfer>, LedgerError> {
        let mut state = self.state();
        Ok(state.transfers.get_mut(&id).map(|t| {
            t.push(step);
            t.clone()
        }))
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>, LedgerError> {
        Ok(self.state().transfers.get(&id).cloned())
    }

    async fn transfers(
        &self,
        carrier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Transfer>, LedgerError> {
        let mut list: Vec<Transfer> = self
            .state()
            .transfers
            .values()
            .filter(|t| carrier.is_none_or(|c| t.carrier == c))
            .cloned()
            .collect();
        super::newest_first(&mut list, limit);
        Ok(list)
    }

    async fn sweep_transfers(&self, now: u64, retention_ms: u64) -> Result<u64, LedgerError> {
        let mut state = self.state();
        let before = state.tokens.len() + state.transfers.len();
        state.tokens.retain(|_, t| t.expires_at > now);
        let live: Vec<String> = state.tokens.keys().cloned().collect();
        state.bridges.retain(|_, h| live.contains(h));
        state
            .transfers
            .retain(|_, t| t.updated_at.saturating_add(retention_ms) > now);
        Ok((before - state.tokens.len() - state.transfers.len()) as u64)
    }
}
