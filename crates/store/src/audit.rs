//! The audit log: every AuditEvent the server records, append-only and hash-chained, with
//! signed checkpoints of the chain head kept outside the database.
//!
//! # Records and the chain
//!
//! One row per AuditEvent in `audit_log` (migration 3 on each backend): `seq` (1, 2, 3…, no
//! gaps), `recorded_us`, `patient_id` (the child concerned, for the family's access log),
//! `sensitivity` (`normal` or `safeguarding`: the latter only the privacy officer sees) and
//! `event` (the AuditEvent JSON bytes, stored and served as given), plus `prev_hash` and
//! `hash`:
//!
//! ```text
//! hash(seq) = SHA-256( hash(seq - 1) || canonical(seq, record) )      hash(0) = 32 zero bytes
//! canonical = "passport-audit-v1" 0x00 || seq (i64 BE) || recorded_us (i64 BE)
//!             || patient_id (0x00 | 0x01 u32-BE-length bytes) || sensitivity (u32 BE length, bytes)
//!             || event (u64 BE length, bytes)
//! ```
//!
//! Every field is length-prefixed, so no two different records share canonical bytes. The
//! chain is computed by the one appender: on SQLite inside the writer thread (so the chain has
//! the writer's single order, and an audit record attached to a [`crate::Write`] is appended
//! in that write's savepoint); on PostgreSQL inside the appending transaction, after a
//! transaction-scoped advisory lock keyed by the schema, reading the head under the lock.
//!
//! # The outbox (PostgreSQL)
//!
//! On PostgreSQL a write does not take the chain lock: holding it until commit serialised
//! every write transaction behind the others' commits. Instead the records attached to a
//! [`crate::Write`] are inserted into `audit_outbox` (migration 13) in the write's own
//! transaction — stored if and only if the write is, exactly as before — and chained later
//! by the appender: [`crate::Store::append_audit`] first moves up to 5,000 outbox rows (in
//! `id` order) into the chain, then its own records, in one transaction under the lock;
//! [`crate::Store::drain_audit_outbox`] moves all of them. The server's audit task drains on
//! every flush tick (200 ms by default) and at close, [`crate::Store::list_audit`] drains
//! before listing (so the family's log shows a write as soon as it committed), and closing
//! the store drains last. So a write's record takes its **place** in the chain when it is
//! drained, not when the write committed (a record chained later may have an earlier
//! `recorded_us`, and outbox ids, taken at insert, need not follow commit order); its
//! `recorded` time is unchanged, and from the moment it is chained the chain proves it was
//! not changed, removed or reordered. Before that it is as protected as the write itself.
//! [`verify`], [`crate::Store::audit_head`] and [`crate::Store::audit_chain`] see the chain
//! only; checkpoints sign the chain head. SQLite has no outbox (its writer thread already
//! appends everything in one order): its migration 13 is a comment.
//!
//! # Checkpoints
//!
//! A chain alone cannot tell a changed record whose successors were all recomputed, or a cut
//! tail, from an honest log. So the server periodically (and at shutdown) signs the head —
//! `"passport-audit-checkpoint-v1" 0x00 || seq (i64 BE) || hash || time_us (i64 BE)` — with
//! its Ed25519 key and appends a [`Checkpoint`] line to a file outside the database.
//! [`verify`] walks the chain (seq continuity, prev links, every hash recomputed) and then
//! checks every checkpoint's signature and that the chain at its seq has its hash.
//!
//! # Crates
//!
//! * `sha2` (RustCrypto, 0.11): already in the build through `tokio-postgres` (SCRAM), so
//!   free.
//! * `ed25519-dalek` (3, without default features: no precomputed tables, no zeroize):
//!   the one new compiled dependency, with `curve25519-dalek` — a few seconds of build, pure
//!   Rust, no C toolchain (unlike `ring`), and it reuses the same `sha2`/`digest`. Ed25519
//!   rather than an HMAC so that whoever verifies needs only the public key (which every
//!   checkpoint line also carries), not a secret that could forge checkpoints.
//! * `getrandom` (0.4, already in the build through `uuid`) for the key's seed.
//!
//! The key file holds the 32-byte Ed25519 seed as hex (created with permissions 0600 on
//! first start). `passport audit verify --key-file` derives the public key from it; without
//! a key file the key named in the checkpoint lines is used (weaker: it proves only that
//! whoever wrote the file held that key).

