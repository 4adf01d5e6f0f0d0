//! One function per operator that runs a case through the public API on guarded buffers and checks
//! it against `sepconv-reference`. Tests (proptest and hand-written edges) build cases and call these.

use super::guard::Guarded;
use super::{random_vec, ref_act, rng, tolerance, SENTINEL};
use sepconv::{
    Activation, Conv3x3Params, Error, Kernels, Padding, Shape, Strides, TensorView, TensorViewMut,
    WeightLayout,
};
use sepconv_reference as r;

/// A convolution case (depthwise, pointwise or standard 3x3).
#[derive(Clone, Debug)]
pub struct Case {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
    pub padding: Padding,
    pub act: Activation,
    pub bias: bool,
    pub layout: WeightLayout,
    /// Extra floats after each input pixel (input pixel stride = cin + in_gap).
    pub in_gap: usize,
    /// Extra floats after each output pixel.
    pub out_gap: usize,
    /// Extra floats after each input and output row, and as many again after each image: rows
    /// (and images) that are not evenly strided, as in a view of part of a larger tensor.
    pub row_gap: usize,
    pub seed: u64,
}

impl Case {
    pub fn new(n: usize, h: usize, w: usize, cin: usize, cout: usize) -> Case {
        Case {
            n,
            h,
            w,
            cin,
            cout,
            stride: 1,
            padding: Padding::Same,
            act: Activation::None,
            bias: true,
            layout: WeightLayout::Hwio,
            in_gap: 0,
            out_gap: 0,
            row_gap: 0,
            seed: 1,
        }
    }
}

fn ref_padding(c: &Case) -> r::Padding {
    match c.padding {
        Padding::Same => r::Padding::same(c.h, c.w, 3, c.stride),
        Padding::Valid => r::Padding::valid(),
        Padding::Explicit {
            top,
            bottom,
            left,
            right,
        } => r::Padding {
            top,
            bottom,
            left,
            right,
        },
    }
}

/// A strided NHWC buffer: pixel stride `c + gap`, row stride `w` pixels + `row_gap`, image
/// stride `h` rows + `row_gap`; the gaps hold `fill`.
pub struct Buf {
    pub data: Guarded,
    pub shape: Shape,
    pub strides: Strides,
}

impl Buf {
    pub fn new(shape: Shape, gap: usize, row_gap: usize, fill: f32) -> Buf {
        let pixel = shape.c + gap;
        let row = shape.w * pixel + row_gap;
        let strides = Strides {
            pixel,
            row,
            batch: shape.h * row + row_gap,
        };
        // The extent ends at the last channel of the last pixel: the guard page follows it.
        let len = (shape.n - 1) * strides.batch
            + (shape.h - 1) * strides.row
            + (shape.w - 1) * strides.pixel
            + shape.c;
        let mut data = Guarded::new(len);
        data.fill(fill);
        Buf {
            data,
            shape,
            strides,
        }
    }

    /// A buffer holding the dense NHWC `values`.
    pub fn from_dense(values: &[f32], shape: Shape, gap: usize, row_gap: usize) -> Buf {
        let mut b = Buf::new(shape, gap, row_gap, SENTINEL);
        for p in 0..shape.n * shape.h * shape.w {
            let o = b.offset(p);
            b.data[o..o + shape.c].copy_from_slice(&values[p * shape.c..(p + 1) * shape.c]);
        }
        b
    }

    /// Offset of pixel `p` (in NHW order) of the buffer.
    fn offset(&self, p: usize) -> usize {
        let (s, h, w) = (self.strides, self.shape.h, self.shape.w);
        p / (h * w) * s.batch + p / w % h * s.row + p % w * s.pixel
    }

    pub fn view(&self) -> TensorView<'_> {
        TensorView::with_strides(&self.data, self.shape, self.strides).unwrap()
    }

    pub fn view_mut(&mut self) -> TensorViewMut<'_> {
        TensorViewMut::with_strides(&mut self.data, self.shape, self.strides).unwrap()
    }

    /// Checks against the reference and that nothing but the pixels' channels was written.
    pub fn check(&self, e: &r::Expected, tol: f64) -> Result<(), String> {
        let s = self.strides;
        e.check_strided(&self.data, s.pixel, s.row, s.batch, tol)?;
        let mut written = vec![false; self.data.len()];
        for p in 0..self.shape.n * self.shape.h * self.shape.w {
            let o = self.offset(p);
            written[o..o + self.shape.c].fill(true);
        }
        match (self.data.iter().zip(&written))
            .position(|(v, &w)| !w && v.to_bits() != SENTINEL.to_bits())
        {
            Some(i) => Err(format!("float {i}, between pixels, was written")),
            None => Ok(()),
        }
    }

    pub fn dense(&self) -> Vec<f32> {
        let mut v = Vec::new();
        for p in 0..self.shape.n * self.shape.h * self.shape.w {
            let o = self.offset(p);
            v.extend_from_slice(&self.data[o..o + self.shape.c]);
        }
        v
    }
}

