//! Pointwise (1x1) convolution and fully connected layers: both are one GEMM on the packed B.

use crate::dwconv::expect;
use crate::error::{Error, Result};
use crate::gemm::{gemm, Batch, GemmShape};
use crate::pack::{
    check_packed_for, pack_matrix, FullyConnectedWeights, PackedB, PointwiseWeights, WeightLayout,
};
use crate::tensor::{Shape, Strides, TensorView, TensorViewMut};
use crate::{Activation, Kernels};

impl Kernels {
    /// Packs 1x1 convolution weights once: `[cin][cout]` for [`WeightLayout::Hwio`] (TensorFlow's
    /// `[1][1][cin][cout]`), `[cout][cin]` for [`WeightLayout::Oihw`] (`[cout][cin][1][1]`).
    pub fn pack_pointwise(
        &self,
        weights: &[f32],
        layout: WeightLayout,
        bias: Option<&[f32]>,
        cin: usize,
        cout: usize,
    ) -> Result<PointwiseWeights> {
        pack_matrix(self.isa, self.gemm.nr, weights, layout, bias, cin, cout).map(PointwiseWeights)
    }

    /// Packs fully connected weights once: `[in][out]` for [`WeightLayout::Hwio`] (TensorFlow
    /// `Dense`), `[out][in]` for [`WeightLayout::Oihw`] (PyTorch `Linear`).
    pub fn pack_fully_connected(
        &self,
        weights: &[f32],
        layout: WeightLayout,
        bias: Option<&[f32]>,
        in_features: usize,
        out_features: usize,
    ) -> Result<FullyConnectedWeights> {
        pack_matrix(
            self.isa,
            self.gemm.nr,
            weights,
            layout,
            bias,
            in_features,
            out_features,
        )
        .map(FullyConnectedWeights)
    }

    /// Pointwise 1x1 convolution with fused bias and activation: for every pixel,
    /// `out[co] = act(bias[co] + sum_ci in[ci] * w[ci][co])`. The output has the input's batch,
    /// height and width and `weights.out_channels()` channels.
    pub fn pointwise(
        &self,
        input: &TensorView<'_>,
        weights: &PointwiseWeights,
        activation: Activation,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (min, max) = activation.bounds()?;
        let b = &weights.0;
        self.check_b(b)?;
        let (i, o) = (input.shape, output.shape);
        expect("weights input channels", b.k, i.c)?;
        expect("output channels", b.n, o.c)?;
        expect("output batch", i.n, o.n)?;
        expect("output height", i.h, o.h)?;
        expect("output width", i.w, o.w)?;
        // Pixels evenly strided in both tensors form one problem (M = pixels), and the problems
        // one strided batch per call (`pixel_problems`).
        let (images, shape) = pixel_problems(i, input.strides, output.strides);
        for n in images {
            let (ia, oc) = (input.offset(n, 0, 0), output.offset(n, 0, 0));
            gemm(
                self.gemm,
                self.threads,
                shape,
                &input.data[ia..],
                b,
                &mut output.data[oc..],
                min,
                max,
            );
        }
        Ok(())
    }

    /// Fully connected layer: each image of `input` (its `h * w * c` values, which must be
    /// contiguous, flattened in NHWC order) times the weights, plus bias, activated. `output`
    /// has shape `[n, 1, 1, out_features]`.
    pub fn fully_connected(
        &self,
        input: &TensorView<'_>,
        weights: &FullyConnectedWeights,
        activation: Activation,
        output: &mut TensorViewMut<'_>,
    ) -> Result<()> {
        let (min, max) = activation.bounds()?;
        let b = &weights.0;
        self.check_b(b)?;
        let (i, o) = (input.shape, output.shape);
        let dense = i.dense_strides()?;
        if input.strides.pixel != dense.pixel || input.strides.row != dense.row {
            return Err(Error::BadStride {
                what: "fully connected input must be dense within each image; pixel stride",
                min: dense.pixel,
                got: input.strides.pixel,
            });
        }
        expect("weights input features", b.k, dense.batch)?;
        expect("output batch", i.n, o.n)?;
        expect("output height", 1, o.h)?;
        expect("output width", 1, o.w)?;
        expect("output features", b.n, o.c)?;
        let shape = GemmShape::plain(i.n, input.strides.batch, output.strides.batch);
        gemm(
            self.gemm,
            self.threads,
            shape,
            input.data,
            b,
            output.data,
            min,
            max,
        );
        Ok(())
    }

    pub(crate) fn check_b(&self, b: &PackedB) -> Result<()> {
        check_packed_for((b.isa, b.nr), (self.isa, self.gemm.nr))
    }
}

/// The GEMM calls of a pointwise layer on `shape` with input strides `a` and output strides `b`:
/// the images each call starts at, and the calls' shape. Pixels evenly strided in both tensors
/// form one problem: the whole batch (one call), else each image, the images then one strided
/// batch (one call), else each row, an image's rows one batch (a call per image). Each problem is
/// tiled as it would be alone, so the results are those of one GEMM per problem.
pub(crate) fn pixel_problems(
    shape: Shape,
    a: Strides,
    b: Strides,
) -> (std::ops::Range<usize>, GemmShape) {
    let rows_even = a.row == shape.w * a.pixel && b.row == shape.w * b.pixel;
    let images_even = rows_even && a.batch == shape.h * a.row && b.batch == shape.h * b.row;
    let plain = |m| GemmShape::plain(m, a.pixel, b.pixel);
    if images_even {
        (0..1, plain(shape.n * shape.h * shape.w))
    } else if rows_even {
        let batch = Batch {
            count: shape.n,
            a_stride: a.batch,
            c_stride: b.batch,
        };
        (
            0..1,
            GemmShape {
                batch,
                ..plain(shape.h * shape.w)
            },
        )
    } else {
        let batch = Batch {
            count: shape.h,
            a_stride: a.row,
            c_stride: b.row,
        };
        (
            0..shape.n,
            GemmShape {
                batch,
                ..plain(shape.w)
            },
        )
    }
}
