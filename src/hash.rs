//! The hashing stage: one running digest over a byte stream, in the `algorithm:hex` form
//! that `go-digest` validates.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::{Error, ErrorKind};

/// A digest algorithm. SHA-256 is what image configs and manifests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u32)]
pub enum Algorithm {
    #[default]
    Sha256 = 0,
    Sha512 = 1,
    Blake3 = 2,
}

impl Algorithm {
    /// The name go-digest uses: `sha256`, `sha512`, `blake3`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Blake3 => "blake3",
        }
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            "blake3" => Ok(Algorithm::Blake3),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("unknown digest algorithm {s:?} (expected sha256, sha512 or blake3)"),
            )),
        }
    }
}

/// A finished digest: algorithm and lowercase hex, printed as `sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex encoding, without the algorithm prefix.
    pub fn hex(&self) -> &str {
        &self.hex
    }
}

/// Parses `algorithm:hex` as go-digest validates it: a known algorithm and exactly its number
/// of lowercase hex digits (64 for sha256 and blake3, 128 for sha512). Anything else is
/// [`ErrorKind::InvalidArgument`].
impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("{s:?} is not a digest: {why}"),
            )
        };
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| bad("expected algorithm:hex"))?;
        let algorithm: Algorithm = alg.parse()?;
        let len = match algorithm {
            Algorithm::Sha256 | Algorithm::Blake3 => 64,
            Algorithm::Sha512 => 128,
        };
        if hex.len() != len || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad(&format!("{alg} needs {len} lowercase hex digits")));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

/// A running digest and the number of bytes it has seen.
pub struct Hasher {
    state: State,
    len: u64,
}

enum State {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    // Boxed: blake3's state is ~2 KiB.
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Self {
        let state = match algorithm {
            Algorithm::Sha256 => State::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => State::Sha512(sha2::Sha512::new()),
            Algorithm::Blake3 => State::Blake3(Box::new(blake3::Hasher::new())),
        };
        Hasher { state, len: 0 }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        match &mut self.state {
            State::Sha256(h) => h.update(data),
            State::Sha512(h) => h.update(data),
            State::Blake3(h) => {
                h.update(data);
            }
        }
    }

    pub fn finish(self) -> (Digest, u64) {
        let (algorithm, bytes): (Algorithm, Vec<u8>) = match self.state {
            State::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            State::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
            State::Blake3(h) => (Algorithm::Blake3, h.finalize().as_bytes().to_vec()),
        };
        (
            Digest {
                algorithm,
                hex: to_hex(&bytes),
            },
            self.len,
        )
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers() {
        // Empty-input digests published by NIST (SHA-2) and the BLAKE3 reference.
        let cases = [
            (
                Algorithm::Sha256,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                Algorithm::Sha512,
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
            ),
            (
                Algorithm::Blake3,
                "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            ),
        ];
        for (alg, hex) in cases {
            let (d, n) = Hasher::new(alg).finish();
            assert_eq!(d.to_string(), format!("{}:{hex}", alg.name()));
            assert_eq!(n, 0);
        }
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(
            h.finish().0.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digests_parse_strictly() {
        let s = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.to_string(), s);
        for bad in [
            "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
            "sha256:ba7816bf",
            "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ] {
            assert_eq!(
                bad.parse::<Digest>().unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }
}