/// Reorders HWIO `[kh][kw][cin][cout]` to OIHW `[cout][cin][kh][kw]`.
pub fn hwio_to_oihw(w: &[f32], k2: usize, cin: usize, cout: usize) -> Vec<f32> {
    let mut o = vec![0.0; w.len()];
    for tap in 0..k2 {
        for ci in 0..cin {
            for co in 0..cout {
                o[(co * cin + ci) * k2 + tap] = w[(tap * cin + ci) * cout + co];
            }
        }
    }
    o
}

/// HWIO weights `w` as the case's layout asks: unchanged, or reordered to OIHW.
fn in_layout(layout: WeightLayout, w: &[f32], k2: usize, cin: usize, cout: usize) -> Vec<f32> {
    match layout {
        WeightLayout::Hwio => w.to_vec(),
        WeightLayout::Oihw => hwio_to_oihw(w, k2, cin, cout),
    }
}

/// What a run produced, for comparisons across thread counts.
pub type Output = Vec<f32>;

/// Geometry error expected by the reference rules, if any.
fn expected_geometry_error(c: &Case) -> Option<Error> {
    let p = ref_padding(c);
    if c.h + p.top + p.bottom < 3 || c.w + p.left + p.right < 3 {
        return Some(Error::BadPadding {
            reason: "padded input is smaller than the 3x3 kernel",
        });
    }
    None
}

/// Depthwise 3x3 case; `cout` is ignored (= cin). Returns the dense output.
pub fn depthwise(k: Kernels, c: &Case) -> Result<Output, String> {
    let mut g = rng(c.seed);
    let x = random_vec(&mut g, c.n * c.h * c.w * c.cin);
    let w = random_vec(&mut g, 9 * c.cin);
    let b = random_vec(&mut g, c.cin);
    depthwise_with(k, c, &x, &w, &b)
}

/// Depthwise 3x3 on given data (dense NHWC input, HWIO weights).
pub fn depthwise_with(
    k: Kernels,
    c: &Case,
    x: &[f32],
    w: &[f32],
    b: &[f32],
) -> Result<Output, String> {
    let ishape = Shape::new(c.n, c.h, c.w, c.cin);
    let input = Buf::from_dense(x, ishape, c.in_gap, c.row_gap);
    let params = Conv3x3Params::new()
        .stride(c.stride)
        .padding(c.padding)
        .activation(c.act);
    let bias = c.bias.then_some(b);
    let wl = in_layout(c.layout, w, 9, 1, c.cin);
    let packed = k
        .pack_depthwise3x3(&wl, c.layout, bias, c.cin)
        .map_err(|e| e.to_string())?;
    let (oh, ow) = match params.output_size(c.h, c.w) {
        Ok(s) => s,
        Err(e) => {
            return match expected_geometry_error(c) {
                Some(want) if want == e => Ok(Vec::new()),
                _ => Err(format!("unexpected error {e:?}")),
            }
        }
    };
    if let Some(want) = expected_geometry_error(c) {
        return Err(format!("expected {want:?}, got output {oh}x{ow}"));
    }
    let mut out = Buf::new(
        Shape::new(c.n, oh, ow, c.cin),
        c.out_gap,
        c.row_gap,
        SENTINEL,
    );
    k.depthwise3x3(&input.view(), &packed, &params, &mut out.view_mut())
        .map_err(|e| e.to_string())?;
    let rin = r::Tensor::new(c.n, c.h, c.w, c.cin, x.to_vec());
    let e = r::depthwise3x3(&rin, w, bias, c.stride, ref_padding(c), ref_act(c.act));
    out.check(&e, tolerance(10))?;
    Ok(out.dense())
}

/// Pointwise 1x1 case.
pub fn pointwise(k: Kernels, c: &Case) -> Result<Output, String> {
    let mut g = rng(c.seed);
    let x = random_vec(&mut g, c.n * c.h * c.w * c.cin);
    pointwise_with(k, c, x, &mut g)
}

/// [`pointwise`] on the given dense input (weights and bias drawn from `g`).
pub fn pointwise_with(
    k: Kernels,
    c: &Case,
    x: Vec<f32>,
    g: &mut rand::rngs::StdRng,
) -> Result<Output, String> {
    let w = random_vec(g, c.cin * c.cout);
    let b = random_vec(g, c.cout);
    let input = Buf::from_dense(&x, Shape::new(c.n, c.h, c.w, c.cin), c.in_gap, c.row_gap);
    let bias = c.bias.then_some(&b[..]);
    let wl = in_layout(c.layout, &w, 1, c.cin, c.cout);
    let packed = k
        .pack_pointwise(&wl, c.layout, bias, c.cin, c.cout)
        .map_err(|e| e.to_string())?;
    let mut out = Buf::new(
        Shape::new(c.n, c.h, c.w, c.cout),
        c.out_gap,
        c.row_gap,
        SENTINEL,
    );
    k.pointwise(&input.view(), &packed, c.act, &mut out.view_mut())
        .map_err(|e| e.to_string())?;
    let rin = r::Tensor::new(c.n, c.h, c.w, c.cin, x);
    let e = r::pointwise(&rin, &w, bias, c.cout, ref_act(c.act));
    out.check(&e, tolerance(c.cin + 1))?;
    Ok(out.dense())
}

