//! Recycled chunk buffers: a chunk goes back to its pool when its last holder drops it, so
//! the pipeline allocates a handful of buffers per call, not one per chunk.

use crossbeam_channel::{Receiver, Sender, bounded};

/// Chunk size of every stage: large enough for SHA-NI to run at full speed, small enough to
/// stay in L2 between stages.
pub(crate) const CHUNK: usize = 512 * 1024;

/// A pool of equal-sized buffers. Cheap to clone; clones share the buffers.
#[derive(Clone)]
pub(crate) struct Pool {
    free_tx: Sender<Vec<u8>>,
    free_rx: Receiver<Vec<u8>>,
    size: usize,
}

impl Pool {
    /// A pool of `size`-byte buffers keeping at most `keep` idle ones.
    pub(crate) fn new(size: usize, keep: usize) -> Self {
        let (free_tx, free_rx) = bounded(keep);
        Pool {
            free_tx,
            free_rx,
            size,
        }
    }

    /// An empty buffer (`len() == 0`, capacity `size`), recycled when one is idle.
    pub(crate) fn get(&self) -> Buf {
        let data = self
            .free_rx
            .try_recv()
            .unwrap_or_else(|_| vec![0; self.size]);
        Buf {
            data,
            len: 0,
            home: Some(self.free_tx.clone()),
        }
    }
}

/// A buffer of the pool: `data[..len]` holds bytes.
pub(crate) struct Buf {
    data: Vec<u8>,
    len: usize,
    home: Option<Sender<Vec<u8>>>,
}

impl Buf {
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.data.len()
    }

    /// The unfilled part, to write into; then call [`Buf::advance`].
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        &mut self.data[self.len..]
    }

    pub(crate) fn advance(&mut self, n: usize) {
        assert!(self.len + n <= self.data.len());
        self.len += n;
    }

    /// Appends as much of `src` as fits; returns how much did.
    pub(crate) fn fill_from(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.data.len() - self.len);
        self.data[self.len..self.len + n].copy_from_slice(&src[..n]);
        self.len += n;
        n
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            // A full pool just lets the buffer go.
            let _ = home.try_send(std::mem::take(&mut self.data));
        }
    }
}
