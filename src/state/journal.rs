//! The journal file: every change this process applies, appended as a [`record`], written
//! and `fdatasync`ed once per loop turn for all of that turn's changes (group commit, as
//! Redis's `appendfsync always`), before any response of the turn goes out.
//!
//! On start the state is the snapshot (`FILE.snapshot`, if any) or the data file, with the
//! journal's records replayed on top. A torn tail (a crash mid-write) is cut off; damage
//! with valid records after it refuses to start, as does a record that does not fit the
//! state (a journal written for another data set).
//!
//! Compaction: once the journal passes a size, the whole state goes to
//! `FILE.snapshot.tmp`, is synced, renamed over `FILE.snapshot`, the directory is synced,
//! and the journal starts empty. Records carry a sequence number and the snapshot the last
//! one it holds, so a crash between any two steps replays to the same state.
//!
//! A failed write (a full disk, EIO, the file removed) is never acknowledged: the caller
//! takes the turn's changes back and answers 503. The next turn starts over with a fresh
//! snapshot and journal, so the service recovers as soon as writes succeed again.
//!
//! [`record`]: crate::state::record

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::state::Catalog;
use crate::state::record::{self, Change, Record, Tail};

/// Journal size past which it is compacted into a snapshot.
pub const DEFAULT_COMPACT_BYTES: u64 = 64 * 1024 * 1024;

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    /// The file's device and inode, to notice it being removed or replaced under us.
    identity: (u64, u64),
    /// Bytes of the file known to be on disk. Anything past it is left from a failed write.
    durable_len: u64,
    /// The sequence number of the last durable record.
    seq: u64,
    /// Records of this turn, not written yet, and how many.
    batch: Vec<u8>,
    batched: u64,
    /// A write failed, or a start-over did not finish: start over (snapshot and a fresh
    /// journal) before the next write.
    broken: bool,
    compact_bytes: u64,
    /// Compact once the journal reaches this size (pushed further after a failure, so
    /// that a failing disk is not asked for a whole snapshot every turn).
    compact_at: u64,
    /// Which data the state was started from (a checksum), kept in every snapshot.
    data_id: u32,
    /// Writes and fsyncs that succeeded, and the records they carried.
    pub stats: Stats,
}

/// What the journal has done since the process started.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub commits: u64,
    pub records: u64,
    pub compactions: u64,
}

/// What opening a journal found, for the log.
#[derive(Debug, Default)]
pub struct Opened {
    /// Records replayed on top of the snapshot or the data.
    pub replayed: usize,
    /// Bytes of a torn tail cut off.
    pub dropped: usize,
    /// A snapshot was read.
    pub from_snapshot: bool,
}

