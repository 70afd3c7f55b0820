//! What hosts sharing a store coordinate through (task offers, concurrency
//! slots), for stores that one process owns (memory, redb): kept in memory,
//! since no other process could take part, and both are worthless once the
//! process that made them is gone (its runs resume and offer again; its slots
//! would have expired).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

use super::{SlotRequest, StoreError, TaskOffer};

struct Row {
    offer: TaskOffer,
    claim: Option<(String, u64)>,
    result: Option<Value>,
}

/// Offers, their claims and results, in memory.
#[derive(Default)]
pub(super) struct Offers {
    rows: Mutex<BTreeMap<String, Row>>,
    changed: tokio::sync::Notify,
}

impl Offers {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Row>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn offer(&self, offer: TaskOffer) -> Result<(), StoreError> {
        self.lock().insert(
            offer.key.clone(),
            Row {
                offer,
                claim: None,
                result: None,
            },
        );
        self.changed.notify_waiters();
        Ok(())
    }

    pub(super) fn claim(
        &self,
        host: &str,
        types: &[String],
        now_ms: u64,
        until_ms: u64,
    ) -> Result<Option<TaskOffer>, StoreError> {
        let mut rows = self.lock();
        let open = rows
            .values_mut()
            .filter(|r| r.result.is_none() && types.contains(&r.offer.task_type))
            .filter(|r| r.claim.as_ref().is_none_or(|(_, until)| *until < now_ms))
            .min_by(|a, b| {
                (a.offer.offered_ms, &a.offer.key).cmp(&(b.offer.offered_ms, &b.offer.key))
            });
        Ok(open.map(|r| {
            r.claim = Some((host.to_string(), until_ms));
            r.offer.clone()
        }))
    }

    pub(super) fn renew(
        &self,
        host: &str,
        keys: &[String],
        until_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut rows = self.lock();
        let mut lost = Vec::new();
        for key in keys {
            match rows.get_mut(key).and_then(|r| r.claim.as_mut()) {
                Some((holder, until)) if holder == host => *until = until_ms,
                _ => lost.push(key.clone()),
            }
        }
        Ok(lost)
    }

    pub(super) fn finish(&self, key: &str, host: &str, result: Value) -> Result<bool, StoreError> {
        let mut rows = self.lock();
        let held = match rows.get_mut(key) {
            Some(row) if row.claim.as_ref().is_some_and(|(h, _)| h == host) => {
                row.result = Some(result);
                true
            }
            _ => false,
        };
        drop(rows);
        if held {
            self.changed.notify_waiters();
        }
        Ok(held)
    }

    pub(super) fn results(&self, keys: &[String]) -> Result<Vec<(String, Value)>, StoreError> {
        let mut rows = self.lock();
        let mut done = Vec::new();
        for key in keys {
            if rows.get(key).is_some_and(|r| r.result.is_some())
                && let Some(Row {
                    result: Some(result),
                    ..
                }) = rows.remove(key)
            {
                done.push((key.clone(), result));
            }
        }
        Ok(done)
    }

    pub(super) fn take_back(&self, key: &str) -> Result<bool, StoreError> {
        let mut rows = self.lock();
        let unclaimed = rows.get(key).is_some_and(|r| r.claim.is_none());
        if unclaimed {
            rows.remove(key);
        }
        Ok(unclaimed)
    }

    pub(super) fn withdraw(&self, run_id: &str, keys: Option<&[String]>) -> Result<(), StoreError> {
        let mut rows = self.lock();
        match keys {
            Some(keys) => {
                for key in keys {
                    rows.remove(key);
                }
            }
            None => rows.retain(|_, r| r.offer.run_id != run_id),
        }
        Ok(())
    }

    pub(super) async fn wait(&self, timeout: std::time::Duration) {
        let _ = tokio::time::timeout(timeout, self.changed.notified()).await;
    }
}

/// Concurrency slots, in memory: (limiter id, token) → (host, until).
#[derive(Default)]
pub(super) struct Slots {
    held: Mutex<BTreeMap<(String, String), (String, u64)>>,
}

impl Slots {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), (String, u64)>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn acquire(&self, slot: &SlotRequest<'_>) -> Result<bool, StoreError> {
        let mut held = self.lock();
        held.retain(|(id, _), (_, until)| id != slot.id || *until >= slot.now_ms);
        let taken = held.keys().filter(|(id, _)| id == slot.id).count();
        if taken >= slot.max as usize {
            return Ok(false);
        }
        held.insert(
            (slot.id.to_string(), slot.token.to_string()),
            (slot.host.to_string(), slot.until_ms),
        );
        Ok(true)
    }

    pub(super) fn release(&self, id: &str, token: &str) -> Result<(), StoreError> {
        self.lock().remove(&(id.to_string(), token.to_string()));
        Ok(())
    }

    pub(super) fn renew(
        &self,
        host: &str,
        tokens: &[String],
        until_ms: u64,
    ) -> Result<(), StoreError> {
        for ((_, token), (h, until)) in self.lock().iter_mut() {
            if h == host && tokens.contains(token) {
                *until = until_ms;
            }
        }
        Ok(())
    }
}
