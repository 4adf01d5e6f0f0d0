//! NHWC tensor views over caller-owned `f32` slices, checked once at construction.

use crate::error::{checked_mul, nonzero, Error, Result};

/// Dimensions of an NHWC tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Batch.
    pub n: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
    /// Channels (contiguous in memory).
    pub c: usize,
}

impl Shape {
    /// A shape from `[n, h, w, c]`.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Shape {
        Shape { n, h, w, c }
    }

    /// Number of elements, or `Error::Overflow`.
    pub fn elements(&self) -> Result<usize> {
        checked_mul("tensor size", &[self.n, self.h, self.w, self.c])
    }

    /// The dense strides of this shape (pixel = c, row = w*c, batch = h*w*c).
    pub fn dense_strides(&self) -> Result<Strides> {
        Ok(Strides {
            pixel: self.c,
            row: checked_mul("row stride", &[self.w, self.c])?,
            batch: checked_mul("batch stride", &[self.h, self.w, self.c])?,
        })
    }

    /// Strides the kernels read fastest: dense, except that a dense pixel stride that is a
    /// multiple of 2 KiB (512, 1024, ... channels) gets one 64-byte line of padding per pixel
    /// ([`PIXEL_PAD`] floats) in a tensor of more than one pixel.
    ///
    /// At such strides the same channels of every other pixel (and of consecutive rows, a
    /// multiple of 4 KiB apart at even widths) fall into one L1 set: the 3 x 6 input lines a
    /// depthwise 3x3 step of 4 outputs reads put 9 into one set of an 8-way L1, and rows with a
    /// 4 KiB pixel stride are copied to a padded ring before the depthwise kernel reads them.
    /// Padded, consecutive pixels fall into consecutive sets. An engine that chooses its
    /// activations' layout can allocate these strides: the layer writing such a tensor pays
    /// nothing for the padding, and every operator reads it as any strided view.
    pub fn padded_strides(&self) -> Result<Strides> {
        let dense = self.dense_strides()?;
        if self.h * self.w <= 1 || !self.c.is_multiple_of(512) {
            return Ok(dense);
        }
        let pixel = (self.c.checked_add(PIXEL_PAD)).ok_or(Error::Overflow {
            what: "pixel stride",
        })?;
        Ok(Strides {
            pixel,
            row: checked_mul("row stride", &[self.w, pixel])?,
            batch: checked_mul("batch stride", &[self.h, self.w, pixel])?,
        })
    }

    fn check_nonzero(&self) -> Result<()> {
        nonzero("batch", self.n)?;
        nonzero("height", self.h)?;
        nonzero("width", self.w)?;
        nonzero("channels", self.c)?;
        Ok(())
    }
}

/// The padding [`Shape::padded_strides`] adds after each pixel, in floats (one 64-byte line).
pub const PIXEL_PAD: usize = 16;

/// Distances, in floats, between neighbouring pixels, rows and images.
///
/// Non-dense strides let a caller read from or write into part of a larger buffer (e.g. one
/// branch of a channel concat: `pixel` = the concat's total channels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Between pixels of a row (`>= c`).
    pub pixel: usize,
    /// Between rows (`>= w * pixel`).
    pub row: usize,
    /// Between images (`>= h * row`).
    pub batch: usize,
}

/// Checks `strides` against `shape` and returns the floats a buffer must hold.
fn extent(shape: Shape, strides: Strides) -> Result<usize> {
    shape.check_nonzero()?;
    let need = |what, min: Option<usize>, got: usize| -> Result<()> {
        let min = min.ok_or(Error::Overflow { what })?;
        if got < min {
            Err(Error::BadStride { what, min, got })
        } else {
            Ok(())
        }
    };
    need("pixel stride", Some(shape.c), strides.pixel)?;
    need(
        "row stride",
        shape.w.checked_mul(strides.pixel),
        strides.row,
    )?;
    need(
        "batch stride",
        shape.h.checked_mul(strides.row),
        strides.batch,
    )?;
    // Offset of the last element + 1.
    let last = (shape.n - 1)
        .checked_mul(strides.batch)
        .and_then(|v| v.checked_add((shape.h - 1).checked_mul(strides.row)?))
        .and_then(|v| v.checked_add((shape.w - 1).checked_mul(strides.pixel)?))
        .and_then(|v| v.checked_add(shape.c))
        .ok_or(Error::Overflow {
            what: "tensor extent",
        })?;
    Ok(last)
}

