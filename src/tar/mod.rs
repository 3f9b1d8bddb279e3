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

mod numbers;
mod pax;
mod sparse;

use crate::error::{Error, ErrorKind};
use crate::warning::Warning;
use numbers::{c_string, parse_numeric, parse_octal};
use pax::{PaxMap, merge_pax, parse_pax};
use sparse::Sparse;

const BLOCK: usize = 512;
/// Go refuses PAX and GNU long-name headers, and sparse maps, larger than this
/// (`maxSpecialFileSize`).
const MAX_SPECIAL: u64 = 1 << 20;

/// Go's `ErrHeader` ("archive/tar: invalid tar header") with what was wrong.
fn bad(detail: impl std::fmt::Display) -> String {
    format!("invalid tar header: {detail}")
}
const EOF: &str = "unexpected EOF (archive truncated)";

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

        self.handle_sparse_file(typeflag, size, format, pax, physical, pad)
    }

    fn plain_entry(&mut self, physical: u64, pad: u64) -> Result<(), String> {
        self.entries += 1;
        self.start_data(physical, pad);
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
