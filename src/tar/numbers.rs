//! The numbers of tar headers and records, as Go's `archive/tar` parses them: NUL-terminated
//! fields, octal, base-256 and decimal.

/// The bytes of a NUL-terminated field up to its first NUL.
pub(super) fn c_string(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|&b| b == 0)
        .map_or(field, |n| &field[..n])
}

/// Go's `parser.parseNumeric`: base-256 when the high bit of the first byte is set,
/// octal otherwise. `None` where Go sets `ErrHeader`.
pub(super) fn parse_numeric(field: &[u8]) -> Option<i64> {
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
pub(super) fn parse_octal(field: &[u8]) -> Option<i64> {
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
pub(super) fn parse_decimal(s: &[u8]) -> Option<i64> {
    std::str::from_utf8(s).ok()?.parse::<i64>().ok()
}

/// A count of sparse entries as Go reads it: `ParseInt`, not negative, and twice it must
/// not overflow.
pub(super) fn parse_count(s: &[u8]) -> Option<u64> {
    parse_decimal(s)
        .filter(|&n| (0..1 << 62).contains(&n))
        .map(|n| n as u64)
}