impl Journal {
    /// Opens (or creates) the journal at `path`. `base` is the state to start from when
    /// there is no snapshot (the data file, or the built-in fixtures); the state it
    /// replays to is returned with the journal. The error says which file is wrong and why.
    /// `data_id` identifies the data `base` came from: a snapshot made from other data
    /// refuses to start, as a journal whose records do not fit does.
    pub fn open(
        path: &Path,
        base: Catalog,
        data_id: u32,
        compact_bytes: u64,
    ) -> Result<(Journal, Catalog, Opened), String> {
        let name = path.display();
        let mut opened = Opened::default();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("cannot open journal {name}: {e}"))?;
        lock(&file, path)?;
        let snapshot = snapshot_path(path);
        let (mut catalog, snap_seq) = match std::fs::read_to_string(&snapshot) {
            Ok(text) => {
                opened.from_snapshot = true;
                let (catalog, seq, made_from) = Catalog::from_snapshot(&text)
                    .map_err(|e| format!("snapshot {}: {e}", snapshot.display()))?;
                if made_from != Some(data_id) {
                    return Err(format!(
                        "snapshot {} was made from other data than this start's; start with \
                         the data it was made from, or move {name} and the snapshot aside",
                        snapshot.display()
                    ));
                }
                (catalog, seq)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (base, 0),
            Err(e) => return Err(format!("cannot read snapshot {}: {e}", snapshot.display())),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read journal {name}: {e}"))?;
        let scan = record::scan(&bytes);
        let mut seq = snap_seq;
        for (rec, &offset) in scan.records.iter().zip(&scan.offsets) {
            if rec.seq > seq {
                if rec.seq != seq + 1 {
                    return Err(format!(
                        "journal {name}: record {} at offset {offset} follows record {seq}; records are missing",
                        rec.seq
                    ));
                }
                replay(&mut catalog, &rec.change).map_err(|e| {
                    format!("journal {name}: record {} at offset {offset} {e}", rec.seq)
                })?;
                seq = rec.seq;
                opened.replayed += 1;
            }
        }
        let durable_len = match scan.tail {
            Tail::Clean => bytes.len(),
            Tail::Torn { offset, dropped } => {
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_data())
                    .map_err(|e| format!("cannot cut the torn tail of journal {name}: {e}"))?;
                opened.dropped = dropped;
                offset
            }
            Tail::Corrupt { offset } => {
                return Err(format!(
                    "journal {name} is damaged at offset {offset}, and valid records follow; \
                     refusing to start rather than drop acknowledged changes \
                     (move the file aside to start from the snapshot or the data)"
                ));
            }
        };
        // The file's name must be durable too, not only its contents.
        sync_dir(path).map_err(|e| format!("cannot sync the folder of {name}: {e}"))?;
        let identity = identity(&file).map_err(|e| format!("journal {name}: {e}"))?;
        let journal = Journal {
            path: path.to_path_buf(),
            file,
            identity,
            durable_len: durable_len as u64,
            seq,
            batch: Vec::new(),
            batched: 0,
            broken: false,
            compact_bytes,
            compact_at: compact_bytes,
            data_id,
            stats: Stats::default(),
        };
        Ok((journal, catalog, opened))
    }

    /// Adds a change to this turn's batch.
    pub fn record(&mut self, change: Change) {
        self.batched += 1;
        let record = Record {
            seq: self.seq + self.batched,
            change,
        };
        record::encode(&record, &mut self.batch);
    }

    /// Gets the journal ready for this turn's changes. After a failed write it starts over
    /// from `state` (the durable state: the failed turn's changes were taken back) with a
    /// snapshot and an empty journal. `Err` while that cannot be done: the turn's changes
    /// must be refused.
    pub fn ready(&mut self, state: &Catalog) -> Result<(), String> {
        if self.broken {
            self.start_over(state)
                .map_err(|e| format!("journal {} cannot be written: {e}", self.path.display()))?;
        }
        Ok(())
    }

    /// Makes this turn's batch durable: one write and one `fdatasync`. On `Err` nothing of
    /// the batch is durable (the file is cut back), and the caller must take the batch's
    /// changes back; the next turn starts over (see [`Journal::ready`]).
    pub fn commit(&mut self) -> Result<(), String> {
        if self.batched == 0 {
            return Ok(());
        }
        let result = self.write_batch();
        self.batch.clear();
        let records = std::mem::take(&mut self.batched);
        match result {
            Ok(()) => {
                self.seq += records;
                self.stats.commits += 1;
                self.stats.records += records;
                Ok(())
            }
            Err(e) => {
                self.broken = true;
                // A partial write must not stay behind to be replayed after a restart.
                match self
                    .file
                    .set_len(self.durable_len)
                    .and_then(|()| self.file.sync_data())
                {
                    Ok(()) => Err(e),
                    Err(cut) => Err(format!(
                        "{e}; the file could not be cut back ({cut}): after a crash before it \
                         is written again, changes refused now could come back"
                    )),
                }
            }
        }
    }

