//! The tar stage: walks the decoded stream's headers with Go `archive/tar` semantics and
//! reports a verdict. It never changes the digests; it only looks.
//!
//! What matches Go's `tar.Reader.Next()` loop:
//! - two zero blocks end the archive; one zero block then EOF is accepted; one zero block
//!   then anything else is "invalid tar header"; a missing end marker is accepted;
//! - a header is valid when its checksum (signed or unsigned sum) matches; the numeric fields
//!   Go parses must parse (octal, or base-256 when the high bit is set);
//! - PAX (`x`) and GNU long name/link (`L`, `K`) headers describe the next entry and are not
//!   entries; a PAX global header (`g`) is an entry; a PAX `size` record overrides the size;
//! - links, devices, directories and FIFOs have no data whatever their size field says;
//!   a legacy regular file whose name ends in `/` is a directory;
//! - old GNU sparse headers may be followed by extension blocks;
//! - data or padding cut short by the end of the stream is "unexpected EOF".
//!
//! The 512-byte header layout comes from the `tar` crate.

use crate::error::{Error, ErrorKind};
use crate::warning::Warning;

const BLOCK: usize = 512;
/// Go refuses PAX and GNU long-name headers larger than this (`maxSpecialFileSize`).
const MAX_SPECIAL: u64 = 1 << 20;

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

enum Phase {
    /// Expecting a header block.
    Header,
    /// One zero block seen.
    AfterZero,
    /// The end marker was seen: the rest is not parsed.
    Ended,
    Failed(TarError),
}

/// Data of a PAX or GNU long-name header being collected.
struct Special {
    typeflag: u8,
    data: Vec<u8>,
    remaining: u64,
    pad: u64,
}

