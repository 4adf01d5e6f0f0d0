//! Depthwise 3x3 convolution: the driver (checks, padding, rows, threads) and its kernels.
//!
//! The driver maps each output row to its three input rows — a row in the top/bottom padding
//! points at a zero row — and makes one kernel call per output row. Left/right padding, channel
//! tiles and tails are the row kernel's job (see [`ukernel`]).
//!
//! Every row call covers all the channels. Measured and not kept (Emerald Rapids VM, AVX2,
//! `report dwconv3x3/avx2`, three alternating runs of each variant): cutting the channels into
//! blocks, all rows of a block before the next block, so that a block's weights and the input
//! rows shared by consecutive output rows stay in L1 (blocks sized to 16 or 32 KiB of 3 input
//! rows + 1 output row + weights). Best of run, % of peak, none / 16 KiB / 32 KiB: dw01 63 / 47 /
//! 47, dw02 29 / 14 / 13, dw03 57 / 34 / 41, dw05 75 / 57 / 63, dw07-dw11 74-75 / 58-59 / 66-68,
//! dw12 51 / 43 / 49, dw13 52 / 51 / 53: the rows' whole-pixel sequential reads, which the
//! prefetchers follow, are worth more than the reuse.
//!
//! Nor cutting the rows into strips of columns, every output row of a band through one strip
//! before the next (whole pixels, so the reads of a strip's rows stay sequential), so that the
//! input rows that consecutive output rows share (two at stride 1, one at stride 2; every
//! MobileNet v1 row is 28 KiB) stay in L1: same bits, slower at every strip width. Emerald
//! Rapids VM, AVX2, each layer hot, the two alternating in one process on the same buffers, 30
//! rounds, medians, strip / whole rows: 8 outputs per strip dw01 1.53, dw02 1.16, dw03 1.13,
//! dw04 1.09, dw05-dw07 1.03-1.07, dw12 1.02; 4 and 16 outputs 0.97-1.99, no layer below 0.97.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod portable;
pub mod ukernel;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::cell::RefCell;

use crate::buffer::AlignedBuf;
use crate::error::{Error, Result};
use crate::pack::{check_packed_for, pack_depthwise, DepthwiseWeights, WeightLayout};
use crate::params::{Conv3x3Params, Geometry};
use crate::tensor::{Shape, TensorView, TensorViewMut};
use crate::threading::run_bands;
use crate::Kernels;
use ukernel::{DwKernel, DwRow};

/// Below this many multiply-adds per thread a depthwise call stays on one thread.
const MIN_MACS_PER_THREAD: usize = 1 << 16;

thread_local! {
    /// A row of zeros standing in for input rows in the top/bottom padding.
    static ZERO_ROW: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::empty()) };
    /// Skewed copies of the input rows in use (see [`Skew`]).
    static SKEW_ROWS: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf::empty()) };
}

/// Input rows whose pixel stride is a multiple of 4 KiB (1024 channels, dense) put the same
/// channel slice of every pixel into one of L1's 64 sets: the 18 lines a kernel step reads
/// (3 rows x 6 pixels) then evict each other before both halves are used (on Zen 3, 7x7x1024 ran
/// at 21% of peak, 7x28x1008 at 46%). Such rows are copied, once each, into a ring of 3 slots
/// with the pixel stride padded by one line (`channels + PAD` floats), so consecutive pixels land
/// in consecutive sets: 7x7x1024 at 27-38% (best of run). An input already laid out that way
/// ([`crate::Shape::padded_strides`]) needs no copies: 0.76-0.79x the time of the copied dense
/// input (Cascade Lake, AVX2 and AVX-512, paired in one process).
struct Skew;

impl Skew {
    /// Padding of the skewed pixel stride, in floats (one 64-byte line).
    const PAD: usize = 16;

    /// Whether rows of this pixel stride (floats) get skewed copies: multiples of 4 KiB (1024
    /// channels), at stride 1 only, where each output row copies one new input row. Measured:
    /// at 2 KiB (512 channels) the copies lost on a Sapphire Rapids core (12-way 48 KiB L1:
    /// 41 -> 61 us on 14x14x512) and, since the row kernel's edge groups got constant output
    /// counts, on Zen 3 too (dw07-dw11 best of run 44-46 -> 39% of peak; they had gained 5-10%
    /// before); at stride 2 (two copied rows per output row) they lost on Zen 3 (14x14x512 s2:
    /// 25 -> 20% of peak).
    fn wanted(pixel_stride: usize, stride: usize) -> bool {
        stride == 1 && (pixel_stride * 4).is_multiple_of(4096)
    }
}

impl Kernels {
    /// Packs depthwise 3x3 weights once, for these kernels (either stride).
    ///
    /// `weights` holds `9 * channels` floats: `[3][3][channels]` for [`WeightLayout::Hwio`]
    /// (TensorFlow's `[3][3][channels][1]`), `[channels][3][3]` for [`WeightLayout::Oihw`]
    /// (PyTorch's `[channels][1][3][3]`). `bias`, when given, holds `channels` floats.
    pub fn pack_depthwise3x3(
        &self,
        weights: &[f32],
        layout: WeightLayout,
        bias: Option<&[f32]>,
        channels: usize,
    ) -> Result<DepthwiseWeights> {
        pack_depthwise(self.isa, self.dw_s1.c_tile, weights, layout, bias, channels)
    }