use std::io::Write as _;
use std::path::Path;

use bytes::Bytes;
use ed25519_dalek::ed25519::signature::{Signer, Verifier};
use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::sql::{Arg, Dialect};
use crate::{Store, StoreError};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The hash before the first record.
pub const GENESIS: Hash = [0; 32];

/// Who may see a record in the family's access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Sensitivity {
    /// Shown to the family.
    #[default]
    Normal,
    /// An access for safeguarding: shown only to the privacy officer.
    Safeguarding,
}

impl Sensitivity {
    pub fn as_str(self) -> &'static str {
        match self {
            Sensitivity::Normal => "normal",
            Sensitivity::Safeguarding => "safeguarding",
        }
    }

    pub fn parse(s: &str) -> Option<Sensitivity> {
        match s {
            "normal" => Some(Sensitivity::Normal),
            "safeguarding" => Some(Sensitivity::Safeguarding),
            _ => None,
        }
    }
}

/// One AuditEvent to append. The store numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When the event happened (the AuditEvent's `recorded`), microseconds since the epoch.
    pub recorded_us: i64,
    /// The child concerned (a Patient id), if any.
    pub patient_id: Option<String>,
    pub sensitivity: Sensitivity,
    /// The AuditEvent JSON.
    pub event: Bytes,
}

/// One stored record with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    pub record: AuditRecord,
    pub prev_hash: Hash,
    pub hash: Hash,
}

/// The last record's seq and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub seq: i64,
    pub hash: Hash,
}

/// Which records to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Only records about this child.
    pub patient_id: Option<String>,
    /// `recorded_us >= since_us`.
    pub since_us: Option<i64>,
    /// `recorded_us < until_us`.
    pub until_us: Option<i64>,
    /// Keyset paging: only records with a seq below this one.
    pub before_seq: Option<i64>,
    /// Include safeguarding records: only for the privacy officer.
    pub include_safeguarding: bool,
    /// Page size.
    pub count: usize,
}

/// The bytes hashed for a record at `seq` (see the module documentation).
pub fn canonical(seq: i64, r: &AuditRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + r.event.len());
    out.extend_from_slice(b"passport-audit-v1\0");
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&r.recorded_us.to_be_bytes());
    match &r.patient_id {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            out.extend_from_slice(&(p.len() as u32).to_be_bytes());
            out.extend_from_slice(p.as_bytes());
        }
    }
    let s = r.sensitivity.as_str();
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(&(r.event.len() as u64).to_be_bytes());
    out.extend_from_slice(&r.event);
    out
}

/// `SHA-256(prev || canonical(seq, record))`.
pub fn chain_hash(prev: &Hash, seq: i64, r: &AuditRecord) -> Hash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical(seq, r));
    h.finalize().into()
}

/// Numbers and chains `records` after `head`.
pub(crate) fn link(head: Option<ChainHead>, records: &[AuditRecord]) -> Vec<AuditEntry> {
    let (mut seq, mut prev) = head.map_or((0, GENESIS), |h| (h.seq, h.hash));
    records
        .iter()
        .map(|r| {
            seq += 1;
            let hash = chain_hash(&prev, seq, r);
            let e = AuditEntry {
                seq,
                record: r.clone(),
                prev_hash: prev,
                hash,
            };
            prev = hash;
            e
        })
        .collect()
}

pub(crate) fn check_record(r: &AuditRecord) -> crate::Result<()> {
    if r.event.is_empty() {
        return Err(StoreError::Backend("an audit record needs an event".into()));
    }
    Ok(())
}

pub(crate) const COLUMNS: &str =
    "seq, recorded_us, patient_id, sensitivity, event, prev_hash, hash";

