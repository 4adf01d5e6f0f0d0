//! x86_64 depthwise 3x3 kernels, and the group-size choice they share.

pub mod avx2;
pub mod avx512;
mod row;

use crate::dwconv::ukernel::DwRow;

/// Ways of the L1 data cache (Zen 3, and Intel since Sandy Bridge: 32 KiB, 8 ways, 64 sets).
pub(super) const L1_WAYS: usize = 8;

/// The most input lines that one group-and-tile step of `group` outputs maps to a single L1 set
/// (64-byte lines, 64 sets), assuming the three input rows map alike (they do when a row is a
/// multiple of 4 KiB, as in MobileNet). Depends only on the geometry, so every row of a layer
/// makes the same choice.
///
/// Each step reads `3 x window` pixels of one 64-byte channel slice within a few hundred cycles.
/// When the pixel stride is a multiple of 4 KiB (1024 channels) or 2 KiB (512), those lines fall
/// into 1 or 2 sets; past some count per set (each kernel's `row` says which) the lines of a
/// step evict each other before they are used, and such rows use groups of 2.
pub(super) fn lines_per_set(r: &DwRow, stride: usize, group: usize) -> usize {
    // Called for every row: a 64-byte table and a running maximum keep it to a few dozen
    // instructions (a table of `usize` and a pass for the maximum cost a 14-pixel row 20%).
    let window = ((group - 1) * stride + 3).min(r.in_width);
    let mut count = [0u8; 64];
    let mut most = 0;
    let mut last_line = usize::MAX;
    for j in 0..window {
        // Pixels of fewer than 16 channels share lines: count each line once.
        let line = j.wrapping_mul(r.in_stride).wrapping_mul(4) >> 6;
        if line != last_line {
            count[line & 63] += 3;
            most = most.max(count[line & 63]);
            last_line = line;
        }
    }
    usize::from(most)
}