    /// True while the open file is the one at the journal's path.
    fn still_at_path(&self) -> bool {
        std::fs::metadata(&self.path)
            .map(|m| (m.dev(), m.ino()))
            .ok()
            == Some(self.identity)
    }

    fn write_batch(&mut self) -> Result<(), String> {
        let name = self.path.display();
        if !self.still_at_path() {
            // Writes to a file no longer at its path would be lost at the next start.
            return Err(format!("journal {name} was removed or replaced"));
        }
        self.file
            .write_all_at(&self.batch, self.durable_len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| format!("cannot write journal {name}: {e}"))?;
        self.durable_len += self.batch.len() as u64;
        Ok(())
    }

    /// Compacts the journal into a snapshot of `state` once it has passed its size.
    /// A failure is returned for the log; the journal goes on as it was.
    pub fn compact_if_due(&mut self, state: &Catalog) -> Result<bool, String> {
        if self.broken || self.durable_len < self.compact_at {
            return Ok(false);
        }
        match self.start_over(state) {
            Ok(()) => {
                self.compact_at = self.compact_bytes;
                Ok(true)
            }
            Err(e) => {
                // Not again before the journal has grown by an eighth more.
                self.compact_at = self.durable_len + (self.compact_bytes / 8).max(64 * 1024);
                Err(e)
            }
        }
    }

    /// Writes `state` (which holds every durable record) as the snapshot, then starts an
    /// empty journal, each step durable before the next. Until the empty journal is
    /// durable the journal is `broken`: nothing is written to it, and the next turn starts
    /// over again.
    fn start_over(&mut self, state: &Catalog) -> Result<(), String> {
        write_snapshot(&self.path, state, self.seq, self.data_id)?;
        // From here a crash replays the snapshot and skips the records it holds.
        self.broken = true;
        if self.still_at_path() {
            // Emptied in place: the lock stays with it.
            self.file
                .set_len(0)
                .map_err(|e| format!("cannot empty the journal: {e}"))?;
        } else {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.path)
                .map_err(|e| format!("cannot start a new journal: {e}"))?;
            lock(&file, &self.path)?;
            self.identity = identity(&file)?;
            self.file = file;
        }
        self.durable_len = 0;
        self.file
            .sync_data()
            .and_then(|()| sync_dir(&self.path))
            .map_err(|e| format!("cannot sync the new journal: {e}"))?;
        self.broken = false;
        self.stats.compactions += 1;
        Ok(())
    }
}

/// Writes `state` to `FILE.snapshot.tmp`, syncs it, renames it over `FILE.snapshot` and
/// syncs the folder. A crash at any step leaves the old snapshot or the new one, whole.
pub fn write_snapshot(
    journal: &Path,
    state: &Catalog,
    seq: u64,
    data_id: u32,
) -> Result<(), String> {
    let snapshot = snapshot_path(journal);
    let tmp = with_suffix(&snapshot, ".tmp");
    let written = std::fs::write(&tmp, state.snapshot(seq, data_id))
        .and_then(|()| File::open(&tmp)?.sync_all())
        .and_then(|()| std::fs::rename(&tmp, &snapshot))
        .and_then(|()| sync_dir(&snapshot));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write snapshot {}: {e}", snapshot.display())
    })
}

/// Applies a journal record to the state it is replayed onto, checking that it fits.
fn replay(catalog: &mut Catalog, change: &Change) -> Result<(), String> {
    match change {
        Change::Order { id, amount, total } => {
            let (_, now) = catalog
                .add_amount(id, *amount)
                .map_err(|e| format!("does not fit the data: {e}"))?;
            if now != *total {
                return Err(format!(
                    "does not fit the data: {id} came to {now}, the journal says {total}"
                ));
            }
        }
        Change::Product {
            category,
            id,
            name,
            rrp,
            info,
        } => {
            let cat = catalog
                .category(category)
                .ok_or_else(|| format!("names category {category}, which the data lacks"))?;
            let product = crate::state::NewProduct {
                name: name.clone(),
                rrp: rrp.clone(),
                info: info.clone(),
            };
            let added = catalog
                .add_product(cat, product)
                .map_err(|e| format!("does not fit the data: {e}"))?;
            if added.id != *id {
                return Err(format!(
                    "does not fit the data: the new product became {}, the journal says {id}",
                    added.id
                ));
            }
        }
    }
    Ok(())
}