/// The streaming tar parser. Feed it the decoded stream in pieces of any size.
pub struct TarParser {
    phase: Phase,
    block: Box<[u8; BLOCK]>,
    filled: usize,
    /// Entry data and padding still to pass over.
    skip: u64,
    /// How much of `skip` is padding: Go reads padding with `tryReadFull`, so an archive
    /// that ends inside it ends cleanly, while one that ends inside data is truncated.
    skip_pad: u64,
    /// The data of a PAX or GNU long-name header being collected.
    special: Option<Special>,
    /// Old GNU sparse extension blocks follow; then `after_ext` bytes of data (and padding).
    ext_blocks: bool,
    after_ext: u64,
    /// Records of a preceding PAX `x` header and GNU long name, for the next entry.
    pax_size: Option<i64>,
    pax_path: Option<Vec<u8>>,
    long_name: Option<Vec<u8>>,
    entries: u64,
    end_marker: bool,
    offset: u64,
    header_offset: u64,
    /// What is no error but worth telling (see [`Warning`]), each kind once.
    pub(crate) warnings: Vec<Warning>,
    /// Looking for a non-zero byte after the end marker.
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
            skip: 0,
            skip_pad: 0,
            special: None,
            ext_blocks: false,
            after_ext: 0,
            pax_size: None,
            pax_path: None,
            long_name: None,
            entries: 0,
            end_marker: false,
            offset: 0,
            header_offset: 0,
            warnings: Vec::new(),
            after_end_seen: false,
        }
    }

    /// Parses the next piece of the decoded stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if matches!(self.phase, Phase::Ended | Phase::Failed(_)) {
                if matches!(self.phase, Phase::Ended) && !self.after_end_seen {
                    // Zeros after the marker are the usual padding to a record; anything
                    // else Go ignores, and other tools may read.
                    if let Some(i) = data.iter().position(|&b| b != 0) {
                        self.after_end_seen = true;
                        self.warnings.push(Warning::DataAfterEndMarker {
                            offset: self.offset + i as u64,
                        });
                    }
                }
                self.offset += data.len() as u64;
                return;
            }
            let taken = if self.skip > 0 {
                let n = clamp(self.skip, data.len());
                self.skip -= n as u64;
                n
            } else if let Some(special) = &mut self.special {
                let n = clamp(special.remaining, data.len());
                special.data.extend_from_slice(&data[..n]);
                special.remaining -= n as u64;
                if special.remaining == 0 {
                    let special = self.special.take().expect("special header in progress");
                    self.set_skip(0, special.pad);
                    if let Err(msg) = self.finish_special(special) {
                        self.fail(self.header_offset, msg);
                    }
                }
                n
            } else {
                let n = (BLOCK - self.filled).min(data.len());
                self.block[self.filled..self.filled + n].copy_from_slice(&data[..n]);
                self.filled += n;
                if self.filled == BLOCK {
                    self.filled = 0;
                    let at = self.offset + n as u64 - BLOCK as u64;
                    if let Err(msg) = self.on_block(at) {
                        self.fail(at, msg);
                    }
                }
                n
            };
            self.offset += taken as u64;
            data = &data[taken..];
        }
    }

    /// The stream has ended: the verdict.
    pub fn finish(mut self) -> TarVerdict {
        let truncated = self.filled > 0
            || self.skip > self.skip_pad
            || self.special.is_some()
            || self.ext_blocks;
        if truncated && matches!(self.phase, Phase::Header | Phase::AfterZero) {
            let at = self.offset;
            self.fail(at, "unexpected EOF (archive truncated)".to_string());
        }
        match self.phase {
            Phase::Failed(error) => TarVerdict {
                valid: false,
                entries: self.entries,
                end_marker: false,
                error: Some(error),
            },
            _ => TarVerdict {
                valid: true,
                entries: self.entries,
                end_marker: self.end_marker,
                error: None,
            },
        }
    }

    fn set_skip(&mut self, data: u64, pad: u64) {
        self.skip = data + pad;
        self.skip_pad = pad;
    }

    fn fail(&mut self, offset: u64, message: String) {
        if !matches!(self.phase, Phase::Failed(_)) {
            self.phase = Phase::Failed(TarError { offset, message });
        }
    }

    fn on_block(&mut self, at: u64) -> Result<(), String> {
        if self.ext_blocks {
            // An old GNU sparse extension block: its last "isextended" byte says whether
            // another follows.
            if self.block[504] == 0 {
                self.ext_blocks = false;
                self.set_skip(self.after_ext, padding(self.after_ext));
            }
            return Ok(());
        }
        let zero = self.block.iter().all(|&b| b == 0);
        match self.phase {
            Phase::AfterZero if zero => {
                self.phase = Phase::Ended;
                self.end_marker = true;
                return Ok(());
            }
            Phase::AfterZero => {
                return Err("invalid tar header: a zero block followed by data".into());
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

    fn on_header(&mut self) -> Result<(), String> {
        let header = tar::Header::from_byte_slice(&self.block[..]);
        let old = header.as_old();
        let format = header_format(&self.block)?;

        let typeflag = old.linkflag[0];
        let size = parse_numeric(&old.size).ok_or("invalid tar header: bad size field")?;
        for (field, name) in [
            (&old.mode[..], "mode"),
            (&old.uid[..], "uid"),
            (&old.gid[..], "gid"),
        ] {
            parse_numeric(field).ok_or(format!("invalid tar header: bad {name} field"))?;
        }
        parse_numeric(&old.mtime).ok_or("invalid tar header: bad mtime field")?;
        let mut name = c_string(&old.name).to_vec();
        if format != HeaderFormat::V7 {
            // The USTAR fields; Go reads them whatever the version field says.
            let b = &self.block;
            parse_numeric(&b[329..337]).ok_or("invalid tar header: bad devmajor field")?;
            parse_numeric(&b[337..345]).ok_or("invalid tar header: bad devminor field")?;
            let prefix = match format {
                HeaderFormat::Ustar => c_string(&b[345..500]),
                HeaderFormat::Star => c_string(&self.block[345..345 + 131]),
                _ => &[][..],
            };
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }

        match typeflag {
            b'x' | b'g' | b'L' | b'K' => {
                if size < 0 {
                    return Err("invalid tar header: negative size".into());
                }
                let size = size as u64;
                if size > MAX_SPECIAL {
                    return Err(format!(
                        "{} header of {size} bytes exceeds the 1 MiB limit",
                        special_name(typeflag)
                    ));
                }
                if typeflag == b'g' {
                    self.entries += 1;
                }
                let special = Special {
                    typeflag,
                    data: Vec::new(),
                    remaining: size,
                    pad: padding(size),
                };
                if size == 0 {
                    self.finish_special(special)?;
                } else {
                    self.special = Some(special);
                }
                Ok(())
            }
            _ => {
                let size = self.pax_size.take().unwrap_or(size);
                if let Some(path) = self.pax_path.take() {
                    name = path;
                }
                if let Some(long) = self.long_name.take() {
                    name = long;
                }
                let header_only = matches!(typeflag, b'1'..=b'6')
                    || (typeflag == 0 && name.last() == Some(&b'/'));
                let data = if header_only { 0 } else { size };
                if data < 0 {
                    return Err("invalid tar header: negative size".into());
                }
                let data = data as u64;
                self.entries += 1;
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
                if typeflag == b'S' && format == HeaderFormat::Gnu && self.block[482] != 0 {
                    self.ext_blocks = true;
                    self.after_ext = data;
                } else {
                    self.set_skip(data, padding(data));
                }
                Ok(())
            }
        }
    }

    fn finish_special(&mut self, special: Special) -> Result<(), String> {
        match special.typeflag {
            b'x' => {
                let records = parse_pax(&special.data)?;
                // Go replaces, not merges, the records of an earlier `x` header.
                self.pax_size = None;
                self.pax_path = None;
                for (key, value) in records {
                    match key {
                        b"size" => {
                            let v = parse_decimal(value).ok_or("invalid PAX size record")?;
                            self.pax_size = Some(v);
                        }
                        b"path" => self.pax_path = Some(value.to_vec()),
                        b"uid" | b"gid" => {
                            parse_decimal(value).ok_or("invalid PAX uid/gid record")?;
                        }
                        _ => {}
                    }
                }
                Ok(())
            }
            b'g' => parse_pax(&special.data).map(drop),
            b'L' => {
                self.long_name = Some(c_string(&special.data).to_vec());
                Ok(())
            }
            _ => Ok(()),
        }
    }
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
    let stored = parse_octal(&block[148..156]).ok_or("invalid tar header: bad checksum field")?;
    let (mut unsigned, mut signed) = (0i64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored != signed {
        return Err("invalid tar header: checksum mismatch".into());
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

/// One PAX record: key and value.
type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Go's `parsePAX`: records of the form "%d %s=%s\n".
fn parse_pax(mut data: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    const BAD: &str = "invalid tar header: malformed PAX record";
    let mut records = Vec::new();
    while !data.is_empty() {
        let space = data.iter().position(|&b| b == b' ').ok_or(BAD)?;
        let len = parse_decimal(&data[..space]).ok_or(BAD)?;
        if len < 5 || len as u64 > data.len() as u64 {
            return Err(BAD.into());
        }
        let (record, rest) = data.split_at(len as usize);
        let body = &record[space + 1..];
        let body = body.strip_suffix(b"\n").ok_or(BAD)?;
        let eq = body.iter().position(|&b| b == b'=').ok_or(BAD)?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        let nul_in_value = matches!(key, b"path" | b"linkpath" | b"uname" | b"gname");
        if key.is_empty()
            || (nul_in_value && value.contains(&0))
            || (!nul_in_value && key.contains(&0))
        {
            return Err(BAD.into());
        }
        records.push((key, value));
        data = rest;
    }
    Ok(records)
}
