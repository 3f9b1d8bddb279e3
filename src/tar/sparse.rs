//! Sparse files: the map of an old GNU `S` header and its extension blocks, or of a GNU PAX
//! sparse 0.0, 0.1 or 1.0 entry, checked as Go's `appendSparseEntry`,
//! `validateSparseEntries` and `sparseFileReader` do.

use super::numbers::{parse_count, parse_decimal, parse_numeric};
use super::pax::PaxMap;
use super::{BLOCK, EOF, HeaderFormat, MAX_SPECIAL, Phase, TarParser, bad, header_only};

/// Go's `maxSparseFileEntries`.
const MAX_SPARSE_ENTRIES: u64 = 1 << 20;
const SPARSE_TOO_LONG: &str = "sparse map too long";

/// A sparse map being read, checked as Go's `appendSparseEntry` and
/// `validateSparseEntries` do.
pub(super) struct Sparse {
    /// The file's logical size.
    size: i64,
    entries: u64,
    prev_end: i64,
    /// Bytes of data the map references: what must be stored.
    dense: u64,
    /// An entry broke `validateSparseEntries` (Go reports it once the map is read).
    invalid: Option<String>,
    /// Old GNU: bytes of map read so far (Go's `totalSize`).
    map_bytes: u64,
    /// GNU 1.0: the map's text so far and how many newlines it holds.
    text: Vec<u8>,
    newlines: u64,
    /// GNU 1.0: the number of entries, once its line is read.
    count: Option<u64>,
    /// Physical bytes of the entry (after the header), and how many the map has used.
    physical: u64,
    pad: u64,
}

impl Sparse {
    fn new(size: i64, physical: u64, pad: u64) -> Self {
        Sparse {
            size,
            entries: 0,
            prev_end: 0,
            dense: 0,
            invalid: None,
            map_bytes: 0,
            text: Vec::new(),
            newlines: 0,
            count: None,
            physical,
            pad,
        }
    }

    fn add(&mut self, offset: i64, length: i64) -> Result<(), String> {
        if self.entries >= MAX_SPARSE_ENTRIES {
            return Err(format!(
                "{SPARSE_TOO_LONG}: more than {MAX_SPARSE_ENTRIES} entries"
            ));
        }
        self.entries += 1;
        if self.invalid.is_some() {
            return Ok(());
        }
        let problem = if offset < 0 || length < 0 {
            Some("a negative offset or length")
        } else if offset > i64::MAX - length {
            Some("an offset plus length that overflows")
        } else if offset + length > self.size {
            Some("a region beyond the file's size")
        } else if self.prev_end > offset {
            Some("regions out of order or overlapping")
        } else {
            None
        };
        match problem {
            Some(p) => {
                self.invalid = Some(bad(format!(
                    "sparse map entry {} (offset {offset}, length {length}) has {p}",
                    self.entries
                )))
            }
            None => {
                self.prev_end = offset + length;
                self.dense += length as u64;
            }
        }
        Ok(())
    }

