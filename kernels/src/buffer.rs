//! [`AlignedBuf`]: `f32` storage that starts on a cache line.
//!
//! Not on huge pages. Measured on an Emerald Rapids VM (transparent huge pages in `madvise`
//! mode, so none by default): with THP forced on and every buffer of 256 KiB or more placed on
//! 2 MiB boundaries (37 of 56 MB of a MobileNet v1 run's memory on huge pages), the classifier
//! (4 MiB of weights, from L3 or DRAM in every inference) took 2-9% less time in each of four
//! alternating pairs of runs, the whole inference stayed within the VM's noise. Not worth an
//! `mmap`/`madvise` dependency and the memory rounding; an engine that wants it can allocate its
//! activations so.

use std::ops::{Deref, DerefMut};

/// A zero-initialised, fixed-length `f32` buffer whose first element sits on a 64-byte boundary
/// (a cache line). Use it for activations: then every pixel whose channel offset is a multiple of
/// 16 floats starts a line, and the kernels' vector loads and stores never straddle two lines.
/// A `Vec<f32>` of more than a few hundred KiB usually starts 16 bytes past a page boundary (the
/// allocator's header), so its 32- and 64-byte vectors straddle lines: measured on Zen 3, the
/// AVX2 depthwise kernel ran 15-30% slower on such buffers than on aligned ones.
///
/// Safe code: the backing `Vec` is over-allocated by one line and never reallocated; cloning
/// re-aligns. Packed weights are stored in it too.
///
/// ```
/// let mut x = sepconv::AlignedBuf::zeroed(1000);
/// assert_eq!(x.as_ptr() as usize % 64, 0);
/// x[3] = 1.0;
/// assert_eq!(x.len(), 1000);
/// ```
#[derive(Debug)]
pub struct AlignedBuf {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    const LINE_FLOATS: usize = 16;

    /// An empty buffer (no allocation), for `const` contexts such as thread-local scratch.
    pub(crate) const fn empty() -> AlignedBuf {
        AlignedBuf {
            buf: Vec::new(),
            off: 0,
            len: 0,
        }
    }

    /// `len` zeros, the first on a 64-byte boundary.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let buf = vec![0.0f32; len + Self::LINE_FLOATS];
        let misalign = (buf.as_ptr() as usize % 64) / 4;
        let off = (Self::LINE_FLOATS - misalign) % Self::LINE_FLOATS;
        AlignedBuf { buf, off, len }
    }

    /// A copy of `data`, the first element on a 64-byte boundary.
    pub fn from_slice(data: &[f32]) -> AlignedBuf {
        let mut b = AlignedBuf::zeroed(data.len());
        b.copy_from_slice(data);
        b
    }

    /// The floats.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// The floats, writable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }
}

impl Deref for AlignedBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        self.as_mut_slice()
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> Self {
        AlignedBuf::from_slice(self)
    }
}

impl Default for AlignedBuf {
    fn default() -> Self {
        AlignedBuf::empty()
    }
}
