//! The tar stage: walks the decoded stream's headers with Go `archive/tar` semantics and
//! reports a verdict. It never changes the digests; it only looks.
//!
//! The rules are those of Go's `tar.Reader.Next()` loop followed by a read of each entry's
//! data (what containers/image's tarball source and the test oracle do), from
//! `archive/tar/reader.go` and `strconv.go`:
//! - two zero blocks end the archive; one zero block then EOF is accepted; one zero block
//!   then anything else is "invalid tar header"; a missing end marker is accepted;
//! - a header is valid when its checksum (signed or unsigned sum) matches; the numeric fields
//!   Go parses must parse (octal, or base-256 when the high bit is set): size, mode, uid,
//!   gid, mtime, and for USTAR/GNU/STAR headers devmajor and devminor, for STAR headers
//!   atime and ctime; a negative size is invalid unless the type has no data;
//! - PAX (`x`) and GNU long name/link (`L`, `K`) headers describe the next entry and are not
//!   entries; a PAX global header (`g`) is an entry and drops what earlier `x`/`L`/`K`
//!   headers said; their data may not exceed 1 MiB; every PAX record must be well formed
//!   (`parsePAXRecord`) and the records Go reads must parse (`size`, `uid`, `gid`, `atime`,
//!   `mtime`, `ctime`; an empty value keeps the header's field);
//! - links, devices, directories and FIFOs have no data whatever their size field says;
//!   a legacy regular file whose name ends in `/` is a directory;
//! - sparse files (old GNU `S` headers with extension blocks, GNU PAX sparse 0.0, 0.1 and
//!   1.0): the map must parse, stay under Go's limits, be in order, not overlap and stay
//!   inside the file, and the data stored must be exactly the data the map references;
//! - data or a header cut short by the end of the stream is "unexpected EOF"; padding cut
//!   short is not an error.
//!
//! Every length, offset and count read from the input is checked before it is used: a
//! malformed archive is a verdict ("invalid", with Go's reason first in the message), never a
//! panic. What is kept is bounded: one 512-byte block, and at most 1 MiB of PAX, long-name or
//! sparse-map data (Go's `maxSpecialFileSize`).

use std::collections::BTreeMap;

use crate::error::{Error, ErrorKind};
use crate::warning::Warning;

const BLOCK: usize = 512;
/// Go refuses PAX and GNU long-name headers, and sparse maps, larger than this
/// (`maxSpecialFileSize`).
const MAX_SPECIAL: u64 = 1 << 20;
/// Go's `maxSparseFileEntries`.
const MAX_SPARSE_ENTRIES: u64 = 1 << 20;

/// Go's `ErrHeader` ("archive/tar: invalid tar header") with what was wrong.
fn bad(detail: impl std::fmt::Display) -> String {
    format!("invalid tar header: {detail}")
}
const EOF: &str = "unexpected EOF (archive truncated)";
const SPARSE_TOO_LONG: &str = "sparse map too long";

/// What the tar stage concluded about the decoded stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarVerdict {
    /// The stream is a tar archive Go's `archive/tar` reads to its end without error.
    pub valid: bool,
    /// Entries `tar.Reader.Next()` returns (PAX global headers count; PAX and GNU long-name
    /// headers do not), up to the first error.
    pub entries: u64,
    /// The two-zero-block end-of-archive marker was seen.
    pub end_marker: bool,
    /// The first error, when not valid.
    pub error: Option<TarError>,
}

/// Where and why the decoded stream stopped being a valid tar archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TarError {
    /// Offset in the decoded stream of the header (or data) at fault.
    pub offset: u64,
    /// Go `archive/tar`'s reason ("invalid tar header", "header field too long",
    /// "unexpected EOF", "sparse map too long", …) followed by what was wrong.
    pub message: String,
}

