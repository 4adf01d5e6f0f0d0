//! x86_64 depthwise 3x3 kernels, and the group-size choice they share.

pub mod avx2;
pub mod avx512;
mod row;

use crate::dwconv::ukernel::DwRow;
use row::{row_groups, RowLanes};

/// Ways of the L1 data cache (Zen 3, and Intel since Sandy Bridge: 32 KiB, 8 ways, 64 sets).
pub(super) const L1_WAYS: usize = 8;

/// The most lines of one group-and-tile step in a single L1 set for which groups of 4 can still
/// win on an 8-way L1. Measured on Zen 3 (AVX2) with 64-byte-aligned rows (best of run, % of
/// peak, groups of 4 vs 2): 512 channels at stride 1 (9 lines per set against 6) 43 vs 36; at
/// stride 2 (15 against 9) 31-32 vs 28-30 on 14x14, level on 28x28; 1024 channels at stride 2
/// (27) 20 vs 22-23. Each line of a step is read whole, back to back, so a set holding more
/// lines than its ways costs little until the lines in flight outnumber them about twice. At
/// stride 2, though, groups of 2 win when they fit the ways: 256 channels (9 lines against 6)
/// 38 vs 33-34.
const ALIASED_LINES_OK: usize = 2 * L1_WAYS;

/// The group-size rule for an 8-way L1 (Zen 3, and Intel cores before Sapphire Rapids): groups
/// of 4 (`true`) unless a group of 4 puts more lines into one L1 set than the ways and either
/// more than twice the ways, or at stride 2 where groups of 2 fit the ways (their input reuse
/// is closer to that of 4). `g4` / `g2`: [`lines_per_set`] for groups of 4 / 2. Measured for
/// the AVX2 kernel on Zen 3 (see [`ALIASED_LINES_OK`]) and for the AVX-512 kernel on a Cascade
/// Lake core (see `avx512.rs`).
pub(super) fn groups_of_four_8_ways(g4: usize, g2: usize, stride: usize) -> bool {
    g4 <= L1_WAYS || g4 <= g2 || (g4 <= ALIASED_LINES_OK && (stride == 1 || g2 > L1_WAYS))
}

/// One row with the 8-way-L1 group rule: [`groups_of_four_8_ways`] picks groups of 4 or 2,
/// then [`row_groups`] runs the row. Both ISA files call it from their `#[target_feature]`
/// function (AVX2 always, AVX-512 on cores with an 8-way L1), where it inlines.
///
/// # Safety
///
/// The `DwRowFn` contract with `C_TILE = 2 * X::LANES` and stride `S`; the CPU has `X`'s ISA,
/// and the caller is that ISA's `#[target_feature]` function.
#[inline(always)]
unsafe fn row_8_ways<X: RowLanes, const S: usize>(r: &DwRow) {
    let (g4, g2) = (lines_per_set(r, S, 4), lines_per_set(r, S, 2));
    if groups_of_four_8_ways(g4, g2, S) {
        // SAFETY: forwarded (the caller's contract).
        unsafe { row_groups::<X, S, 4>(r) }
    } else {
        // SAFETY: forwarded (the caller's contract).
        unsafe { row_groups::<X, S, 2>(r) }
    }
}

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
    let window = row::window(stride, group).min(r.in_width);
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
