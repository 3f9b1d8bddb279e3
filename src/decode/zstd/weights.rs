//! containers/image's reading of a block's FSE-compressed Huffman weights, for the faults
//! libzstd lets pass.
//!
//! A compressed block whose literals are Huffman coded describes its Huffman code by weights,
//! usually FSE-compressed (RFC 8878 4.2.1.2). libzstd (`FSE_decompress_wksp`) stops decoding
//! them at the first state update that needs more bits than are left, and accepts a bit
//! stream that ends inside that update. containers/image's decoder (klauspost/compress
//! `fse.Decompress`, called by `huff0.ReadTable`) stops only where the bits end exactly
//! between two updates and otherwise fails ("fse decompress returned: unexpected EOF"), and
//! it refuses a few headers libzstd reads ("input too small"). This is a line-by-line port of
//! that Go code (klauspost/compress v1.18.0, `fse/decompress.go`, `fse/bitreader.go`,
//! `fse/bytereader.go`), used only to find what it refuses: its output is not used.

/// Go's `tablelogAbsoluteMax`, `minTablelog`, `maxSymbolValue`.
const TABLELOG_ABSOLUTE_MAX: u32 = 15;
const MIN_TABLELOG: u32 = 5;
const MAX_SYMBOL_VALUE: u16 = 255;
/// `huff0.ReadTable` sets `DecompressLimit` to 255 weights.
const DECOMPRESS_LIMIT: usize = 255;

/// How many bytes of a compressed block's body [`fault`] needs to judge it: `None` when the
/// literals are not Huffman coded with FSE-compressed weights (nothing to check), or when
/// `body` is too short to tell yet.
pub(super) fn needed(body: &[u8]) -> Option<usize> {
    let b0 = *body.first()?;
    if b0 & 3 != 2 {
        return None;
    }
    let header = match (b0 >> 2) & 3 {
        0 | 1 => 3,
        2 => 4,
        _ => 5,
    };
    let size = *body.get(header)?;
    (size < 128).then_some(header + 1 + usize::from(size))
}

/// What containers/image says of the FSE-compressed Huffman weights at the start of a
/// compressed block's `body`: `Some(error)` if it refuses them; `None` if it does not, if the
/// block has no such weights, or if `body` holds less than [`needed`] says.
pub(super) fn fault(body: &[u8]) -> Option<String> {
    let end = needed(body)?;
    let weights = body.get(body_header(body) + 1..end)?;
    match decompress(weights) {
        Ok(()) => None,
        // The port reached a state the Go code would have panicked on: no opinion, libzstd
        // judges alone.
        Err(Fault::Panic) => None,
        Err(Fault::Go(e)) => Some(format!("Huffman weights: {e}")),
    }
}

/// The literals section header's length.
fn body_header(body: &[u8]) -> usize {
    match (body[0] >> 2) & 3 {
        0 | 1 => 3,
        2 => 4,
        _ => 5,
    }
}

enum Fault {
    /// An error the Go code returns.
    Go(String),
    /// Where the Go code would index out of range (a panic, not an error).
    Panic,
}

type R<T> = std::result::Result<T, Fault>;

fn go<T>(e: impl Into<String>) -> R<T> {
    Err(Fault::Go(e.into()))
}

/// Go's `byteReader`.
struct ByteReader<'a> {
    b: &'a [u8],
    off: usize,
}

impl ByteReader<'_> {
    fn uint32(&self) -> R<u32> {
        let s = self.b.get(self.off..self.off + 4).ok_or(Fault::Panic)?;
        Ok(u32::from_le_bytes(s.try_into().unwrap()))
    }
    fn remain(&self) -> i64 {
        self.b.len() as i64 - self.off as i64
    }
}

/// Go's `highBits`: the index of the highest set bit; -1 (all ones) for 0.
fn high_bits(v: u32) -> u32 {
    (32 - v.leading_zeros()).wrapping_sub(1)
}