/// `FILE.snapshot` beside the journal `FILE`.
pub fn snapshot_path(journal: &Path) -> PathBuf {
    with_suffix(journal, ".snapshot")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Takes the journal for this process alone: two processes appending to one file would
/// overwrite each other's records.
fn lock(file: &File, path: &Path) -> Result<(), String> {
    use rustix::fs::{FlockOperation, flock};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(|e| {
        format!(
            "journal {} is in use by another process ({e})",
            path.display()
        )
    })
}

fn identity(file: &File) -> Result<(u64, u64), String> {
    let meta = file.metadata().map_err(|e| e.to_string())?;
    Ok((meta.dev(), meta.ino()))
}

/// Makes a file's creation, rename or truncation in `path`'s folder durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{Level, Log};
    use crate::state::{Backend, Memory, NewProduct, Op, Refusal, Ticket};

    /// The id of the built-in data, and of some other.
    const DEFAULT_ID: u32 = 1;
    const OTHER_ID: u32 = 2;

    /// A fresh folder for one test, and the journal path in it.
    fn journal_path(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mock-srv-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("orders.journal")
    }

    /// Opens the journal again, as a restart does, and says what it found.
    fn reopen(path: &Path) -> (Memory, Opened) {
        Memory::with_journal(
            path,
            Catalog::with_defaults(),
            DEFAULT_ID,
            DEFAULT_COMPACT_BYTES,
        )
        .unwrap()
    }

    fn open(path: &Path) -> Memory {
        reopen(path).0
    }

    /// Submits the ops as one turn and returns their results.
    fn turn(m: &mut Memory, ops: Vec<Op>) -> Vec<Result<crate::state::Applied, Refusal>> {
        for (key, op) in ops.into_iter().enumerate() {
            m.submit(Some(Ticket { key, conn_id: 1 }), op);
        }
        m.before_sleep(&mut Log::new(Level::Off));
        let (mut done, mut updates) = (Vec::new(), Vec::new());
        m.drain(&mut done, &mut updates);
        done.into_iter().map(|(_, r)| r).collect()
    }

    fn order(id: &str, amount: i64) -> Op {
        Op::AddAmount {
            id: id.into(),
            amount,
        }
    }

    fn fan() -> Op {
        Op::AddProduct {
            category: 0,
            product: NewProduct {
                name: "Fan".into(),
                rrp: "12.50".into(),
                info: "Cool.".into(),
            },
        }
    }

    fn totals(m: &Memory) -> Vec<(String, u64)> {
        let c = m.catalog();
        (0..c.category_names().count())
            .flat_map(|cat| c.products(cat).iter().map(|p| (p.id.clone(), p.total)))
            .collect()
    }

    #[test]
    fn changes_survive_a_restart_and_refusals_are_not_kept() {
        let path = journal_path("restart");
        let mut m = open(&path);
        let results = turn(
            &mut m,
            vec![order("A1", 10), fan(), order("A3", 4), order("B1", -500)],
        );
        assert!(results[..3].iter().all(Result::is_ok), "{results:?}");
        assert!(matches!(results[3], Err(Refusal::OutOfRange { .. })));
        turn(&mut m, vec![order("A1", 1)]);
        let before = totals(&m);
        drop(m);
        let (m, opened) = reopen(&path);
        assert_eq!(opened.replayed, 4);
        assert_eq!(totals(&m), before);
        assert_eq!(m.catalog().products(0)[2].name, "Fan");
        assert!(before.contains(&("A1".into(), 14)) && before.contains(&("B1".into(), 101)));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_counted() {
        let path = journal_path("torn");
        let mut m = open(&path);
        turn(&mut m, vec![order("A1", 10), order("A2", 1)]);
        drop(m);
        let good = std::fs::metadata(&path).unwrap().len();
        // Half of a third record: a write the crash cut short.
        let mut third = Vec::new();
        record::encode(
            &Record {
                seq: 3,
                change: Change::Order {
                    id: "A1".into(),
                    amount: 1,
                    total: 14,
                },
            },
            &mut third,
        );
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&third[..third.len() / 2]);
        std::fs::write(&path, &bytes).unwrap();
        let (m, opened) = reopen(&path);
        assert_eq!((opened.replayed, opened.dropped), (2, third.len() / 2));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good, "cut off");
        assert_eq!(m.catalog().total("A1"), Some(13));
    }

    #[test]
    fn damage_in_the_middle_refuses_to_start_and_names_the_offset() {
        let path = journal_path("corrupt");
        let mut m = open(&path);
        turn(&mut m, vec![order("A1", 10)]);
        let first = std::fs::metadata(&path).unwrap().len() as usize;
        turn(&mut m, vec![order("A1", 1)]);
        turn(&mut m, vec![order("A1", 1)]);
        drop(m);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[first + 12] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = Memory::with_journal(
            &path,
            Catalog::with_defaults(),
            DEFAULT_ID,
            DEFAULT_COMPACT_BYTES,
        )
        .unwrap_err();
        assert!(err.contains(&format!("offset {first}")), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        // Nothing was cut: the file is as it was, for someone to look at.
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn a_journal_written_for_other_data_refuses_to_start() {
        let path = journal_path("other-data");
        let mut m = open(&path);
        turn(&mut m, vec![order("A2", 1)]);
        drop(m);
        let other = r#"{"categories":[{"name":"electronics","prefix":"A","products":[
            {"id":"A1","name":"a","rrp":"1","info":"i"}]}]}"#;
        let err =
            Memory::with_journal(&path, Catalog::from_json(other).unwrap(), OTHER_ID, 1 << 20)
                .unwrap_err();
        assert!(
            err.contains("does not fit the data") && err.contains("A2"),
            "{err}"
        );
        // Same products, other totals: the totals the journal recorded do not come out.
        let other = DEFAULT_DATA_WITH_A2_AT_8;
        let err =
            Memory::with_journal(&path, Catalog::from_json(other).unwrap(), OTHER_ID, 1 << 20)
                .unwrap_err();
        assert!(err.contains("came to 9, the journal says 8"), "{err}");
    }

    const DEFAULT_DATA_WITH_A2_AT_8: &str = r#"{"categories":[
        {"name":"electronics","prefix":"A","products":[
            {"id":"A1","name":"a","rrp":"1","info":"i","total":3},
            {"id":"A2","name":"b","rrp":"1","info":"i","total":8}]},
        {"name":"confectionery","prefix":"B","products":[
            {"id":"B1","name":"c","rrp":"1","info":"i","total":101}]}]}"#;

    /// Compaction's steps, each durable, stopped after each in turn as a crash would stop
    /// them: every stop replays to the same state.
    #[test]
    fn compaction_stopped_after_any_step_replays_to_the_same_state() {
        for stop_after in 0..4 {
            let path = journal_path(&format!("compact-{stop_after}"));
            let mut m = open(&path);
            turn(&mut m, vec![order("A1", 10), fan()]);
            turn(&mut m, vec![order("A3", 2)]);
            let expected = totals(&m);
            drop(m);
            let (journal, catalog, _) = Journal::open(
                &path,
                Catalog::with_defaults(),
                DEFAULT_ID,
                DEFAULT_COMPACT_BYTES,
            )
            .unwrap();
            let seq = journal.seq;
            // The process that compacts, stopped: its lock goes with it.
            drop(journal);
            let snapshot = snapshot_path(&path);
            let tmp = with_suffix(&snapshot, ".tmp");
            // 1: the snapshot written to the temporary file.
            std::fs::write(&tmp, catalog.snapshot(seq, DEFAULT_ID)).unwrap();
            if stop_after >= 1 {
                // 2: renamed over the snapshot.
                std::fs::rename(&tmp, &snapshot).unwrap();
            }
            if stop_after >= 2 {
                // 3: the journal emptied.
                std::fs::File::create(&path).unwrap();
            }
            if stop_after >= 3 {
                // 4: more changes after the compaction.
                let mut m = open(&path);
                turn(&mut m, vec![order("A1", 1)]);
            }
            let m = open(&path);
            let mut want = expected.clone();
            if stop_after >= 3 {
                want[0].1 += 1;
            }
            assert_eq!(totals(&m), want, "stopped after step {stop_after}");
            assert_eq!(m.catalog().products(0)[2].name, "Fan");
        }
    }

    #[test]
    fn compaction_past_the_size_keeps_the_state_and_empties_the_journal() {
        let path = journal_path("compact-size");
        let (mut m, _) =
            Memory::with_journal(&path, Catalog::with_defaults(), DEFAULT_ID, 200).unwrap();
        for _ in 0..20 {
            turn(&mut m, vec![order("A1", 1), order("B1", 2)]);
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 200);
        assert!(snapshot_path(&path).exists());
        let expected = totals(&m);
        drop(m);
        assert_eq!(totals(&open(&path)), expected);
        assert!(expected.contains(&("A1".into(), 23)) && expected.contains(&("B1".into(), 141)));
    }

    #[test]
    fn a_failed_write_is_taken_back_and_the_journal_starts_over() {
        let path = journal_path("removed");
        let mut m = open(&path);
        turn(&mut m, vec![order("A1", 10)]);
        // The file is removed under the running server: a write would be lost.
        std::fs::remove_file(&path).unwrap();
        let results = turn(&mut m, vec![order("A1", 5), fan(), order("Z9", 1)]);
        assert!(
            results
                .iter()
                .all(|r| matches!(r, Err(Refusal::Unavailable(_)))),
            "{results:?}"
        );
        assert_eq!(m.catalog().total("A1"), Some(13), "taken back");
        assert_eq!(m.catalog().products(0).len(), 2, "taken back");
        // The next turn starts over with a snapshot and a fresh journal.
        let results = turn(&mut m, vec![order("A1", 1)]);
        assert!(results[0].is_ok(), "{results:?}");
        drop(m);
        let m = open(&path);
        assert_eq!(m.catalog().total("A1"), Some(14));
    }

    #[test]
    fn a_journal_in_use_by_another_process_refuses_to_open() {
        let path = journal_path("locked");
        let running = open(&path);
        let err =
            Memory::with_journal(&path, Catalog::with_defaults(), DEFAULT_ID, 1 << 20).unwrap_err();
        assert!(err.contains("in use by another process"), "{err}");
        drop(running);
        open(&path);
    }

    #[test]
    fn a_snapshot_made_from_other_data_refuses_to_start() {
        let path = journal_path("snapshot-other-data");
        let (mut m, _) =
            Memory::with_journal(&path, Catalog::with_defaults(), DEFAULT_ID, 100).unwrap();
        for _ in 0..5 {
            turn(&mut m, vec![order("A1", 1)]);
        }
        drop(m);
        assert!(snapshot_path(&path).exists(), "compacted");
        let err = Memory::with_journal(&path, Catalog::with_defaults(), OTHER_ID, 100).unwrap_err();
        assert!(err.contains("made from other data"), "{err}");
        let (m, _) =
            Memory::with_journal(&path, Catalog::with_defaults(), DEFAULT_ID, 100).unwrap();
        assert_eq!(m.catalog().total("A1"), Some(8));
    }
}
