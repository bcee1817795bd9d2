//! [`TransferLedger`] for [`SledLedger`]: three more trees in the same database —
//! `ts43_tokens` (key: token hash), `ts43_bridges` (bridge `TOKEN` hash → token hash) and
//! `ts43_transfers` (key: transfer id) — with the same habits as the rest of the backend:
//! versioned JSON values, compare-and-swap on one key per change, a group commit before
//! returning.

use super::SledLedger;
use crate::ledger::transfers::{
    change, newest_first, Changed, Step, TemporaryToken, TokenChange, Transfer, TransferLedger,
};
use crate::ledger::LedgerError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::Tree;
use uuid::Uuid;

const VERSION: u8 = 1;

fn encode<T: Serialize>(kind: &str, value: &T) -> Result<Vec<u8>, LedgerError> {
    let mut out = vec![VERSION];
    serde_json::to_writer(&mut out, value).map_err(|e| LedgerError::Corrupt {
        key: kind.to_owned(),
        reason: format!("cannot encode: {e}"),
    })?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(kind: &str, value: &[u8]) -> Result<T, LedgerError> {
    let corrupt = |reason: String| LedgerError::Corrupt {
        key: kind.to_owned(),
        reason,
    };
    match value.split_first() {
        Some((&VERSION, json)) => {
            serde_json::from_slice(json).map_err(|e| corrupt(format!("bad version 1 record: {e}")))
        }
        Some((v, _)) => Err(corrupt(format!("unknown schema version {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// Compare-and-swap on `key`: `rule` maps the current record to the next (or none).
fn swap<T: Serialize + DeserializeOwned, R>(
    tree: &Tree,
    kind: &str,
    key: &[u8],
    rule: impl Fn(Option<T>) -> (Option<T>, R),
) -> Result<R, LedgerError> {
    loop {
        let old = tree.get(key)?;
        let cur = old.as_deref().map(|v| decode::<T>(kind, v)).transpose()?;
        let (next, reply) = rule(cur);
        let Some(next) = next else {
            return Ok(reply);
        };
        if tree
            .compare_and_swap(key, old, Some(encode(kind, &next)?))?
            .is_ok()
        {
            return Ok(reply);
        }
    }
}

impl SledLedger {
    fn ts43_token(&self, hash: &str) -> Result<Option<TemporaryToken>, LedgerError> {
        let tokens = &self.inner.ts43_tokens;
        match tokens.get(hash.as_bytes())? {
            Some(v) => decode("ts43_token", &v).map(Some),
            None => match self.inner.ts43_bridges.get(hash.as_bytes())? {
                Some(own) => tokens
                    .get(&own)?
                    .map(|v| decode("ts43_token", &v))
                    .transpose(),
                None => Ok(None),
            },
        }
    }
}

#[async_trait::async_trait]
impl TransferLedger for SledLedger {
    async fn open_transfer(
        &self,
        transfer: Transfer,
        token: TemporaryToken,
    ) -> Result<(), LedgerError> {
        // The transfer first: a crash in between leaves a transfer without token, which
        // the sweep removes, never a token pointing nowhere.
        let result = (|| {
            if self.inner.ts43_tokens.contains_key(token.hash.as_bytes())? {
                return Ok(());
            }
            self.inner
                .ts43_transfers
                .insert(transfer.id.as_bytes(), encode("ts43_transfer", &transfer)?)?;
            let value = encode("ts43_token", &token)?;
            let _ = self.inner.ts43_tokens.compare_and_swap(
                token.hash.as_bytes(),
                None as Option<&[u8]>,
                Some(value),
            )?;
            Ok(())
        })();
        self.flushed(result).await
    }

    async fn token(&self, hash: &str) -> Result<Option<TemporaryToken>, LedgerError> {
        self.ts43_token(hash)
    }

    async fn change_token(&self, hash: &str, what: TokenChange) -> Result<Changed, LedgerError> {
        let result = swap(
            &self.inner.ts43_tokens,
            "ts43_token",
            hash.as_bytes(),
            |cur: Option<TemporaryToken>| match cur {
                None => (None, Changed::Unknown),
                Some(cur) => change(&cur, &what),
            },
        )
        .and_then(|changed| {
            if let (Changed::Done(t), TokenChange::Bridge(bridge)) = (&changed, &what) {
                self.inner
                    .ts43_bridges
                    .insert(bridge.as_bytes(), t.hash.as_bytes())?;
            }
            Ok(changed)
        });
        self.flushed(result).await
    }

    async fn step(&self, id: Uuid, step: Step) -> Result<Option<Transfer>, LedgerError> {
        let result = swap(
            &self.inner.ts43_transfers,
            "ts43_transfer",
            id.as_bytes(),
            |cur: Option<Transfer>| match cur {
                None => (None, None),
                Some(mut t) => {
                    t.push(step.clone());
                    (Some(t.clone()), Some(t))
                }
            },
        );
        self.flushed(result).await
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<Transfer>, LedgerError> {
        self.inner
            .ts43_transfers
            .get(id.as_bytes())?
            .map(|v| decode("ts43_transfer", &v))
            .transpose()
    }

    async fn transfers(
        &self,
        carrier: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Transfer>, LedgerError> {
        let mut list = Vec::new();
        for entry in self.inner.ts43_transfers.iter() {
            let (_, value) = entry?;
            let t: Transfer = decode("ts43_transfer", &value)?;
            if carrier.is_none_or(|c| t.carrier == c) {
                list.push(t);
            }
        }
        newest_first(&mut list, limit);
        Ok(list)
    }

    async fn sweep_transfers(&self, now: u64, retention_ms: u64) -> Result<u64, LedgerError> {
        let result = (|| {
            let mut gone = 0;
            for entry in self.inner.ts43_tokens.iter() {
                let (key, value) = entry?;
                let t: TemporaryToken = decode("ts43_token", &value)?;
                if t.expires_at <= now {
                    if let Some(bridge) = &t.bridge_hash {
                        self.inner.ts43_bridges.remove(bridge.as_bytes())?;
                    }
                    self.inner.ts43_tokens.remove(key)?;
                    gone += 1;
                }
            }
            for entry in self.inner.ts43_transfers.iter() {
                let (key, value) = entry?;
                let t: Transfer = decode("ts43_transfer", &value)?;
                if t.updated_at.saturating_add(retention_ms) <= now {
                    self.inner.ts43_transfers.remove(key)?;
                    gone += 1;
                }
            }
            Ok(gone)
        })();
        self.flushed(result).await
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::transfers::conformance;
    use crate::ledger::SledLedger;

    #[tokio::test]
    async fn sled_passes_the_transfer_suite_and_keeps_records_across_a_restart() {
        for check in conformance::ALL {
            let dir = tempfile::tempdir().unwrap();
            let ledger = SledLedger::open(dir.path()).unwrap();
            (check.run)(&ledger).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let ledger = SledLedger::open(dir.path()).unwrap();
            conformance::open(&ledger, "kept", "acme", 1_000).await
        };
        let ledger = SledLedger::open(dir.path()).unwrap();
        use crate::ledger::transfers::TransferLedger as _;
        assert_eq!(ledger.token("kept").await.unwrap().unwrap().transfer, id);
    }
}