/// Go's shift of a uint32 by `n`: 0 when `n` is 32 or more.
fn shr(v: u32, n: u32) -> u32 {
    v.checked_shr(n).unwrap_or(0)
}

#[derive(Clone, Copy, Default)]
struct DecSymbol {
    new_state: u16,
    symbol: u8,
    nb_bits: u8,
}

/// `fse.Decompress` with huff0's limit: Ok when containers/image accepts the weights stream.
fn decompress(input: &[u8]) -> R<()> {
    let mut b = ByteReader { b: input, off: 0 };
    let mut norm = [0i16; 256];
    let (table_log, symbol_len) = read_ncount(&mut b, &mut norm)?;
    let (table, zero_bits) = build_dtable(table_log, &norm[..usize::from(symbol_len)])?;
    decode(
        &input[b.off.min(input.len())..],
        &table,
        table_log,
        zero_bits,
    )
}

/// `Scratch.readNCount`.
fn read_ncount(b: &mut ByteReader, norm: &mut [i16; 256]) -> R<(u8, u16)> {
    let mut charnum: u16 = 0;
    let mut previous0 = false;
    let iend = b.remain();
    if iend < 4 {
        return go("input too small");
    }
    let mut bit_stream = b.uint32()?;
    let mut nb_bits = (bit_stream & 0xF) + MIN_TABLELOG;
    if nb_bits > TABLELOG_ABSOLUTE_MAX {
        return go("tableLog too large");
    }
    bit_stream >>= 4;
    let mut bit_count: u32 = 4;
    let actual_table_log = nb_bits as u8;
    let mut remaining: i32 = (1 << nb_bits) + 1;
    let mut threshold: i32 = 1 << nb_bits;
    let mut got_total: i32 = 0;
    nb_bits += 1;
    let off = |b: &ByteReader| b.off as i64;

    while remaining > 1 {
        if previous0 {
            let mut n0 = charnum;
            while bit_stream & 0xFFFF == 0xFFFF {
                n0 = n0.wrapping_add(24);
                if off(b) < iend - 5 {
                    b.off += 2;
                    bit_stream = shr(b.uint32()?, bit_count);
                } else {
                    bit_stream >>= 16;
                    bit_count += 16;
                }
            }
            while bit_stream & 3 == 3 {
                n0 = n0.wrapping_add(3);
                bit_stream >>= 2;
                bit_count += 2;
            }
            n0 = n0.wrapping_add((bit_stream & 3) as u16);
            bit_count += 2;
            if n0 > MAX_SYMBOL_VALUE {
                return go("maxSymbolValue too small");
            }
            while charnum < n0 {
                norm[usize::from(charnum & 0xff)] = 0;
                charnum += 1;
            }
            if off(b) <= iend - 7 || off(b) + i64::from(bit_count >> 3) <= iend - 4 {
                b.off += (bit_count >> 3) as usize;
                bit_count &= 7;
                bit_stream = shr(b.uint32()?, bit_count);
            } else {
                bit_stream >>= 2;
            }
        }

        let max = (2 * threshold - 1) - remaining;
        let mut count: i32;
        if (bit_stream as i32) & (threshold - 1) < max {
            count = (bit_stream as i32) & (threshold - 1);
            bit_count += nb_bits - 1;
        } else {
            count = (bit_stream as i32) & (2 * threshold - 1);
            if count >= threshold {
                count -= max;
            }
            bit_count += nb_bits;
        }

        count -= 1;
        if count < 0 {
            remaining += count;
            got_total -= count;
        } else {
            remaining -= count;
            got_total += count;
        }
        norm[usize::from(charnum & 0xff)] = count as i16;
        charnum = charnum.wrapping_add(1);
        previous0 = count == 0;
        while remaining < threshold {
            nb_bits = nb_bits.wrapping_sub(1);
            threshold >>= 1;
        }
        if off(b) <= iend - 7 || off(b) + i64::from(bit_count >> 3) <= iend - 4 {
            b.off += (bit_count >> 3) as usize;
            bit_count &= 7;
        } else {
            let back = 8 * (b.b.len() as i64 - 4 - off(b));
            bit_count = (i64::from(bit_count) - back) as u32;
            b.off = b.b.len() - 4;
        }
        bit_stream = b.uint32()? >> (bit_count & 31);
    }
    let symbol_len = charnum;
    if symbol_len <= 1 {
        return go(format!("symbolLen ({symbol_len}) too small"));
    }
    if symbol_len > MAX_SYMBOL_VALUE + 1 {
        return go(format!("symbolLen ({symbol_len}) too big"));
    }
    if remaining != 1 {
        return go(format!("corruption detected (remaining {remaining} != 1)"));
    }
    if bit_count > 32 {
        return go(format!("corruption detected (bitCount {bit_count} > 32)"));
    }
    if got_total != 1 << actual_table_log {
        return go(format!(
            "corruption detected (total {got_total} != {})",
            1 << actual_table_log
        ));
    }
    b.off += ((bit_count + 7) >> 3) as usize;
    Ok((actual_table_log, symbol_len))
}