/// Standard 3x3 convolution case.
pub fn conv3x3(k: Kernels, c: &Case) -> Result<Output, String> {
    let mut g = rng(c.seed);
    let x = random_vec(&mut g, c.n * c.h * c.w * c.cin);
    conv3x3_with(k, c, x, &mut g)
}

/// [`conv3x3`] on the given dense input (weights and bias drawn from `g`).
pub fn conv3x3_with(
    k: Kernels,
    c: &Case,
    x: Vec<f32>,
    g: &mut rand::rngs::StdRng,
) -> Result<Output, String> {
    let w = random_vec(g, 9 * c.cin * c.cout);
    let b = random_vec(g, c.cout);
    let input = Buf::from_dense(&x, Shape::new(c.n, c.h, c.w, c.cin), c.in_gap, c.row_gap);
    let params = Conv3x3Params::new()
        .stride(c.stride)
        .padding(c.padding)
        .activation(c.act);
    let bias = c.bias.then_some(&b[..]);
    let wl = in_layout(c.layout, &w, 9, c.cin, c.cout);
    let packed = k
        .pack_conv3x3(&wl, c.layout, bias, c.cin, c.cout)
        .map_err(|e| e.to_string())?;
    let (oh, ow) = match params.output_size(c.h, c.w) {
        Ok(s) => s,
        Err(e) => {
            return match expected_geometry_error(c) {
                Some(want) if want == e => Ok(Vec::new()),
                _ => Err(format!("unexpected error {e:?}")),
            }
        }
    };
    let mut out = Buf::new(
        Shape::new(c.n, oh, ow, c.cout),
        c.out_gap,
        c.row_gap,
        SENTINEL,
    );
    k.conv3x3(&input.view(), &packed, &params, &mut out.view_mut())
        .map_err(|e| e.to_string())?;
    let rin = r::Tensor::new(c.n, c.h, c.w, c.cin, x);
    let spec = r::Conv2d {
        kh: 3,
        kw: 3,
        stride: c.stride,
        padding: ref_padding(c),
        groups: 1,
        activation: ref_act(c.act),
    };
    let e = r::conv2d(&rin, &w, bias, c.cout, &spec);
    out.check(&e, tolerance(9 * c.cin + 1))?;
    Ok(out.dense())
}

/// Fully connected case: input `n x h x w x cin` flattened, `cout` outputs.
pub fn fully_connected(k: Kernels, c: &Case) -> Result<Output, String> {
    let mut g = rng(c.seed);
    let feats = c.h * c.w * c.cin;
    let x = random_vec(&mut g, c.n * feats);
    let w = random_vec(&mut g, feats * c.cout);
    let b = random_vec(&mut g, c.cout);
    let input = Buf::from_dense(&x, Shape::new(c.n, c.h, c.w, c.cin), 0, 0);
    let bias = c.bias.then_some(&b[..]);
    let wl = in_layout(c.layout, &w, 1, feats, c.cout);
    let packed = k
        .pack_fully_connected(&wl, c.layout, bias, feats, c.cout)
        .map_err(|e| e.to_string())?;
    let mut out = Buf::new(
        Shape::new(c.n, 1, 1, c.cout),
        c.out_gap,
        c.row_gap,
        SENTINEL,
    );
    k.fully_connected(&input.view(), &packed, c.act, &mut out.view_mut())
        .map_err(|e| e.to_string())?;
    let rin = r::Tensor::new(c.n, c.h, c.w, c.cin, x);
    let e = r::fully_connected(&rin, &w, feats, bias, c.cout, ref_act(c.act));
    out.check(&e, tolerance(feats + 1))?;
    Ok(out.dense())
}

/// Global average pool case.
pub fn global_avg_pool(k: Kernels, c: &Case) -> Result<Output, String> {
    let mut g = rng(c.seed);
    let x = random_vec(&mut g, c.n * c.h * c.w * c.cin);
    let input = Buf::from_dense(&x, Shape::new(c.n, c.h, c.w, c.cin), c.in_gap, c.row_gap);
    let mut out = Buf::new(Shape::new(c.n, 1, 1, c.cin), c.out_gap, c.row_gap, SENTINEL);
    k.global_avg_pool(&input.view(), &mut out.view_mut())
        .map_err(|e| e.to_string())?;
    let e = r::global_avg_pool(&r::Tensor::new(c.n, c.h, c.w, c.cin, x));
    out.check(&e, tolerance(c.h * c.w + 1))?;
    Ok(out.dense())
}