impl TarVerdict {
    /// The verdict as an error of kind [`ErrorKind::InvalidTar`], or `None` when valid.
    pub fn to_error(&self) -> Option<Error> {
        self.error.as_ref().map(|e| {
            Error::new(
                ErrorKind::InvalidTar,
                format!(
                    "not a valid tar archive: {} at decoded byte {}",
                    e.message, e.offset
                ),
            )
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Expecting a header block.
    Header,
    /// One zero block seen.
    AfterZero,
    /// Collecting the data of a PAX or GNU long-name header (`remaining` bytes to go).
    Special,
    /// Old GNU sparse extension blocks follow the header (outside the entry's data).
    SparseExt,
    /// Blocks of a GNU 1.0 sparse map at the start of the entry's data.
    SparseMap,
    /// Entry data to pass over (`remaining` bytes); it must all be there.
    Data,
    /// Padding to pass over (`remaining` bytes); Go reads it with `tryReadFull`, so an
    /// archive that ends inside it ends cleanly.
    Padding,
    /// The end marker was seen: the rest is not parsed.
    Ended,
    Failed,
}

/// PAX records by key: a later record with the same key replaces an earlier one, as in Go's
/// `map[string]string`. Ordered, so that with several bad records the one reported is the
/// same on every run (a `HashMap`'s random order made the message vary; the fuzzer saw it).
type PaxMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// A sparse map being read, checked as Go's `appendSparseEntry` and
/// `validateSparseEntries` do.
struct Sparse {
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

/// The streaming tar parser. Feed it the decoded stream in pieces of any size.
pub struct TarParser {
    phase: Phase,
    block: Box<[u8; BLOCK]>,
    filled: usize,
    /// Bytes still to pass over in `Data`, `Padding` and `Special`.
    remaining: u64,
    /// Padding after the current data or special header data.
    pad: u64,
    /// The typeflag and data of a PAX or GNU long-name header being collected.
    special_type: u8,
    special: Vec<u8>,
    /// The sparse entry whose map is being read.
    sparse: Option<Sparse>,
    /// Records of a preceding PAX `x` header and GNU long name, for the next entry.
    pax: Option<PaxMap>,
    long_name: Option<Vec<u8>>,
    entries: u64,
    end_marker: bool,
    error: Option<TarError>,
    offset: u64,
    header_offset: u64,
    /// What is no error but worth telling (see [`Warning`]), each kind once.
    pub(crate) warnings: Vec<Warning>,
    /// A non-zero byte after the end marker was seen (and told).
    after_end_seen: bool,
}

impl Default for TarParser {
    fn default() -> Self {
        Self::new()
    }
}

impl TarParser {
    pub fn new() -> Self {
        TarParser {
            phase: Phase::Header,
            block: Box::new([0; BLOCK]),
            filled: 0,
            remaining: 0,
            pad: 0,
            special_type: 0,
            special: Vec::new(),
            sparse: None,
            pax: None,
            long_name: None,
            entries: 0,
            end_marker: false,
            error: None,
            offset: 0,
            header_offset: 0,
            warnings: Vec::new(),
            after_end_seen: false,
        }
    }

    /// Parses the next piece of the decoded stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let taken = match self.phase {
                Phase::Ended => {
                    if !self.after_end_seen {
                        // Zeros after the marker are the usual padding to a record; anything
                        // else Go ignores, and other tools may read.
                        if let Some(i) = data.iter().position(|&b| b != 0) {
                            self.after_end_seen = true;
                            self.warnings.push(Warning::DataAfterEndMarker {
                                offset: self.offset + i as u64,
                            });
                        }
                    }
                    data.len()
                }
                Phase::Failed => data.len(),
                Phase::Data | Phase::Padding => {
                    let n = clamp(self.remaining, data.len());
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        if self.phase == Phase::Data {
                            self.start_padding(self.pad);
                        } else {
                            self.phase = Phase::Header;
                        }
                    }
                    n
                }
                Phase::Special => {
                    let n = clamp(self.remaining, data.len());
                    self.special.extend_from_slice(&data[..n]);
                    self.remaining -= n as u64;
                    if self.remaining == 0 {
                        let r = self.finish_special();
                        self.check(self.header_offset, r);
                    }
                    n
                }
                Phase::Header | Phase::AfterZero | Phase::SparseExt | Phase::SparseMap => {
                    let n = (BLOCK - self.filled).min(data.len());
                    self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
                    self.filled += n;
                    if self.filled == BLOCK {
                        self.filled = 0;
                        let at = self.offset + n as u64 - BLOCK as u64;
                        let r = self.on_block(at);
                        self.check(at, r);
                    }
                    n
                }
            };
            self.offset += taken as u64;
            data = &data[taken..];
        }
    }

    /// The stream has ended: the verdict.
    pub fn finish(mut self) -> TarVerdict {
        let truncated = match self.phase {
            Phase::Header | Phase::AfterZero => self.filled > 0,
            Phase::Special | Phase::SparseExt | Phase::SparseMap | Phase::Data => true,
            Phase::Padding | Phase::Ended | Phase::Failed => false,
        };
        if truncated {
            let at = self.offset;
            self.fail(at, EOF.to_string());
        }
        match self.error {
            Some(error) => TarVerdict {
                valid: false,
                entries: self.entries,
                end_marker: false,
                error: Some(error),
            },
            None => TarVerdict {
                valid: true,
                entries: self.entries,
                end_marker: self.end_marker,
                error: None,
            },
        }
    }

