//! What the decoders' unit tests share: a deterministic generator and payloads built from it,
//! and the reference programs (`xz`, `bzip2`, `zstd`) run on bytes.

use std::io::Write;
use std::process::{Command, Stdio};

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Compressible but not trivial data of `len` bytes: `words`, and one time in `one_in` a run
/// of up to `max_random` random bytes.
pub(super) fn payload_of(
    len: usize,
    seed: u64,
    words: &[&[u8]],
    one_in: usize,
    max_random: usize,
) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut v = Vec::with_capacity(len + 32);
    while v.len() < len {
        match rng.below(one_in) {
            0 => v.extend((0..rng.below(max_random)).map(|_| rng.next() as u8)),
            _ => v.extend_from_slice(words[rng.below(words.len())]),
        }
    }
    v.truncate(len);
    v
}

/// Runs `program args` with `data` on its standard input: its output when it succeeds.
pub(super) fn run_tool(program: &str, args: &[&str], data: &[u8]) -> Option<Vec<u8>> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("the {program} program must be installed to run these tests: {e}")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    // The program may stop reading when it rejects the input.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out.status.success().then_some(out.stdout)
}

/// `program -c -q args` on `data`: the compressed bytes.
pub(super) fn compress_with(program: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    let mut all = vec!["-c", "-q"];
    all.extend_from_slice(args);
    run_tool(program, &all, data).unwrap_or_else(|| panic!("{program} {args:?} failed"))
}
