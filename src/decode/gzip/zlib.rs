//! Raw deflate through zlib-rs (`flate2`'s raw `Decompress`): the pure-Rust backend, used when
//! the crate is built without the `isal` feature (and by the tests, as the reference the ISA-L
//! backend is compared with). The CRC32 is computed here with `crc32fast`.

use flate2::{Decompress, FlushDecompress, Status};

use super::{Inflate, InflateError, InflateFault, Step};

pub(crate) struct ZlibInflater {
    inflate: Decompress,
    crc: crc32fast::Hasher,
}

impl Inflate for ZlibInflater {
    const NAME: &'static str = "zlib-rs";

    fn new() -> Self {
        ZlibInflater {
            inflate: Decompress::new(false),
            crc: crc32fast::Hasher::new(),
        }
    }

    fn reset(&mut self) {
        self.inflate.reset(false);
        self.crc = crc32fast::Hasher::new();
    }

    fn inflate(&mut self, input: &[u8], output: &mut [u8]) -> Result<Step, InflateError> {
        let (in0, out0) = (self.inflate.total_in(), self.inflate.total_out());
        let status = self
            .inflate
            .decompress(input, output, FlushDecompress::None);
        let consumed = (self.inflate.total_in() - in0) as usize;
        let produced = (self.inflate.total_out() - out0) as usize;
        self.crc.update(&output[..produced]);
        let end = match status {
            Ok(Status::StreamEnd) => true,
            Ok(Status::Ok | Status::BufError) => false,
            Err(e) => {
                // zlib's messages for a bad code ("invalid code lengths set", "invalid
                // literal/lengths set", "invalid distances set") do not tell an incomplete
                // code from an over-subscribed one.
                return Err(InflateError {
                    consumed,
                    what: e.to_string(),
                    fault: InflateFault::Other,
                });
            }
        };
        Ok(Step {
            consumed,
            produced,
            end,
        })
    }

    fn crc(&self) -> u32 {
        self.crc.clone().finalize()
    }

    /// zlib stops reading exactly where the deflate data ends: nothing was taken beyond it.
    fn leftover(&mut self) -> ([u8; 8], usize) {
        ([0; 8], 0)
    }
}