    fn check(&mut self, offset: u64, r: Result<(), String>) {
        if let Err(message) = r {
            self.fail(offset, message);
        }
    }

    fn fail(&mut self, offset: u64, message: String) {
        if self.error.is_none() {
            self.error = Some(TarError { offset, message });
        }
        self.phase = Phase::Failed;
    }

    fn start_padding(&mut self, pad: u64) {
        self.remaining = pad;
        self.phase = if pad > 0 {
            Phase::Padding
        } else {
            Phase::Header
        };
    }

    fn start_data(&mut self, data: u64, pad: u64) {
        if data > 0 {
            self.remaining = data;
            self.pad = pad;
            self.phase = Phase::Data;
        } else {
            self.start_padding(pad);
        }
    }

    fn on_block(&mut self, at: u64) -> Result<(), String> {
        match self.phase {
            Phase::SparseExt => return self.on_sparse_ext(),
            Phase::SparseMap => return self.on_sparse_map(),
            _ => {}
        }
        let zero = self.block.iter().all(|&b| b == 0);
        match self.phase {
            Phase::AfterZero if zero => {
                self.phase = Phase::Ended;
                self.end_marker = true;
                return Ok(());
            }
            Phase::AfterZero => {
                return Err(bad("a zero block followed by data"));
            }
            _ if zero => {
                self.phase = Phase::AfterZero;
                return Ok(());
            }
            _ => {}
        }
        self.header_offset = at;
        self.on_header()
    }