    /// The map is complete: Go's `validateSparseEntries`.
    fn check(&self) -> Result<(), String> {
        if self.size < 0 {
            return Err(bad(format!("negative sparse file size {}", self.size)));
        }
        match &self.invalid {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

impl TarParser {
    /// Go's `handleSparseFile` for an entry whose header and PAX records are read: an old GNU
    /// `S` entry, a GNU PAX sparse 0.0, 0.1 or 1.0 entry, or else a plain one.
    pub(super) fn handle_sparse_file(
        &mut self,
        typeflag: u8,
        size: i64,
        format: HeaderFormat,
        pax: Option<PaxMap>,
        physical: u64,
        pad: u64,
    ) -> Result<(), String> {
        if typeflag == b'S' {
            if format != HeaderFormat::Gnu {
                return Err(bad("a GNU sparse entry in a header that is not GNU"));
            }
            let real = parse_numeric(&self.block[483..495])
                .ok_or_else(|| bad("bad GNU sparse realsize field"))?;
            let mut sparse = Sparse::new(real, physical, pad);
            sparse.map_bytes = 97;
            old_sparse_entries(&self.block[386..482], &mut sparse)?;
            let extended = self.block[482] != 0;
            self.sparse = Some(sparse);
            if extended {
                self.phase = Phase::SparseExt;
                return Ok(());
            }
            return self.sparse_entry(typeflag);
        }
        let Some(pax) = pax else {
            return self.plain_entry(physical, pad);
        };
        let get = |k: &str| pax.get(k.as_bytes()).map_or(&[][..], Vec::as_slice);
        let (major, minor) = (get("GNU.sparse.major"), get("GNU.sparse.minor"));
        let v1 = if major == b"0" && (minor == b"0" || minor == b"1") {
            false
        } else if major == b"1" && minor == b"0" {
            true
        } else if !major.is_empty() || !minor.is_empty() || get("GNU.sparse.map").is_empty() {
            // An unknown version, or not a GNU sparse file.
            return self.plain_entry(physical, pad);
        } else {
            false
        };
        let mut logical = size;
        let sparse_size = match get("GNU.sparse.size") {
            b"" => get("GNU.sparse.realsize"),
            s => s,
        };
        if !sparse_size.is_empty() {
            logical = parse_decimal(sparse_size)
                .ok_or_else(|| bad("bad GNU.sparse.size (or realsize) PAX record"))?;
        }
        let mut sparse = Sparse::new(logical, physical, pad);
        if v1 {
            // Go reads the map from the entry's data, block by block.
            self.sparse = Some(sparse);
            return self.next_sparse_map_block();
        }
        // GNU sparse 0.0 / 0.1: the map is in the PAX records.
        let count = parse_count(get("GNU.sparse.numblocks"))
            .ok_or_else(|| bad("bad GNU.sparse.numblocks PAX record"))?;
        let map = get("GNU.sparse.map");
        let fields: Vec<&[u8]> = if map.is_empty() {
            Vec::new()
        } else {
            map.split(|&c| c == b',').collect()
        };
        if fields.len() as u64 != 2 * count {
            return Err(bad(format!(
                "GNU.sparse.map has {} numbers for {count} entries",
                fields.len()
            )));
        }
        for pair in fields.chunks_exact(2) {
            let (o, l) = (parse_decimal(pair[0]), parse_decimal(pair[1]));
            let (Some(o), Some(l)) = (o, l) else {
                return Err(bad("bad number in GNU.sparse.map"));
            };
            sparse.add(o, l)?;
        }
        self.sparse = Some(sparse);
        self.sparse_entry(typeflag)
    }

    /// The sparse map is read: the rest of `handleSparseFile`, then the entry's data must be
    /// exactly what the map references (Go's `sparseFileReader`: `errMissData`,
    /// `errUnrefData`).
    fn sparse_entry(&mut self, typeflag: u8) -> Result<(), String> {
        let sparse = self.sparse.take().expect("a sparse entry in progress");
        if header_only(typeflag) {
            return Err(bad("a sparse map on an entry type that has no data"));
        }
        sparse.check()?;
        self.entries += 1;
        if sparse.physical < sparse.dense {
            return Err(format!(
                "sparse file references non-existent data: the map references {} bytes, the entry stores {}",
                sparse.dense, sparse.physical
            ));
        }
        if sparse.physical > sparse.dense {
            return Err(format!(
                "sparse file contains unreferenced data: the map references {} bytes, the entry stores {}",
                sparse.dense, sparse.physical
            ));
        }
        self.start_data(sparse.physical, sparse.pad);
        Ok(())
    }

    /// An old GNU sparse extension block (`readOldGNUSparseMap`).
    pub(super) fn on_sparse_ext(&mut self) -> Result<(), String> {
        let sparse = self.sparse.as_mut().expect("a sparse entry in progress");
        sparse.map_bytes += 21 * 24 + 1;
        if sparse.map_bytes >= MAX_SPECIAL {
            return Err(format!(
                "{SPARSE_TOO_LONG}: old GNU sparse extension blocks beyond 1 MiB"
            ));
        }
        old_sparse_entries(&self.block[..504], sparse)?;
        if self.block[504] == 0 {
            return self.sparse_entry(b'S');
        }
        Ok(())
    }

    /// A block of a GNU 1.0 sparse map (`readGNUSparseMap1x0`), taken from the entry's data.
    pub(super) fn on_sparse_map(&mut self) -> Result<(), String> {
        let sparse = self.sparse.as_mut().expect("a sparse entry in progress");
        sparse.physical -= BLOCK as u64;
        sparse.text.extend_from_slice(&self.block[..]);
        sparse.newlines += self.block.iter().filter(|&&c| c == b'\n').count() as u64;
        if sparse.count.is_none() && sparse.newlines >= 1 {
            let line = sparse.text.split(|&c| c == b'\n').next().unwrap_or(&[]);
            let count =
                parse_count(line).ok_or_else(|| bad("bad entry count in a GNU 1.0 sparse map"))?;
            sparse.count = Some(count);
        }
        match sparse.count {
            Some(count) if sparse.newlines > 2 * count => {
                let text = std::mem::take(&mut sparse.text);
                let mut lines = text.split(|&c| c == b'\n').skip(1);
                for _ in 0..count {
                    let o = lines.next().and_then(parse_decimal);
                    let l = lines.next().and_then(parse_decimal);
                    let (Some(o), Some(l)) = (o, l) else {
                        return Err(bad("bad number in a GNU 1.0 sparse map"));
                    };
                    sparse.add(o, l)?;
                }
                // A header-only type has no data, so its map already failed above.
                self.sparse_entry(b'0')
            }
            _ => self.next_sparse_map_block(),
        }
    }

    /// Go's `feedTokens`: another block of the map, within 1 MiB and the entry's data.
    fn next_sparse_map_block(&mut self) -> Result<(), String> {
        let sparse = self.sparse.as_mut().expect("a sparse entry in progress");
        sparse.map_bytes += BLOCK as u64;
        if sparse.map_bytes > MAX_SPECIAL {
            return Err(format!(
                "{SPARSE_TOO_LONG}: GNU 1.0 sparse map beyond 1 MiB"
            ));
        }
        if sparse.physical < BLOCK as u64 {
            return Err(format!(
                "{EOF}: the GNU 1.0 sparse map runs past the entry's {} bytes of data",
                sparse.physical
            ));
        }
        self.phase = Phase::SparseMap;
        Ok(())
    }
}

/// The entries of an old GNU sparse header or extension block (24 bytes each: 12 of offset,
/// 12 of length); an entry whose offset starts with NUL ends the list.
fn old_sparse_entries(area: &[u8], sparse: &mut Sparse) -> Result<(), String> {
    for entry in area.chunks_exact(24) {
        if entry[0] == 0 {
            break;
        }
        let o = parse_numeric(&entry[..12]);
        let l = parse_numeric(&entry[12..]);
        let (Some(o), Some(l)) = (o, l) else {
            return Err(bad("bad number in an old GNU sparse map"));
        };
        sparse.add(o, l)?;
    }
    Ok(())
}
