//! The depthwise 3x3 micro-kernel contract: one output row, all channels.
//!
//! The portable driver (`dwconv/mod.rs`) validates shapes, resolves padding, maps each output row to
//! its three input rows (a row that falls in the top/bottom padding points at a row of zeros), splits
//! rows over threads and makes one call per output row. The per-ISA kernel owns everything inside a
//! row: the channel-tile loop, the left border, the branch-free interior, the right border, and the
//! channel tail.
//!
//! # Packed weights, built once by [`crate::pack`]
//!
//! Channels are cut into tiles of `C_TILE` channels; the last tile is zero-padded to `C_TILE`.
//! Each tile stores the bias, then the nine taps in row-major (ky, kx) order:
//!
//! ```text
//!  tile t (channels t*C_TILE .. t*C_TILE+C_TILE):
//!  +----------------------------+
//!  | bias        [C_TILE]       |
//!  | w(ky0,kx0)  [C_TILE]       |
//!  | w(ky0,kx1)  [C_TILE]       |
//!  | ...                        |
//!  | w(ky2,kx2)  [C_TILE]       |
//!  +----------------------------+  tile stride = 10 * C_TILE floats
//! ```

/// Arguments of one depthwise row call.
#[derive(Clone, Copy, Debug)]
pub struct DwRow {
    /// The three input rows used by this output row, for ky = 0, 1, 2. Each points at column 0,
    /// channel 0 of its row. A row in the top/bottom padding points at a zero row of the same
    /// extent. Column `x`, channel `c` of row `r` is at `rows[r] + x * in_stride + c`.
    pub rows: [*const f32; 3],
    /// Columns in the input row (`>= 1`).
    pub in_width: usize,
    /// Implicit zero columns before input column 0 (`0 ..= 2`). Output column `ox` reads input
    /// columns `ox * stride - pad_left + kx` for `kx` in `0..3`; columns outside `0 .. in_width`
    /// are zeros and must not be read.
    pub pad_left: usize,
    /// Output columns to produce (`>= 1`). Every output column has at least one input column
    /// in range (the driver guarantees it).
    pub out_width: usize,
    /// Channels (`>= 1`).
    pub channels: usize,
    /// Distance between input pixels in floats (`>= channels`).
    pub in_stride: usize,
    /// Output row: column `ox`, channel `c` at `out + ox * out_stride + c`.
    pub out: *mut f32,
    /// Distance between output pixels in floats (`>= channels`).
    pub out_stride: usize,
    /// Packed weights (see the module docs), `ceil(channels / C_TILE) * 10 * C_TILE` floats.
    pub weights: *const f32,
    /// Lower bound of the fused activation (`-inf` for none).
    pub min: f32,
    /// Upper bound of the fused activation (`+inf` for none).
    pub max: f32,
}

/// A depthwise 3x3 row kernel for one stride.
///
/// # Safety
///
/// The caller guarantees: the kernel's ISA is available on this CPU; each `rows[r]` is readable at
/// `x * in_stride + c` for `x < in_width`, `c < channels`; `weights` holds the packed tiles for
/// `channels` with this kernel's `C_TILE`; `out` is writable at `ox * out_stride + c` for
/// `ox < out_width`, `c < channels` and does not alias the inputs; `pad_left <= 2`.
/// The kernel must not touch memory outside those ranges (no over-read at channel or column tails).
///
/// Clamp semantics (same on every ISA): `y = if y < min { min } else { y }` then
/// `y = if y > max { max } else { y }` — a NaN stays NaN.
pub type DwRowFn = unsafe fn(&DwRow);

/// One depthwise 3x3 kernel variant, as listed in the registry.
#[derive(Debug)]
pub struct DwKernel {
    /// Name, `dwconv3x3[s2]_f32_c<C_TILE>_<isa>`.
    pub name: &'static str,
    /// The ISA the kernel needs.
    pub isa: crate::Isa,
    /// Stride (1 or 2) the kernel implements, in both directions.
    pub stride: usize,
    /// Channel tile of the packed weights.
    pub c_tile: usize,
    /// The row kernel.
    pub(crate) func: DwRowFn,
}
