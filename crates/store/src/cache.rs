//! An in-memory cache of current versions' stored bytes, for hot reads on SQLite.
//!
//! Why it is safe: every write goes through [`crate::Store`], which puts the version it
//! committed here (write-through) before answering. A read that misses fills the cache from
//! the database, but only if no write touched the same shard while it was reading (each
//! shard has an epoch that writes bump), and never over a newer version. So a slow reader
//! can never put back a version older than one already acknowledged.
//!
//! Why only SQLite: a SQLite file is served by one process, so this process sees every
//! write. PostgreSQL may be shared by several replicas, whose writes this one never sees.
//!
//! Memory is bounded: each shard holds at most its share of the byte budget and drops
//! entries when over it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::Stored;

const SHARDS: usize = 32;

pub struct ReadCache {
    shards: Vec<Mutex<Shard>>,
    shard_budget: usize,
}

#[derive(Default)]
struct Shard {
    epoch: u64,
    bytes: usize,
    entries: HashMap<String, Stored>,
}

/// A read's ticket: the shard and its epoch when the read began.
#[derive(Debug)]
pub struct Ticket {
    shard: usize,
    epoch: u64,
}

impl ReadCache {
    /// A cache holding at most about `budget_bytes` of bodies.
    pub fn new(budget_bytes: usize) -> Self {
        ReadCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            shard_budget: budget_bytes / SHARDS,
        }
    }

    fn key(resource_type: &str, id: &str) -> String {
        let mut k = String::with_capacity(resource_type.len() + id.len() + 1);
        k.push_str(resource_type);
        k.push('/');
        k.push_str(id);
        k
    }

    fn shard_of(key: &str) -> usize {
        // FNV-1a: cheap, and good enough to spread keys over a few shards.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in key.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
        }
        (h % SHARDS as u64) as usize
    }

    /// The cached current version, or a ticket to fill the cache with what the database
    /// says.
    pub fn get(&self, resource_type: &str, id: &str) -> Result<Stored, Ticket> {
        let key = Self::key(resource_type, id);
        let shard = Self::shard_of(&key);
        let s = self.shards[shard].lock().expect("cache lock");
        match s.entries.get(&key) {
            Some(hit) => Ok(hit.clone()),
            None => Err(Ticket {
                shard,
                epoch: s.epoch,
            }),
        }
    }

    /// Fills after a miss, unless a write touched the shard since the ticket was taken.
    pub fn fill(&self, ticket: Ticket, stored: &Stored) {
        let mut s = self.shards[ticket.shard].lock().expect("cache lock");
        if s.epoch == ticket.epoch {
            self.insert_newer(&mut s, stored);
        }
    }

    /// Records a committed version (called before the write is acknowledged).
    pub fn wrote(&self, stored: &Stored) {
        let key = Self::key(&stored.resource_type, &stored.id);
        let mut s = self.shards[Self::shard_of(&key)]
            .lock()
            .expect("cache lock");
        s.epoch += 1;
        self.insert_newer(&mut s, stored);
    }

    fn insert_newer(&self, s: &mut Shard, stored: &Stored) {
        let key = Self::key(&stored.resource_type, &stored.id);
        if let Some(old) = s.entries.get(&key) {
            if old.version_id >= stored.version_id {
                return;
            }
            s.bytes -= old.body.len();
        }
        let size = stored.body.len();
        if size > self.shard_budget {
            s.entries.remove(&key);
            return;
        }
        while s.bytes + size > self.shard_budget {
            let Some(victim) = s.entries.keys().next().cloned() else {
                break;
            };
            if let Some(v) = s.entries.remove(&victim) {
                s.bytes -= v.body.len();
            }
        }
        s.bytes += size;
        s.entries.insert(key, stored.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn v(id: &str, version: i64, body: &str) -> Stored {
        Stored {
            resource_type: "Patient".into(),
            id: id.into(),
            version_id: version,
            last_updated_us: version,
            deleted: false,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn a_slow_reader_cannot_put_back_an_old_version() {
        let c = ReadCache::new(1 << 20);
        let ticket = c.get("Patient", "a").unwrap_err();
        c.wrote(&v("a", 2, "new"));
        c.fill(ticket, &v("a", 1, "old")); // read from the database before the write
        assert_eq!(c.get("Patient", "a").unwrap().version_id, 2);
    }

    #[test]
    fn fills_on_miss_and_never_goes_backwards() {
        let c = ReadCache::new(1 << 20);
        let t = c.get("Patient", "a").unwrap_err();
        c.fill(t, &v("a", 3, "x"));
        assert_eq!(c.get("Patient", "a").unwrap().version_id, 3);
        c.wrote(&v("a", 2, "y"));
        assert_eq!(c.get("Patient", "a").unwrap().version_id, 3);
    }

    #[test]
    fn stays_within_budget() {
        let c = ReadCache::new(SHARDS * 100);
        for i in 0..1000 {
            c.wrote(&v(&i.to_string(), 1, &"b".repeat(30)));
        }
        for s in &c.shards {
            let s = s.lock().unwrap();
            assert!(s.bytes <= 100);
            assert_eq!(
                s.bytes,
                s.entries.values().map(|e| e.body.len()).sum::<usize>()
            );
        }
    }
}
