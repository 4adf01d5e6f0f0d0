//! Depthwise 3x3 convolution: the driver (checks, padding, rows, threads) and its kernels.
//!
//! The driver cuts each image into blocks of the kernel's `rows_per_call` output rows, maps each
//! block to its window of input rows — a row in the top/bottom padding points at a zero row —
//! and makes one kernel call per block; threads take contiguous runs of blocks. Left/right
//! padding, channel tiles and tails are the kernel's job (see [`ukernel`]).

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
pub mod portable;
pub mod ukernel;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::cell::RefCell;

use crate::error::{Error, Result};
use crate::pack::{check_packed_for, pack_depthwise, DepthwiseWeights, WeightLayout};
use crate::params::Conv3x3Params;
use crate::tensor::{TensorView, TensorViewMut};
use crate::threading::run_bands;
use crate::Kernels;
use ukernel::{DwRow, MAX_WINDOW_ROWS};

/// Below this many multiply-adds per thread a depthwise call stays on one thread.
const MIN_MACS_PER_THREAD: usize = 1 << 16;

thread_local! {
    /// A row of zeros standing in for input rows in the top/bottom padding.
    static ZERO_ROW: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Copies of input rows with a skewed pixel stride, and which `(image, row)` each slot holds.
    static SCRATCH: RefCell<(Vec<f32>, Vec<usize>)> = const { RefCell::new((Vec::new(), Vec::new())) };
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

        // One piece of the output per block of up to `rows_per_call` rows of one image, in
        // memory order.
        let rpc = kernel.rows_per_call.max(1);
        assert!((rpc - 1) * g.stride + 3 <= MAX_WINDOW_ROWS);
        let per_image = o.h.div_ceil(rpc);
        let os = output.strides;
        let blocks = (0..o.n * per_image).map(move |b| {
            let (n, y) = (b / per_image, b % per_image * rpc);
            ((n, y, rpc.min(o.h - y)), n * os.batch + y * os.row)
        });
        let out_row_len = (o.w - 1) * output.strides.pixel + o.c;
        let out_row_stride = output.strides.row;
        let macs = 9 * o.n * o.h * o.w * o.c;
        let threads = (macs / MIN_MACS_PER_THREAD).clamp(1, self.threads);

        // Rows whose pixels are a multiple of 2 KiB apart map every pixel's line at one channel
        // offset into one or two L1 sets; such rows are copied once into a scratch ring with a
        // stride that is not (see `DwKernel::skew_aliased_rows`).
        let skew = kernel.skew_aliased_rows
            && g.stride == 1
            && (input.strides.pixel * std::mem::size_of::<f32>()) & 2047 == 0;
        // Pixel stride of the copied rows: channels rounded up to 16 (whole 64-byte lines), plus
        // 16 floats, so that neighbouring pixels start one line (set) apart.
        let sp = if skew {
            i.c.div_ceil(16) * 16 + 16
        } else {
            input.strides.pixel
        };
        let in_stride = sp;
        let in_row_len = (i.w - 1) * sp + i.c;
        let src_row_len = (i.w - 1) * input.strides.pixel + i.c;
        let slots = (rpc - 1) * g.stride + 3;
        let slot_len = i.w * sp;
        run_bands(self.threads, threads, output.data, blocks, |part| {
            ZERO_ROW.with(|z| {
                SCRATCH.with(|sc| {
                    let mut zero = z.borrow_mut();
                    if zero.len() < in_row_len {
                        zero.resize(in_row_len, 0.0);
                    }
                    let mut sc = sc.borrow_mut();
                    let (buf, tags) = &mut *sc;
                    if skew {
                        if buf.len() < slots * slot_len + 16 {
                            buf.resize(slots * slot_len + 16, 0.0);
                        }
                        tags.clear();
                        tags.resize(slots, usize::MAX);
                    }
                    let base = buf.as_ptr().align_offset(64).min(15);
                    for ((n, oy, out_rows), out) in part {
                        let window = (out_rows - 1) * g.stride + 3;
                        let mut rows = [std::ptr::null(); MAX_WINDOW_ROWS];
                        if skew {
                            for wy in 0..window {
                                let iy = (oy * g.stride + wy).wrapping_sub(g.pad_top);
                                if iy < i.h {
                                    let key = n * i.h + iy;
                                    let slot = key % slots;
                                    if tags[slot] != key {
                                        tags[slot] = key;
                                        let src =
                                            &input.data[input.offset(n, iy, 0)..][..src_row_len];
                                        let dst = &mut buf[base + slot * slot_len..][..slot_len];
                                        for x in 0..i.w {
                                            dst[x * sp..x * sp + i.c].copy_from_slice(
                                                &src[x * input.strides.pixel..][..i.c],
                                            );
                                        }
                                    }
                                }
                            }
                        }
                        for (wy, p) in rows.iter_mut().enumerate().take(window) {
                            let iy = (oy * g.stride + wy).wrapping_sub(g.pad_top);
                            *p = if iy >= i.h {
                                zero[..in_row_len].as_ptr()
                            } else if skew {
                                buf[base + (n * i.h + iy) % slots * slot_len..][..in_row_len]
                                    .as_ptr()
                            } else {
                                input.data[input.offset(n, iy, 0)..][..in_row_len].as_ptr()
                            };
                        }
                        assert!(
                            out.len() >= (out_rows - 1) * out_row_stride + out_row_len
                                && weights.data.as_slice().len()
                                    >= i.c.div_ceil(kernel.c_tile) * 10 * kernel.c_tile
                        );
                        let call = DwRow {
                            rows,
                            out_rows,
                            in_width: i.w,
                            pad_left: g.pad_left,
                            out_width: o.w,
                            channels: i.c,
                            in_stride,
                            out: out.as_mut_ptr(),
                            out_stride: output.strides.pixel,
                            out_row_stride,
                            weights: weights.data.as_slice().as_ptr(),
                            min,
                            max,
                        };
                        // SAFETY: `kernel` came from this `Kernels`, which proves its ISA is
                        // available. `out_rows <= rows_per_call` (blocks are cut so) and the
                        // window fits `MAX_WINDOW_ROWS` (asserted above); each of its `window`
                        // row pointers is the start of a slice of `in_row_len` floats (an input
                        // row, a scratch copy of one with pixel stride `in_stride`, or the zero
                        // row); `out` is a `&mut` piece holding `out_rows` rows `out_row_stride`
                        // apart (rows of one image, which do not overlap: `strides.row >=
                        // w * pixel`); the weights were packed for this ISA and tile (checked
                        // above) and hold whole tiles for `i.c` channels; `pad_left <= 2` and
                        // every output column sees an input column (`Conv3x3Params::geometry`).
                        unsafe { (kernel.func)(&call) };
                    }
                })
            });
        });
        Ok(())
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