    /// Depthwise 3x3 convolution (channel multiplier 1) with fused bias and activation.
    ///
    /// `output` must have the shape [`Conv3x3Params::output_size`] gives, and the input's batch
    /// and channels.
    pub fn depthwise3x3(
        &self,
        input: &TensorView<'_>,
        weights: &DepthwiseWeights,
        params: &Conv3x3Params,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (min, max) = params.activation.bounds()?;
        let (i, o) = (input.shape, output.shape);
        let g = params.geometry(i.h, i.w)?;
        let kernel = self.dw_kernel(g.stride);
        check_packed_for((weights.isa, weights.c_tile), (self.isa, kernel.c_tile))?;
        expect("weights channels", i.c, weights.channels)?;
        expect("output batch", i.n, o.n)?;
        expect("output channels", i.c, o.c)?;
        expect("output height", g.out_h, o.h)?;
        expect("output width", g.out_w, o.w)?;

        // One piece of the output per output row, in memory order (cut lazily: no allocation).
        let os = output.strides;
        let rows = (0..o.n * o.h).map(move |r| {
            let (n, y) = (r / o.h, r % o.h);
            ((n, y), n * os.batch + y * os.row)
        });
        let macs = 9 * o.n * o.h * o.w * o.c;
        let threads = (macs / MIN_MACS_PER_THREAD).clamp(1, self.threads);

        let skew = Skew::wanted(input.strides.pixel, g.stride);
        // Pixel stride of the rows the kernel reads: the input's, or the skewed copies'.
        let row_stride = if skew {
            i.c + Skew::PAD
        } else {
            input.strides.pixel
        };
        let row_len = (i.w - 1) * row_stride + i.c;
        let call = RowCall::new(i, row_stride, &g, o, output.strides.pixel, (min, max));
        run_bands(self.threads, threads, output.data, rows, |part| {
            ZERO_ROW.with(|z| {
                SKEW_ROWS.with(|sk| {
                    let mut zero = z.borrow_mut();
                    if zero.len() < row_len {
                        *zero = AlignedBuf::zeroed(row_len);
                    }
                    let mut ring = sk.borrow_mut();
                    if skew && ring.len() < 3 * row_len {
                        *ring = AlignedBuf::zeroed(3 * row_len);
                    }
                    // Input row (image, y) held by each ring slot. Row y lives in slot y % 3:
                    // the three consecutive input rows of a stride-1 output row never collide.
                    let mut held = [(usize::MAX, usize::MAX); 3];
                    for ((n, oy), out) in part {
                        let iys: [usize; 3] =
                            std::array::from_fn(|ky| (oy * g.stride + ky).wrapping_sub(g.pad_top));
                        if skew {
                            for &iy in iys.iter().filter(|&&iy| iy < i.h) {
                                if held[iy % 3] != (n, iy) {
                                    held[iy % 3] = (n, iy);
                                    let dst = &mut ring[iy % 3 * row_len..][..row_len];
                                    let src = &input.data[input.offset(n, iy, 0)..];
                                    for x in 0..i.w {
                                        dst[x * row_stride..][..i.c].copy_from_slice(
                                            &src[x * input.strides.pixel..][..i.c],
                                        );
                                    }
                                }
                            }
                        }
                        let row = |ky: usize| {
                            let iy = iys[ky];
                            if iy >= i.h {
                                &zero[..row_len]
                            } else if skew {
                                &ring[iy % 3 * row_len..][..row_len]
                            } else {
                                &input.data[input.offset(n, iy, 0)..][..row_len]
                            }
                        };
                        call.run(kernel, [row(0), row(1), row(2)], weights, out);
                    }
                });
            });
        });
        Ok(())
    }
}

