//! sqlite backend (being written).
use crate::*;

pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(_url: &str) -> Result<Self> { Err(StoreError::Backend("not built yet".into())) }
    pub async fn migrate(&self) -> Result<()> { Ok(()) }
    pub async fn ping(&self) -> Result<()> { Ok(()) }
    pub async fn read(&self, _t: &str, _id: &str) -> Result<Option<Stored>> { Ok(None) }
    pub async fn vread(&self, _t: &str, _id: &str, _v: i64) -> Result<Option<Stored>> { Ok(None) }
    pub async fn write(&self, _w: Write) -> Result<Stored> { Err(StoreError::Closed) }
    pub async fn history(&self, _q: &HistoryQuery) -> Result<Vec<HistoryEntry>> { Ok(vec![]) }
    pub async fn find_by_tokens(&self, _t: &str, _c: &[TokenCriterion]) -> Result<Vec<String>> { Ok(vec![]) }
    pub async fn close(&self) {}
}