fn check_len(what: &'static str, needed: usize, got: usize) -> Result<()> {
    if got < needed {
        Err(Error::SliceTooShort { what, needed, got })
    } else {
        Ok(())
    }
}

/// A read-only NHWC view.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub(crate) data: &'a [f32],
    pub(crate) shape: Shape,
    pub(crate) strides: Strides,
}

impl<'a> TensorView<'a> {
    /// A dense view: `data` holds `n*h*w*c` floats (or more) in NHWC order.
    pub fn new(data: &'a [f32], shape: Shape) -> Result<Self> {
        Self::with_strides(data, shape, shape.dense_strides()?)
    }

    /// A strided view; `strides` must not make pixels, rows or images overlap.
    pub fn with_strides(data: &'a [f32], shape: Shape, strides: Strides) -> Result<Self> {
        check_len("input tensor", extent(shape, strides)?, data.len())?;
        Ok(TensorView {
            data,
            shape,
            strides,
        })
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The strides.
    pub fn strides(&self) -> Strides {
        self.strides
    }

    /// Offset of pixel (n, y, x), channel 0.
    #[inline]
    pub(crate) fn offset(&self, n: usize, y: usize, x: usize) -> usize {
        n * self.strides.batch + y * self.strides.row + x * self.strides.pixel
    }
}

/// A writable NHWC view.
#[derive(Debug)]
pub struct TensorViewMut<'a> {
    pub(crate) data: &'a mut [f32],
    pub(crate) shape: Shape,
    pub(crate) strides: Strides,
}

impl<'a> TensorViewMut<'a> {
    /// A dense view: `data` holds `n*h*w*c` floats (or more) in NHWC order.
    pub fn new(data: &'a mut [f32], shape: Shape) -> Result<Self> {
        let strides = shape.dense_strides()?;
        Self::with_strides(data, shape, strides)
    }

    /// A strided view; elements outside the shape (the gaps between strides) are never written.
    pub fn with_strides(data: &'a mut [f32], shape: Shape, strides: Strides) -> Result<Self> {
        check_len("output tensor", extent(shape, strides)?, data.len())?;
        Ok(TensorViewMut {
            data,
            shape,
            strides,
        })
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The strides.
    pub fn strides(&self) -> Strides {
        self.strides
    }

    /// Offset of pixel (n, y, x), channel 0.
    #[inline]
    pub(crate) fn offset(&self, n: usize, y: usize, x: usize) -> usize {
        n * self.strides.batch + y * self.strides.row + x * self.strides.pixel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_strides_pad_only_2_kib_multiples_of_more_than_one_pixel() {
        let dense = |s: Shape| s.dense_strides().unwrap();
        let padded = |s: Shape| s.padded_strides().unwrap();
        for c in [1, 3, 16, 256, 511, 513, 768] {
            let s = Shape::new(2, 14, 14, c);
            assert_eq!(padded(s), dense(s), "{c} channels");
        }
        for c in [512, 1024, 1536, 2048] {
            let s = Shape::new(2, 7, 9, c);
            let p = c + PIXEL_PAD;
            let want = Strides {
                pixel: p,
                row: 9 * p,
                batch: 63 * p,
            };
            assert_eq!(padded(s), want, "{c} channels");
            // Consecutive pixels in consecutive L1 sets (64 sets of 64-byte lines).
            assert_eq!((p * 4 / 64) % 64, (c * 4 / 64) % 64 + 1);
        }
        // One pixel (a pooled vector): nothing to alias.
        let v = Shape::new(3, 1, 1, 1024);
        assert_eq!(padded(v), dense(v));
        assert!(matches!(
            Shape::new(1, 2, 2, usize::MAX / 2 / 512 * 512).padded_strides(),
            Err(Error::Overflow { .. })
        ));
    }
}