    /// Go's `readHeader` and the body of the `next()` loop for one header.
    fn on_header(&mut self) -> Result<(), String> {
        let b = &self.block;
        let format = header_format(b)?;

        let typeflag = b[156];
        let numeric = |range: std::ops::Range<usize>, name: &str| {
            parse_numeric(&b[range]).ok_or_else(|| bad(format!("bad {name} field")))
        };
        let size = numeric(124..136, "size")?;
        numeric(100..108, "mode")?;
        numeric(108..116, "uid")?;
        numeric(116..124, "gid")?;
        numeric(136..148, "mtime")?;
        let mut name = c_string(&b[..100]).to_vec();
        if format != HeaderFormat::V7 {
            numeric(329..337, "devmajor")?;
            numeric(337..345, "devminor")?;
            let prefix = match format {
                HeaderFormat::Ustar => c_string(&b[345..500]),
                HeaderFormat::Star => {
                    numeric(476..488, "atime")?;
                    numeric(488..500, "ctime")?;
                    c_string(&b[345..476])
                }
                // Go reads the GNU atime and ctime leniently; when either does not parse it
                // takes the USTAR prefix field, if ASCII, as pre-1.8 Go wrote it.
                _ => {
                    let unparsable = |r: std::ops::Range<usize>| {
                        b[r.start] != 0 && parse_numeric(&b[r]).is_none()
                    };
                    let prefix = c_string(&b[345..500]);
                    if (unparsable(345..357) || unparsable(357..369))
                        && prefix.iter().all(|&c| c < 0x80)
                    {
                        prefix
                    } else {
                        &[][..]
                    }
                }
            };
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }

        // handleRegularFile on the header as read.
        if size < 0 && !header_only(typeflag) {
            return Err(bad(format!("negative size {size}")));
        }

        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                let size = size as u64;
                if size > MAX_SPECIAL {
                    return Err(format!(
                        "header field too long: {} header of {size} bytes exceeds the 1 MiB limit",
                        special_name(typeflag)
                    ));
                }
                self.special_type = typeflag;
                self.special.clear();
                self.pad = padding(size);
                if size == 0 {
                    self.finish_special()
                } else {
                    self.remaining = size;
                    self.phase = Phase::Special;
                    Ok(())
                }
            }
            _ => self.on_entry(typeflag, size, format, name),
        }
    }

    /// The `default:` case of Go's `next()`: a real entry.
    fn on_entry(
        &mut self,
        typeflag: u8,
        mut size: i64,
        format: HeaderFormat,
        mut name: Vec<u8>,
    ) -> Result<(), String> {
        let pax = self.pax.take();
        let long_name = self.long_name.take();
        if let Some(pax) = &pax {
            size = merge_pax(pax, size, &mut name)?;
        }
        if let Some(long) = long_name.filter(|l| !l.is_empty()) {
            name = long;
        }
        let typeflag = match typeflag {
            0 if name.last() == Some(&b'/') => b'5',
            0 => b'0',
            t => t,
        };
        // GNU sparse and dump-dir entries: not errors, but some extractors do not apply them.
        if matches!(typeflag, b'S' | b'D')
            && !self.warnings.iter().any(|w| {
                matches!(w, Warning::ExtractorDependentEntry { typeflag: t, .. } if *t == typeflag)
            })
        {
            self.warnings.push(Warning::ExtractorDependentEntry {
                offset: self.header_offset,
                typeflag,
            });
        }
        // handleRegularFile again: the PAX records may have changed the size.
        let physical = if header_only(typeflag) { 0 } else { size };
        if physical < 0 {
            return Err(bad(format!("negative size {physical}")));
        }
        let physical = physical as u64;
        let pad = padding(physical);

        // handleSparseFile.
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

    fn plain_entry(&mut self, physical: u64, pad: u64) -> Result<(), String> {
        self.entries += 1;
        self.start_data(physical, pad);
        Ok(())
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
    fn on_sparse_ext(&mut self) -> Result<(), String> {
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
    fn on_sparse_map(&mut self) -> Result<(), String> {
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

    fn finish_special(&mut self) -> Result<(), String> {
        let data = std::mem::take(&mut self.special);
        self.start_padding(self.pad);
        match self.special_type {
            b'x' => {
                // Go replaces, not merges, the records of an earlier `x` header.
                self.pax = Some(parse_pax(&data)?);
                Ok(())
            }
            b'g' => {
                parse_pax(&data)?;
                // Next() returns the global header: what earlier headers said is dropped.
                self.pax = None;
                self.long_name = None;
                self.entries += 1;
                Ok(())
            }
            b'L' => {
                self.long_name = Some(c_string(&data).to_vec());
                Ok(())
            }
            _ => Ok(()),
        }
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

/// Go's `mergePAX` for the fields that can fail or change the verdict; the size the entry
/// ends up with.
fn merge_pax(pax: &PaxMap, mut size: i64, name: &mut Vec<u8>) -> Result<i64, String> {
    for (key, value) in pax {
        if value.is_empty() {
            continue; // Go keeps the header's value.
        }
        let ok = match key.as_slice() {
            b"path" => {
                *name = value.clone();
                true
            }
            b"uid" | b"gid" => parse_decimal(value).is_some(),
            b"atime" | b"mtime" | b"ctime" => valid_pax_time(value),
            b"size" => match parse_decimal(value) {
                Some(v) => {
                    size = v;
                    true
                }
                None => false,
            },
            _ => true,
        };
        if !ok {
            return Err(bad(format!(
                "PAX record {} has the value {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(value)
            )));
        }
    }
    Ok(size)
}

/// Go's `parsePAXTime`: `%d` or `%d.%d` (the fraction any number of digits).
fn valid_pax_time(s: &[u8]) -> bool {
    let (secs, frac) = match s.iter().position(|&c| c == b'.') {
        Some(dot) => (&s[..dot], &s[dot + 1..]),
        None => (s, &[][..]),
    };
    parse_decimal(secs).is_some() && frac.iter().all(u8::is_ascii_digit)
}

fn header_only(typeflag: u8) -> bool {
    matches!(typeflag, b'1'..=b'6')
}

fn special_name(typeflag: u8) -> &'static str {
    match typeflag {
        b'x' => "PAX",
        b'g' => "PAX global",
        b'L' => "GNU long name",
        _ => "GNU long link",
    }
}

fn clamp(want: u64, have: usize) -> usize {
    usize::try_from(want).map_or(have, |w| w.min(have))
}

fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderFormat {
    V7,
    Ustar,
    Star,
    Gnu,
}

/// Go's `block.getFormat`: the checksum decides whether this is a header at all, the magic
/// which fields to read.
fn header_format(block: &[u8; BLOCK]) -> Result<HeaderFormat, String> {
    let stored = parse_octal(&block[148..156]).ok_or_else(|| bad("bad checksum field"))?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err(bad("checksum mismatch"));
    }
    let magic = &block[257..263];
    Ok(if magic == b"ustar\0" && &block[508..512] == b"tar\0" {
        HeaderFormat::Star
    } else if magic == b"ustar\0" {
        HeaderFormat::Ustar
    } else if magic == b"ustar " && &block[263..265] == b" \0" {
        HeaderFormat::Gnu
    } else {
        HeaderFormat::V7
    })
}

/// The bytes of a NUL-terminated field up to its first NUL.
fn c_string(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|&b| b == 0)
        .map_or(field, |n| &field[..n])
}

/// Go's `parser.parseNumeric`: base-256 when the high bit of the first byte is set,
/// octal otherwise. `None` where Go sets `ErrHeader`.
fn parse_numeric(field: &[u8]) -> Option<i64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        let inv = if field[0] & 0x40 != 0 { 0xff } else { 0 };
        let mut x: u64 = 0;
        for (i, &c) in field.iter().enumerate() {
            let mut c = c ^ inv;
            if i == 0 {
                c &= 0x7f;
            }
            if x >> 56 > 0 {
                return None;
            }
            x = x << 8 | u64::from(c);
        }
        if x >> 63 > 0 {
            return None;
        }
        return Some(if inv == 0xff { !(x as i64) } else { x as i64 });
    }
    parse_octal(field)
}