/// `Scratch.buildDtable`: the decoding table, and whether a state reads no bits.
fn build_dtable(table_log: u8, norm: &[i16]) -> R<(Vec<DecSymbol>, bool)> {
    let table_size = 1u32 << table_log;
    let mut high_threshold = table_size - 1;
    let mut table = vec![DecSymbol::default(); table_size as usize];
    let mut symbol_next = [0u16; 256];
    let mut zero_bits = false;
    let large_limit = 1i16 << (table_log - 1);
    for (i, &v) in norm.iter().enumerate() {
        if v == -1 {
            table
                .get_mut(high_threshold as usize)
                .ok_or(Fault::Panic)?
                .symbol = i as u8;
            high_threshold = high_threshold.wrapping_sub(1);
            symbol_next[i] = 1;
        } else {
            if v >= large_limit {
                zero_bits = true;
            }
            symbol_next[i] = v as u16;
        }
    }
    let mask = table_size - 1;
    let step = (table_size >> 1) + (table_size >> 3) + 3;
    let mut position = 0u32;
    for (ss, &v) in norm.iter().enumerate() {
        for _ in 0..i32::from(v) {
            table[position as usize].symbol = ss as u8;
            position = (position + step) & mask;
            while position > high_threshold {
                position = (position + step) & mask;
            }
        }
    }
    if position != 0 {
        return go("corrupted input (position != 0)");
    }
    let size16 = table_size as u16;
    for (u, entry) in table.iter_mut().enumerate() {
        let symbol = usize::from(entry.symbol);
        let next_state = symbol_next[symbol];
        symbol_next[symbol] = next_state.wrapping_add(1);
        let n_bits = table_log.wrapping_sub(high_bits(u32::from(next_state)) as u8);
        entry.nb_bits = n_bits;
        let new_state = (u32::from(next_state)
            .checked_shl(u32::from(n_bits))
            .unwrap_or(0) as u16)
            .wrapping_sub(size16);
        if new_state >= size16 {
            return go(format!(
                "newState ({new_state}) outside table size ({size16})"
            ));
        }
        if usize::from(new_state) == u && n_bits == 0 {
            return go(format!(
                "newState ({new_state}) == oldState ({u}) and no bits"
            ));
        }
        entry.new_state = new_state;
    }
    Ok((table, zero_bits))
}

/// Go's `bitReader` (reads backwards from the last byte's highest set bit).
struct BitReader<'a> {
    input: &'a [u8],
    off: usize,
    value: u64,
    bits_read: u8,
}

impl<'a> BitReader<'a> {
    fn new(input: &'a [u8]) -> R<Self> {
        let Some(&v) = input.last() else {
            return go("corrupt stream: too short");
        };
        if v == 0 {
            return go("corrupt stream, did not find end of stream");
        }
        let mut b = BitReader {
            input,
            off: input.len(),
            value: 0,
            bits_read: 64,
        };
        if input.len() >= 8 {
            let s = &input[b.off - 8..b.off];
            b.value = u64::from_le_bytes(s.try_into().unwrap());
            b.bits_read = 0;
            b.off -= 8;
        } else {
            b.fill();
            b.fill();
        }
        b.bits_read = b.bits_read.wrapping_add(8 - high_bits(u32::from(v)) as u8);
        Ok(b)
    }

