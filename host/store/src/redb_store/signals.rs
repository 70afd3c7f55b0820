//! Signals in the redb file: `signals` ((run id, name) → JSON), deleted
//! with their run. Arrivals are announced in this process only: no other
//! process opens the file.

use redb::{ReadableTable, WriteTransaction};

use super::{LAST, RUNS, RedbStore, SIGNALS, backend};
use crate::signals::{Signal, Signals};
use crate::{RunLogError, StoreError, decode, encode};

/// Delete run `id`'s signals inside `tx`.
pub(super) fn delete_of_run(tx: &WriteTransaction, id: &str) -> Result<(), StoreError> {
    let mut signals = tx.open_table(SIGNALS).map_err(backend)?;
    let names: Vec<String> = signals
        .range((id, "")..=(id, LAST))
        .map_err(backend)?
        .map(|item| item.map(|(k, _)| k.value().1.to_string()))
        .collect::<Result<_, _>>()
        .map_err(backend)?;
    for name in &names {
        signals.remove((id, name.as_str())).map_err(backend)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Signals for RedbStore {
    async fn signal_put(
        &self,
        run_id: &str,
        name: &str,
        signal: &Signal,
    ) -> Result<bool, RunLogError> {
        let arrival = crate::signals::Arrival::new(run_id, name);
        let (id, name, bytes) = (run_id.to_string(), name.to_string(), encode(signal));
        let put = self
            .write(move |tx| {
                let runs = tx.open_table(RUNS).map_err(backend)?;
                if runs.get(id.as_str()).map_err(backend)?.is_none() {
                    return Err(RunLogError::UnknownRun(id));
                }
                let mut signals = tx.open_table(SIGNALS).map_err(backend)?;
                let key = (id.as_str(), name.as_str());
                if signals.get(key).map_err(backend)?.is_some() {
                    return Ok(false);
                }
                signals.insert(key, bytes.as_slice()).map_err(backend)?;
                Ok(true)
            })
            .await?;
        if put {
            let _ = self.signal_feed.send(arrival);
        }
        Ok(put)
    }

    async fn signal_get(&self, run_id: &str, name: &str) -> Result<Option<Signal>, StoreError> {
        let (id, name) = (run_id.to_string(), name.to_string());
        self.read(move |tx| {
            let signals = tx.open_table(SIGNALS).map_err(backend)?;
            let found = signals.get((id.as_str(), name.as_str())).map_err(backend)?;
            found.map(|v| decode(&name, v.value())).transpose()
        })
        .await
    }

    fn signal_feed(&self) -> tokio::sync::broadcast::Receiver<crate::signals::Arrival> {
        self.signal_feed.subscribe()
    }
}