impl Kernels {
    /// One output row of [`Kernels::depthwise3x3`] from its three input rows, wherever they are:
    /// for engines that hold rows in buffers of their own (a ring of rows in a layer-fused
    /// pipeline, where consecutive rows need not be one stride apart).
    ///
    /// `rows[ky]` is input row `oy * stride - pad_top + ky` of output row `oy`, or `None` where
    /// that row is in the top or bottom zero padding. Each given row is a `1 x 1 x W x C` view,
    /// all with the same width, channels and pixel stride, and at least one is given. `output`
    /// is `1 x 1 x OW x C`. Of `params`, the stride, the activation and the left/right padding
    /// apply (which rows are padding is the caller's choice). The result is bit for bit that
    /// row of a [`Kernels::depthwise3x3`] call over the whole image.
    pub fn depthwise3x3_row(
        &self,
        rows: [Option<&TensorView<'_>>; 3],
        weights: &DepthwiseWeights,
        params: &Conv3x3Params,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (min, max) = params.activation.bounds()?;
        let first = rows.iter().flatten().next().ok_or(Error::ZeroDimension {
            what: "input rows given",
        })?;
        let (i, stride) = (first.shape, first.strides.pixel);
        expect("input row batch", 1, i.n)?;
        expect("input row height", 1, i.h)?;
        for r in rows.iter().flatten() {
            expect("input row width", i.w, r.shape.w)?;
            expect("input row channels", i.c, r.shape.c)?;
            expect("input row pixel stride", stride, r.strides.pixel)?;
        }
        let g = params.geometry(3, i.w)?;
        let kernel = self.dw_kernel(g.stride);
        check_packed_for((weights.isa, weights.c_tile), (self.isa, kernel.c_tile))?;
        expect("weights channels", i.c, weights.channels)?;
        let o = output.shape;
        expect("output batch", 1, o.n)?;
        expect("output height", 1, o.h)?;
        expect("output width", g.out_w, o.w)?;
        expect("output channels", i.c, o.c)?;
        let row_len = (i.w - 1) * stride + i.c;
        ZERO_ROW.with(|z| {
            let mut zero = z.borrow_mut();
            if zero.len() < row_len {
                *zero = AlignedBuf::zeroed(row_len);
            }
            let rows = rows.map(|r| r.map_or(&zero[..row_len], |r| &r.data[..row_len]));
            let call = RowCall::new(i, stride, &g, o, output.strides.pixel, (min, max));
            call.run(kernel, rows, weights, output.data);
        });
        Ok(())
    }
}

/// What every row kernel call of one layer shares: the arguments of [`DwRow`] but the rows,
/// the output and the weights.
#[derive(Clone, Copy)]
struct RowCall {
    /// Pixels of `channels` floats in each input row, `in_stride` floats apart.
    in_width: usize,
    in_stride: usize,
    channels: usize,
    pad_left: usize,
    out_width: usize,
    out_stride: usize,
    min: f32,
    max: f32,
}

impl RowCall {
    /// The calls of input `i` (pixel stride `in_stride`) to output `o` (`out_stride`) with
    /// geometry `g`, clamped to `[min, max]`.
    fn new(
        i: Shape,
        in_stride: usize,
        g: &Geometry,
        o: Shape,
        out_stride: usize,
        (min, max): (f32, f32),
    ) -> RowCall {
        RowCall {
            in_width: i.w,
            in_stride,
            channels: i.c,
            pad_left: g.pad_left,
            out_width: o.w,
            out_stride,
            min,
            max,
        }
    }

    /// Computes output row `out` (`out_width` pixels at stride `out_stride`) from input rows
    /// `ky = 0, 1, 2` (a zero row for those in the padding) with `kernel`.
    ///
    /// # Panics
    /// If a slice is shorter than its extent, or the weights do not cover `channels` with the
    /// kernel's tile: the public functions check all of it first (this is the last guard
    /// before the `unsafe` call).
    fn run(
        &self,
        kernel: &DwKernel,
        rows: [&[f32]; 3],
        weights: &DepthwiseWeights,
        out: &mut [f32],
    ) {
        let in_len = (self.in_width - 1) * self.in_stride + self.channels;
        let out_len = (self.out_width - 1) * self.out_stride + self.channels;
        assert!(
            rows.iter().all(|r| r.len() >= in_len)
                && self.in_stride >= self.channels
                && self.out_stride >= self.channels
                && self.pad_left <= 2
                && out.len() >= out_len
                && weights.c_tile == kernel.c_tile
                && weights.channels >= self.channels
                && weights.data.as_slice().len()
                    >= self.channels.div_ceil(kernel.c_tile) * 10 * kernel.c_tile
        );
        let row = DwRow {
            rows: rows.map(<[f32]>::as_ptr),
            in_width: self.in_width,
            pad_left: self.pad_left,
            out_width: self.out_width,
            channels: self.channels,
            in_stride: self.in_stride,
            out: out.as_mut_ptr(),
            out_stride: self.out_stride,
            weights: weights.data.as_slice().as_ptr(),
            min: self.min,
            max: self.max,
        };
        // SAFETY: `kernel` came from a `Kernels`, which proves its ISA is available (callers
        // pass their own `dw_kernel`). Each row holds `in_width` pixels of `channels` floats at
        // stride `in_stride` (checked above); `out` is a `&mut` slice covering `out_width`
        // pixels at `out_stride`, so it aliases no input; the weights were packed for this tile
        // (checked above; the ISA by the callers) and hold whole tiles for `channels`;
        // `pad_left <= 2`, and every output column sees an input column
        // (`Conv3x3Params::geometry`, which gave `pad_left` and `out_width`).
        unsafe { (kernel.func)(&row) };
    }
}

/// `Err(ShapeMismatch)` unless `got == expected`.
pub(crate) fn expect(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::ShapeMismatch {
            what,
            expected,
            got,
        });
    }
    Ok(())
}