/// The listing query of `q`, newest first.
pub(crate) fn list_sql(dialect: Dialect, q: &AuditQuery) -> (String, Vec<Arg<'_>>) {
    let mut args: Vec<Arg<'_>> = Vec::new();
    let mut conds: Vec<String> = Vec::new();
    let mut push = |args: &mut Vec<Arg<'_>>, cond: &str| {
        let n = args.len();
        let p = match dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        };
        conds.push(cond.replace('#', &p));
    };
    if let Some(p) = &q.patient_id {
        args.push(Arg::Text(p));
        push(&mut args, "patient_id = #");
    }
    if let Some(s) = q.since_us {
        args.push(Arg::Int(s));
        push(&mut args, "recorded_us >= #");
    }
    if let Some(u) = q.until_us {
        args.push(Arg::Int(u));
        push(&mut args, "recorded_us < #");
    }
    if let Some(b) = q.before_seq {
        args.push(Arg::Int(b));
        push(&mut args, "seq < #");
    }
    if !q.include_safeguarding {
        conds.push("sensitivity = 'normal'".into());
    }
    let mut sql = format!("SELECT {COLUMNS} FROM audit_log");
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(&format!(
        " ORDER BY seq DESC LIMIT {}",
        q.count.clamp(1, 10_000)
    ));
    (sql, args)
}

/// An entry from its columns; a bad column is a backend error naming the seq.
pub(crate) fn entry(
    seq: i64,
    recorded_us: i64,
    patient_id: Option<String>,
    sensitivity: &str,
    event: Vec<u8>,
    prev_hash: &[u8],
    hash: &[u8],
) -> crate::Result<AuditEntry> {
    let bad = |what: &str| StoreError::Backend(format!("audit record seq {seq}: {what}"));
    Ok(AuditEntry {
        seq,
        record: AuditRecord {
            recorded_us,
            patient_id,
            sensitivity: Sensitivity::parse(sensitivity)
                .ok_or_else(|| bad("unknown sensitivity"))?,
            event: Bytes::from(event),
        },
        prev_hash: prev_hash
            .try_into()
            .map_err(|_| bad("prev_hash is not 32 bytes"))?,
        hash: hash.try_into().map_err(|_| bad("hash is not 32 bytes"))?,
    })
}

// ---------------------------------------------------------------------------------------
// Keys and checkpoints

/// The server's audit signing key.
pub struct AuditKey(SigningKey);

impl AuditKey {
    /// A new random key.
    pub fn generate() -> std::io::Result<AuditKey> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| std::io::Error::other(e.to_string()))?;
        Ok(AuditKey(SigningKey::from_bytes(&seed)))
    }

    /// A 256-bit key for another purpose, derived from this one (SHA-256 of `context` and
    /// the seed), so every process of one deployment derives the same key without another
    /// secret to manage.
    pub fn derive(&self, context: &[u8]) -> [u8; 32] {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(context);
        h.update(self.0.to_bytes());
        h.finalize().into()
    }

    /// Reads the key file (64 hex digits: the Ed25519 seed).
    pub fn load(path: &Path) -> std::io::Result<AuditKey> {
        let text = std::fs::read_to_string(path)?;
        let seed: [u8; 32] = unhex(text.trim())
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not an audit key (64 hex digits)", path.display()),
                )
            })?;
        Ok(AuditKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads the key file, or creates it (mode 0600, parent directories too) with a new key.
    /// Safe against a concurrent creator: the file is created exclusively.
    pub fn load_or_create(path: &Path) -> std::io::Result<AuditKey> {
        match AuditKey::load(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            other => return other,
        }
        if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let key = AuditKey::generate()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut f) => {
                writeln!(f, "{}", hex(&key.0.to_bytes()))?;
                f.sync_all()?;
                tracing::info!(path = %path.display(), "created the audit signing key");
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => AuditKey::load(path),
            Err(e) => Err(e),
        }
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// Signs the head as at `time_us`.
    pub fn checkpoint(&self, head: ChainHead, time_us: i64) -> Checkpoint {
        let signature = self.0.sign(&checkpoint_message(&head, time_us));
        Checkpoint {
            seq: head.seq,
            hash: head.hash,
            time_us,
            public_key: self.public().to_bytes(),
            signature: signature.to_bytes(),
        }
    }
}

fn checkpoint_message(head: &ChainHead, time_us: i64) -> Vec<u8> {
    let mut m = Vec::with_capacity(80);
    m.extend_from_slice(b"passport-audit-checkpoint-v1\0");
    m.extend_from_slice(&head.seq.to_be_bytes());
    m.extend_from_slice(&head.hash);
    m.extend_from_slice(&time_us.to_be_bytes());
    m
}

