//! The journal's records on bytes: encoding, and the scan that reads a journal back and
//! tells a torn tail (a crash mid-write) from damage in the middle. Pure: no files.
//!
//! A record is `len: u32 | crc: u32 | body`, little-endian, where `crc` is the CRC-32 of
//! `body` and `body` is `seq: u64 | tag: u8 | fields`. Strings are `u16` length + UTF-8.
//!
//! | tag | change | fields |
//! |---|---|---|
//! | 1 | an order | product id, amount (`i64`), the new total (`u64`) |
//! | 2 | a new product | category name, id, name, rrp, info |

/// Bytes before a record's body.
const HEADER_BYTES: usize = 8;
/// The smallest body: a sequence number and a tag. A run of zeros (a file extended but not
/// written before a crash) is therefore never read as records.
const MIN_BODY_BYTES: usize = 9;
/// The largest body a record may have (a product's fields are a few KiB at most).
const MAX_BODY_BYTES: usize = 64 * 1024;

const TAG_ORDER: u8 = 1;
const TAG_PRODUCT: u8 = 2;

/// A change as the journal keeps it: enough to apply it again, and to check that the
/// state it is applied to is the one it was made on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Order {
        id: String,
        amount: i64,
        total: u64,
    },
    Product {
        category: String,
        id: String,
        name: String,
        rrp: String,
        info: String,
    },
}

/// One record: the change and its place in the sequence of all changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub change: Change,
}

/// How a journal's bytes end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Every byte belongs to a valid record.
    Clean,
    /// The last bytes are not a whole valid record and nothing valid follows: a write cut
    /// short by a crash. They can be dropped.
    Torn { offset: usize, dropped: usize },
    /// A damaged record at `offset` with valid records after it: not a crash's doing, and
    /// dropping it would drop acknowledged changes.
    Corrupt { offset: usize },
}

/// What [`scan`] found.
#[derive(Debug)]
pub struct Scan {
    pub records: Vec<Record>,
    /// Where each record starts.
    pub offsets: Vec<usize>,
    pub tail: Tail,
}

/// Appends `record` to `out`.
pub fn encode(record: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_BYTES]);
    out.extend_from_slice(&record.seq.to_le_bytes());
    match &record.change {
        Change::Order { id, amount, total } => {
            out.push(TAG_ORDER);
            put_str(out, id);
            out.extend_from_slice(&amount.to_le_bytes());
            out.extend_from_slice(&total.to_le_bytes());
        }
        Change::Product {
            category,
            id,
            name,
            rrp,
            info,
        } => {
            out.push(TAG_PRODUCT);
            for s in [category, id, name, rrp, info] {
                put_str(out, s);
            }
        }
    }
    let body = &out[start + HEADER_BYTES..];
    let len = body.len() as u32;
    let crc = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Reads every valid record from the start of `bytes`, and says how the bytes end.
pub fn scan(bytes: &[u8]) -> Scan {
    let (mut records, mut offsets) = (Vec::new(), Vec::new());
    let mut pos = 0;
    while pos < bytes.len() {
        let last = records.last().map_or(0, |r: &Record| r.seq);
        match decode_at(bytes, pos, last) {
            Some((record, len)) => {
                records.push(record);
                offsets.push(pos);
                pos += len;
            }
            None => {
                // A crash leaves the end of one write unfinished; anything valid after the
                // damage means the damage is something else.
                let valid_later =
                    (pos + 1..bytes.len()).any(|at| decode_at(bytes, at, last).is_some());
                let tail = match valid_later {
                    true => Tail::Corrupt { offset: pos },
                    false => Tail::Torn {
                        offset: pos,
                        dropped: bytes.len() - pos,
                    },
                };
                return Scan {
                    records,
                    offsets,
                    tail,
                };
            }
        }
    }
    Scan {
        records,
        offsets,
        tail: Tail::Clean,
    }
}