    fn get_bits(&mut self, n: u8) -> u16 {
        if n == 0 || self.bits_read >= 64 {
            return 0;
        }
        self.get_bits_fast(n)
    }

    fn get_bits_fast(&mut self, n: u8) -> u16 {
        let v = ((self.value << (self.bits_read & 63)) >> ((64 - u32::from(n)) & 63)) as u16;
        self.bits_read = self.bits_read.wrapping_add(n);
        v
    }

    fn fill_fast(&mut self) {
        if self.bits_read < 32 {
            return;
        }
        let s = &self.input[self.off - 4..self.off];
        self.value = (self.value << 32) | u64::from(u32::from_le_bytes(s.try_into().unwrap()));
        self.bits_read -= 32;
        self.off -= 4;
    }

    fn fill(&mut self) {
        if self.bits_read < 32 {
            return;
        }
        if self.off > 4 {
            self.fill_fast();
            return;
        }
        while self.off > 0 {
            self.value = (self.value << 8) | u64::from(self.input[self.off - 1]);
            self.bits_read = self.bits_read.wrapping_sub(8);
            self.off -= 1;
        }
    }

    fn finished(&self) -> bool {
        self.bits_read >= 64 && self.off == 0
    }
}

/// Go's FSE `decoder`.
struct State {
    state: u16,
}

impl State {
    fn next(&mut self, br: &mut BitReader, dt: &[DecSymbol], fast: bool) -> R<u8> {
        let n = *dt.get(usize::from(self.state)).ok_or(Fault::Panic)?;
        let low = if fast {
            br.get_bits_fast(n.nb_bits)
        } else {
            br.get_bits(n.nb_bits)
        };
        self.state = n.new_state.wrapping_add(low);
        Ok(n.symbol)
    }

    fn finished(&self, br: &BitReader, dt: &[DecSymbol]) -> R<bool> {
        let n = dt.get(usize::from(self.state)).ok_or(Fault::Panic)?;
        Ok(br.finished() && n.nb_bits > 0)
    }
}

/// `Scratch.decompress` (counting the weights, not keeping them).
fn decode(input: &[u8], dt: &[DecSymbol], table_log: u8, zero_bits: bool) -> R<()> {
    let mut br = BitReader::new(input)?;
    let mut s1 = State {
        state: br.get_bits(table_log),
    };
    let mut s2 = State {
        state: br.get_bits(table_log),
    };
    let mut out = 0usize;
    let mut off = 0u8;
    let fast = !zero_bits;
    while br.off >= 8 {
        br.fill_fast();
        s1.next(&mut br, dt, fast)?;
        s2.next(&mut br, dt, fast)?;
        br.fill_fast();
        s1.next(&mut br, dt, fast)?;
        s2.next(&mut br, dt, fast)?;
        off = off.wrapping_add(4);
        if off == 0 {
            out += 256;
            if out >= DECOMPRESS_LIMIT {
                return go(format!(
                    "output size ({out}) > DecompressLimit ({DECOMPRESS_LIMIT})"
                ));
            }
        }
    }
    out += usize::from(off);
    loop {
        if s1.finished(&br, dt)? {
            break;
        }
        br.fill();
        s1.next(&mut br, dt, false)?;
        out += 1;
        if s2.finished(&br, dt)? {
            break;
        }
        s2.next(&mut br, dt, false)?;
        out += 1;
        if out >= DECOMPRESS_LIMIT {
            return go(format!(
                "output size ({out}) > DecompressLimit ({DECOMPRESS_LIMIT})"
            ));
        }
    }
    if br.bits_read > 64 {
        return go("unexpected EOF");
    }
    Ok(())
}