/// A signed statement that the chain had `hash` at `seq` at `time_us`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: i64,
    pub hash: Hash,
    pub time_us: i64,
    /// The signer's Ed25519 public key.
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl Checkpoint {
    /// One JSON line (without the newline).
    pub fn to_line(&self) -> String {
        format!(
            r#"{{"seq":{},"hash":"{}","time_us":{},"key":"{}","sig":"{}"}}"#,
            self.seq,
            hex(&self.hash),
            self.time_us,
            hex(&self.public_key),
            hex(&self.signature)
        )
    }

    pub fn parse_line(line: &str) -> Result<Checkpoint, String> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let int = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_i64())
                .ok_or_else(|| format!("no integer {k:?}"))
        };
        fn bytes<const N: usize>(v: &serde_json::Value, k: &str) -> Result<[u8; N], String> {
            v.get(k)
                .and_then(|x| x.as_str())
                .and_then(unhex)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("no {N}-byte hex {k:?}"))
        }
        Ok(Checkpoint {
            seq: int("seq")?,
            hash: bytes(&v, "hash")?,
            time_us: int("time_us")?,
            public_key: bytes(&v, "key")?,
            signature: bytes(&v, "sig")?,
        })
    }

    /// Is the signature valid for `key`?
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let head = ChainHead {
            seq: self.seq,
            hash: self.hash,
        };
        key.verify(
            &checkpoint_message(&head, self.time_us),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}

/// Appends one checkpoint line to `path` (created if missing) and fsyncs it.
pub fn append_checkpoint(path: &Path, c: &Checkpoint) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{}\n", c.to_line()).as_bytes())?;
    f.sync_data()
}

/// Every checkpoint in the file, in file order (a missing file has none).
pub fn read_checkpoints(path: &Path) -> Result<Vec<Checkpoint>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            Checkpoint::parse_line(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Signs the store's current head and appends it to `path`. `None` when the log is empty.
pub async fn checkpoint(
    store: &Store,
    key: &AuditKey,
    path: &Path,
    time_us: i64,
) -> Result<Option<Checkpoint>, String> {
    let Some(head) = store.audit_head().await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let c = key.checkpoint(head, time_us);
    let p = path.to_owned();
    let line = c.clone();
    tokio::task::spawn_blocking(move || append_checkpoint(&p, &line))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Some(c))
}

// ---------------------------------------------------------------------------------------
// Verification

/// An intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Records walked.
    pub records: i64,
    pub head: Option<ChainHead>,
    /// Checkpoints whose signature and hash matched.
    pub checkpoints: usize,
    /// The highest seq covered by a checkpoint.
    pub checkpointed_seq: Option<i64>,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log NOT intact: first bad seq {seq}: {reason}")]
pub struct Tampered {
    /// The first seq that is not as recorded (for a recomputed chain: the first seq after
    /// the last checkpoint that still matches — the change is at or after it).
    pub seq: i64,
    pub reason: String,
}

/// Records read per query while walking the chain.
const PAGE: usize = 1000;

