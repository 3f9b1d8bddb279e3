//! PAX extended headers: Go's `parsePAX` and `parsePAXRecord`, and the records `mergePAX`
//! reads for the next entry.

use std::collections::BTreeMap;

use super::bad;
use super::numbers::parse_decimal;

/// PAX records by key: a later record with the same key replaces an earlier one, as in Go's
/// `map[string]string`. Ordered, so that with several bad records the one reported is the
/// same on every run (a `HashMap`'s random order made the message vary; the fuzzer saw it).
pub(super) type PaxMap = BTreeMap<Vec<u8>, Vec<u8>>;

/// Go's `mergePAX` for the fields that can fail or change the verdict; the size the entry
/// ends up with.
pub(super) fn merge_pax(pax: &PaxMap, mut size: i64, name: &mut Vec<u8>) -> Result<i64, String> {
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

/// Go's `parsePAX`: records of the form "%d %s=%s\n"; GNU sparse 0.0 offset/numbytes
/// records, which must alternate starting with an offset, become one `GNU.sparse.map`.
pub(super) fn parse_pax(mut data: &[u8]) -> Result<PaxMap, String> {
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
