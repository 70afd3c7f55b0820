//! Schedules in the redb file: `schedules` ((owner, name) → JSON) and the
//! index `schedules_due` ((due ms, owner, name)) of those due at some time.

use redb::{ReadableTable, WriteTransaction};

use super::{RedbStore, SCHEDULES, SCHEDULES_DUE, backend};
use crate::schedules::{Fired, Schedule, Schedules};
use crate::{StoreError, decode, encode};

/// The schedule of `owner` and `name`, read inside `tx`.
fn get(tx: &WriteTransaction, owner: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
    let table = tx.open_table(SCHEDULES).map_err(backend)?;
    let found = table.get((owner, name)).map_err(backend)?;
    found.map(|v| decode(name, v.value())).transpose()
}

/// Remove the schedule of `owner` and `name` and its index entry.
fn remove(tx: &WriteTransaction, owner: &str, name: &str) -> Result<bool, StoreError> {
    let Some(old) = get(tx, owner, name)? else {
        return Ok(false);
    };
    if let Some(due) = old.due_ms() {
        let mut index = tx.open_table(SCHEDULES_DUE).map_err(backend)?;
        index.remove((due, owner, name)).map_err(backend)?;
    }
    let mut table = tx.open_table(SCHEDULES).map_err(backend)?;
    table.remove((owner, name)).map_err(backend)?;
    Ok(true)
}

/// Put `schedule` in place of the one of its owner and name.
fn place(tx: &WriteTransaction, schedule: &Schedule) -> Result<(), StoreError> {
    let (owner, name) = (schedule.owner.as_str(), schedule.name.as_str());
    remove(tx, owner, name)?;
    if let Some(due) = schedule.due_ms() {
        let mut index = tx.open_table(SCHEDULES_DUE).map_err(backend)?;
        index.insert((due, owner, name), ()).map_err(backend)?;
    }
    let mut table = tx.open_table(SCHEDULES).map_err(backend)?;
    table
        .insert((owner, name), encode(schedule).as_slice())
        .map_err(backend)?;
    Ok(())
}

#[async_trait::async_trait]
impl Schedules for RedbStore {
    async fn schedule_put(&self, schedule: &Schedule) -> Result<(), StoreError> {
        let schedule = schedule.clone();
        self.write(move |tx| place(tx, &schedule)).await
    }

    async fn schedule_get(&self, owner: &str, name: &str) -> Result<Option<Schedule>, StoreError> {
        let (owner, name) = (owner.to_string(), name.to_string());
        self.read(move |tx| {
            let table = tx.open_table(SCHEDULES).map_err(backend)?;
            let found = table
                .get((owner.as_str(), name.as_str()))
                .map_err(backend)?;
            found.map(|v| decode(&name, v.value())).transpose()
        })
        .await
    }

    async fn schedule_list(&self, owner: &str) -> Result<Vec<Schedule>, StoreError> {
        let owner = owner.to_string();
        self.read(move |tx| {
            let table = tx.open_table(SCHEDULES).map_err(backend)?;
            let mut found = Vec::new();
            for item in table.range((owner.as_str(), "")..).map_err(backend)? {
                let (k, v) = item.map_err(backend)?;
                let (o, name) = k.value();
                if o != owner {
                    break;
                }
                found.push(decode(name, v.value())?);
            }
            Ok(found)
        })
        .await
    }

    async fn schedule_delete(&self, owner: &str, name: &str) -> Result<bool, StoreError> {
        let (owner, name) = (owner.to_string(), name.to_string());
        self.write(move |tx| remove(tx, &owner, &name)).await
    }

    async fn schedules_due(&self, now_ms: u64, limit: usize) -> Result<Vec<Schedule>, StoreError> {
        self.read(move |tx| {
            let index = tx.open_table(SCHEDULES_DUE).map_err(backend)?;
            let table = tx.open_table(SCHEDULES).map_err(backend)?;
            let mut found = Vec::new();
            let until = (now_ms.saturating_add(1), "", "");
            for item in index.range((0, "", "")..until).map_err(backend)? {
                let (k, _) = item.map_err(backend)?;
                let (_, owner, name) = k.value();
                if let Some(v) = table.get((owner, name)).map_err(backend)? {
                    found.push(decode(name, v.value())?);
                }
                if found.len() == limit {
                    break;
                }
            }
            Ok(found)
        })
        .await
    }

    async fn schedule_advance(
        &self,
        owner: &str,
        name: &str,
        from_ms: u64,
        to_ms: Option<u64>,
        last: Fired,
    ) -> Result<bool, StoreError> {
        let (owner, name) = (owner.to_string(), name.to_string());
        self.write(move |tx| {
            let Some(mut schedule) = get(tx, &owner, &name)? else {
                return Ok(false);
            };
            if schedule.due_ms() != Some(from_ms) {
                return Ok(false);
            }
            schedule.next_ms = to_ms;
            schedule.last = Some(last);
            place(tx, &schedule)?;
            Ok(true)
        })
        .await
    }
}