/// Walks the whole chain and checks it against `checkpoints` (see the module docs). With
/// `key`, every checkpoint must be signed by it; without, by the key each names (and all
/// the same key). `Err(Ok(_))` is a tampered log; `Err(Err(_))` an error reading it.
pub async fn verify(
    store: &Store,
    checkpoints: &[Checkpoint],
    key: Option<&VerifyingKey>,
) -> Result<Verified, Result<Tampered, StoreError>> {
    let tampered = |seq: i64, reason: String| Err(Ok(Tampered { seq, reason }));
    // Signatures first: a forged checkpoint proves nothing.
    let expected_key = key
        .map(|k| k.to_bytes())
        .or(checkpoints.first().map(|c| c.public_key));
    for c in checkpoints {
        let ok = Some(c.public_key) == expected_key
            && VerifyingKey::from_bytes(&c.public_key).is_ok_and(|k| c.verify(&k));
        if !ok {
            return tampered(
                c.seq,
                format!(
                    "the checkpoint for seq {} (time_us {}) has no valid signature by the audit key",
                    c.seq, c.time_us
                ),
            );
        }
    }
    let mut wanted: std::collections::BTreeMap<i64, Option<Hash>> =
        checkpoints.iter().map(|c| (c.seq, None)).collect();

    let mut expected_seq = 1;
    let mut prev = GENESIS;
    loop {
        let page = store
            .audit_chain(expected_seq - 1, PAGE)
            .await
            .map_err(Err)?;
        let done = page.len() < PAGE;
        for e in page {
            if e.seq != expected_seq {
                return tampered(
                    expected_seq,
                    format!(
                        "record(s) missing: seq {expected_seq}..={} not in the log",
                        e.seq - 1
                    ),
                );
            }
            if e.prev_hash != prev {
                return tampered(
                    e.seq,
                    "prev_hash does not match the previous record's hash (removed or reordered records)".into(),
                );
            }
            if chain_hash(&prev, e.seq, &e.record) != e.hash {
                return tampered(
                    e.seq,
                    "the record's content does not match its hash (record changed)".into(),
                );
            }
            if let Some(slot) = wanted.get_mut(&e.seq) {
                *slot = Some(e.hash);
            }
            prev = e.hash;
            expected_seq += 1;
        }
        if done {
            break;
        }
    }
    let last = expected_seq - 1;
    // Checkpoints in seq order: the first that fails names the range the change is in.
    let mut sorted: Vec<&Checkpoint> = checkpoints.iter().collect();
    sorted.sort_by_key(|c| c.seq);
    let mut good_seq = 0;
    for c in &sorted {
        if c.seq > last {
            return tampered(
                last + 1,
                format!(
                    "the log ends at seq {last} but a signed checkpoint (time_us {}) covers seq {} (records removed from the end)",
                    c.time_us, c.seq
                ),
            );
        }
        if wanted.get(&c.seq).copied().flatten() != Some(c.hash) {
            return tampered(
                good_seq + 1,
                format!(
                    "the chain at seq {} does not match its signed checkpoint (time_us {}): records were changed and the chain recomputed, somewhere in seq {}..={}",
                    c.seq,
                    c.time_us,
                    good_seq + 1,
                    c.seq
                ),
            );
        }
        good_seq = c.seq;
    }
    Ok(Verified {
        records: last,
        head: (last > 0).then_some(ChainHead {
            seq: last,
            hash: prev,
        }),
        checkpoints: checkpoints.len(),
        checkpointed_seq: sorted.last().map(|c| c.seq),
    })
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// Bytes from hex (either case); `None` if not hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|pair| {
            let d = |c: u8| (c as char).to_digit(16);
            Some((d(pair[0])? * 16 + d(pair[1])?) as u8)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: &str) -> AuditRecord {
        AuditRecord {
            recorded_us: 7,
            patient_id: Some("p".into()),
            sensitivity: Sensitivity::Normal,
            event: Bytes::from(event.to_owned()),
        }
    }

    #[test]
    fn canonical_is_unambiguous() {
        let a = AuditRecord {
            patient_id: Some("ab".into()),
            ..rec("c")
        };
        let b = AuditRecord {
            patient_id: Some("a".into()),
            ..rec("bc")
        };
        assert_ne!(canonical(1, &a), canonical(1, &b));
        assert_ne!(canonical(1, &a), canonical(2, &a));
        let none = AuditRecord {
            patient_id: None,
            ..rec("c")
        };
        assert_ne!(canonical(1, &a), canonical(1, &none));
    }

    #[test]
    fn link_chains() {
        let es = link(None, &[rec("a"), rec("b")]);
        assert_eq!(es[0].seq, 1);
        assert_eq!(es[0].prev_hash, GENESIS);
        assert_eq!(es[1].prev_hash, es[0].hash);
        let more = link(
            Some(ChainHead {
                seq: 2,
                hash: es[1].hash,
            }),
            &[rec("c")],
        );
        assert_eq!(more[0].seq, 3);
        assert_eq!(more[0].hash, chain_hash(&es[1].hash, 3, &rec("c")));
    }

    #[test]
    fn checkpoints_sign_and_parse() {
        let key = AuditKey::generate().unwrap();
        let c = key.checkpoint(
            ChainHead {
                seq: 5,
                hash: [9; 32],
            },
            123,
        );
        let back = Checkpoint::parse_line(&c.to_line()).unwrap();
        assert_eq!(back, c);
        assert!(back.verify(&key.public()));
        let forged = Checkpoint { seq: 6, ..back };
        assert!(!forged.verify(&key.public()));
        let other = AuditKey::generate().unwrap();
        assert!(!c.verify(&other.public()));
    }

    #[test]
    fn hex_round_trip() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fFF"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