/// The record at `pos` and its length, if a whole valid one with a sequence number above
/// `after` starts there. The cheap checks come before the checksum: searching a damaged
/// tail tries every offset.
fn decode_at(bytes: &[u8], pos: usize, after: u64) -> Option<(Record, usize)> {
    let header = bytes.get(pos..pos + HEADER_BYTES)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    if !(MIN_BODY_BYTES..=MAX_BODY_BYTES).contains(&len) {
        return None;
    }
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let body = bytes.get(pos + HEADER_BYTES..pos + HEADER_BYTES + len)?;
    let seq = u64::from_le_bytes(body[..8].try_into().ok()?);
    if seq <= after || ![TAG_ORDER, TAG_PRODUCT].contains(&body[8]) {
        return None;
    }
    if crc32fast::hash(body) != crc {
        return None;
    }
    let record = decode_body(body)?;
    Some((record, HEADER_BYTES + len))
}

fn decode_body(body: &[u8]) -> Option<Record> {
    let mut r = Reader(body);
    let seq = r.u64()?;
    let change = match r.u8()? {
        TAG_ORDER => Change::Order {
            id: r.str()?,
            amount: r.u64()? as i64,
            total: r.u64()?,
        },
        TAG_PRODUCT => Change::Product {
            category: r.str()?,
            id: r.str()?,
            name: r.str()?,
            rrp: r.str()?,
            info: r.str()?,
        },
        _ => return None,
    };
    // Every byte of the body is accounted for.
    r.0.is_empty().then_some(Record { seq, change })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields are bounded far below 64 KiB by the routes and the data file's rules.
    let len = s.len().min(u16::MAX as usize);
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

/// Reads fields off the front of a body.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }

    fn str(&mut self) -> Option<String> {
        let len = u16::from_le_bytes(self.take(2)?.try_into().ok()?) as usize;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(seq: u64, total: u64) -> Record {
        Record {
            seq,
            change: Change::Order {
                id: "A1".into(),
                amount: -2,
                total,
            },
        }
    }

    fn product(seq: u64) -> Record {
        Record {
            seq,
            change: Change::Product {
                category: "electronics".into(),
                id: "A3".into(),
                name: "Fän".into(),
                rrp: "1.00".into(),
                info: "Cool.".into(),
            },
        }
    }

    fn journal(records: &[Record]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in records {
            encode(r, &mut out);
        }
        out
    }

    #[test]
    fn records_read_back_as_written() {
        let records = [order(1, 5), product(2), order(3, 7)];
        let scan = scan(&journal(&records));
        assert_eq!(scan.records, records);
        assert_eq!(scan.tail, Tail::Clean);
    }

    #[test]
    fn a_write_cut_short_anywhere_is_a_torn_tail() {
        let records = [order(1, 5), product(2), order(3, 7)];
        let bytes = journal(&records);
        let two = journal(&records[..2]).len();
        for cut in two + 1..bytes.len() {
            let s = scan(&bytes[..cut]);
            assert_eq!(s.records, records[..2], "cut at {cut}");
            assert_eq!(
                s.tail,
                Tail::Torn {
                    offset: two,
                    dropped: cut - two
                },
                "cut at {cut}"
            );
        }
        // A file extended with zeros that were never written is torn too.
        let mut zeros = bytes.clone();
        zeros.extend_from_slice(&[0; 4096]);
        assert_eq!(scan(&zeros).records.len(), 3);
        assert!(matches!(
            scan(&zeros).tail,
            Tail::Torn { dropped: 4096, .. }
        ));
    }

    #[test]
    fn damage_followed_by_valid_records_is_corrupt() {
        let records = [order(1, 5), product(2), order(3, 7)];
        let bytes = journal(&records);
        let one = journal(&records[..1]).len();
        let two = journal(&records[..2]).len();
        // Any one byte of the middle record flipped: its length or its checksum fails,
        // and the record after it is still whole.
        for at in one..two {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x40;
            let s = scan(&damaged);
            assert_eq!(s.records, records[..1], "byte {at}");
            assert_eq!(s.tail, Tail::Corrupt { offset: one }, "byte {at}");
        }
    }
}