/// Go's `parser.parseOctal`: trim spaces and NULs at both ends, stop at a NUL, base 8.
fn parse_octal(field: &[u8]) -> Option<i64> {
    let trim = |c: &u8| *c == b' ' || *c == 0;
    let start = field.iter().position(|c| !trim(c)).unwrap_or(field.len());
    let end = field
        .iter()
        .rposition(|c| !trim(c))
        .map_or(start, |e| e + 1);
    let digits = c_string(&field[start..end]);
    if digits.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(digits).ok()?;
    if !s.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u64::from_str_radix(s, 8).ok().map(|x| x as i64)
}

/// Go's `strconv.ParseInt(s, 10, 64)`.
fn parse_decimal(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse::<i64>().ok()
}

/// A count of sparse entries as Go reads it: `ParseInt`, not negative, and twice it must
/// not overflow.
fn parse_count(s: &[u8]) -> Option<u64> {
    parse_decimal(s)
        .filter(|&n| (0..1 << 62).contains(&n))
        .map(|n| n as u64)
}

/// Go's `parsePAX`: records of the form "%d %s=%s\n"; GNU sparse 0.0 offset/numbytes
/// records, which must alternate starting with an offset, become one `GNU.sparse.map`.
fn parse_pax(mut data: &[u8]) -> Result<PaxMap, String> {
    let mut records = PaxMap::new();
    let mut sparse_map: Vec<&[u8]> = Vec::new();
    while !data.is_empty() {
        let (key, value, rest) = parse_pax_record(data)?;
        data = rest;
        match key {
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                let want_offset = sparse_map.len() % 2 == 0;
                if want_offset != (key == b"GNU.sparse.offset") || value.contains(&b',') {
                    return Err(bad(
                        "GNU sparse 0.0 records out of order or holding a comma",
                    ));
                }
                sparse_map.push(value);
            }
            _ => {
                records.insert(key.to_vec(), value.to_vec());
            }
        }
    }
    if !sparse_map.is_empty() {
        records.insert(b"GNU.sparse.map".to_vec(), sparse_map.join(&b","[..]));
    }
    Ok(records)
}

/// Key, value, and the bytes after the record.
type PaxRecord<'a> = (&'a [u8], &'a [u8], &'a [u8]);

/// One PAX record: key, value and what follows. Go's `parsePAXRecord`, whose every check
/// comes before the slice it guards.
fn parse_pax_record(s: &[u8]) -> Result<PaxRecord<'_>, String> {
    let space = s
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| bad("PAX record without a space after its length"))?;
    let len_field = &s[..space];
    let len = parse_decimal(len_field).ok_or_else(|| {
        bad(format!(
            "PAX record length {:?} is not a decimal number",
            String::from_utf8_lossy(len_field)
        ))
    })?;
    if len < 5 || len as u64 > s.len() as u64 {
        return Err(bad(format!(
            "PAX record length {len} is below 5 or beyond the {} bytes left",
            s.len()
        )));
    }
    // From an index in `s` to one in what follows the space.
    let body = len - (space as i64 + 1);
    if body <= 0 {
        return Err(bad(format!(
            "PAX record length {len} does not cover its own length field"
        )));
    }
    let rest = &s[space + 1..];
    let body = body as usize; // <= rest.len(), since len <= s.len()
    let (record, newline, rest) = (&rest[..body - 1], rest[body - 1], &rest[body..]);
    if newline != b'\n' {
        return Err(bad(format!(
            "PAX record of length {len} does not end in a newline"
        )));
    }
    let eq = record
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| bad("PAX record without '='"))?;
    let (key, value) = (&record[..eq], &record[eq + 1..]);
    // Go's `validPAXRecord`.
    let nul_in_value = matches!(key, b"path" | b"linkpath" | b"uname" | b"gname");
    if key.is_empty() || (nul_in_value && value.contains(&0)) || (!nul_in_value && key.contains(&0))
    {
        return Err(bad("PAX record with an empty key or a NUL byte"));
    }
    Ok((key, value, rest))
}
