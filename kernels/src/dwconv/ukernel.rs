//! The depthwise 3x3 micro-kernel contract: a block of `1 ..= rows_per_call` consecutive output
//! rows of one image, all channels.
//!
//! The portable driver (`dwconv/mod.rs`) validates shapes, resolves padding, cuts each image into
//! blocks of [`DwKernel::rows_per_call`] output rows, maps each block to its window of
//! `(out_rows - 1) * stride + 3` input rows (a row that falls in the top/bottom padding points at a
//! row of zeros), splits blocks over threads and makes one call per block. The per-ISA kernel owns
//! everything inside a block: the order of rows, the channel-tile loop, the left border, the
//! branch-free interior, the right border, and the channel tail. Every output must be computed by
//! the same arithmetic whichever block (and whichever position in it) it falls in, so results do
//! not depend on how rows are cut into blocks or spread over threads.
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

/// Most input rows a call's window can hold: `(rows_per_call - 1) * stride + 3 <=` this.
pub const MAX_WINDOW_ROWS: usize = 9;

/// Arguments of one depthwise call: `out_rows` consecutive output rows.
#[derive(Clone, Copy, Debug)]
pub struct DwRow {
    /// The input rows of the window: output row `r` of the block (`r < out_rows`) reads rows
    /// `rows[r * stride + ky]` for ky = 0, 1, 2; entries past `(out_rows - 1) * stride + 3` are
    /// unused (and may be null). Each points at column 0, channel 0 of its row. A row in the
    /// top/bottom padding points at a zero row of the same extent. Column `x`, channel `c` of
    /// window row `i` is at `rows[i] + x * in_stride + c`. With `out_rows == 1` the kernel reads
    /// `rows[0..3]` only, as in a one-row call.
    pub rows: [*const f32; MAX_WINDOW_ROWS],
    /// Output rows in this call (`1 ..= rows_per_call` of the kernel).
    pub out_rows: usize,
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
    /// First output row: output row `r` of the block, column `ox`, channel `c` is at
    /// `out + r * out_row_stride + ox * out_stride + c`.
    pub out: *mut f32,
    /// Distance between output rows in floats (`>= (out_width - 1) * out_stride + channels`
    /// when `out_rows > 1`; unused otherwise).
    pub out_row_stride: usize,
    /// Distance between output pixels in floats (`>= channels`).
    pub out_stride: usize,
    /// Packed weights (see the module docs), `ceil(channels / C_TILE) * 10 * C_TILE` floats.
    pub weights: *const f32,
    /// Lower bound of the fused activation (`-inf` for none).
    pub min: f32,
    /// Upper bound of the fused activation (`+inf` for none).
    pub max: f32,
}

/// A depthwise 3x3 kernel for one stride: `out_rows` output rows per call.
///
/// # Safety
///
/// The caller guarantees: the kernel's ISA is available on this CPU;
/// `1 <= out_rows <= rows_per_call`; each `rows[i]`, `i < (out_rows - 1) * stride + 3`, is
/// readable at `x * in_stride + c` for `x < in_width`, `c < channels`; `weights` holds the packed
/// tiles for `channels` with this kernel's `C_TILE`; `out` is writable at
/// `r * out_row_stride + ox * out_stride + c` for `r < out_rows`, `ox < out_width`,
/// `c < channels`, those ranges of different rows do not overlap, and none aliases the inputs;
/// `pad_left <= 2`.
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
    /// Most output rows the kernel computes per call (`>= 1`; the window of
    /// `(rows_per_call - 1) * stride + 3` rows fits [`MAX_WINDOW_ROWS`]).
    pub rows_per_call: usize,
    /// Stride-1 calls only: when the input's pixel stride is a multiple of 2 KiB (512, 1024, ...
    /// channels), the driver first copies each input row once into a per-thread scratch ring
    /// with a pixel stride of `round_up(channels, 16) + 16` floats, so that the lines of
    /// neighbouring pixels at one channel offset do not all fall into one or two L1 sets. The
    /// kernel sees only another `in_stride`.
    pub skew_aliased_rows: bool,
    /// The row kernel.
    pub(crate) func: DwRowFn,
}
