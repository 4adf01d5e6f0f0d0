//! Weight packing: done once per layer, into the layouts the micro-kernels stream.
//!
//! Packed weights remember the ISA and tile they were packed for; an operator called with kernels
//! of another ISA or tile returns [`Error::WeightsMismatch`] instead of reading a wrong layout.

use crate::buffer::AlignedBuf;
use crate::error::{checked_mul, nonzero, Error, Result};
use crate::Isa;

/// The memory order of unpacked weights as engines store them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightLayout {
    /// TensorFlow / TFLite: `[kh][kw][cin][cout]`. Depthwise: `[3][3][channels][1]`.
    /// Fully connected / pointwise: `[cin][cout]`.
    Hwio,
    /// ONNX / PyTorch: `[cout][cin][kh][kw]`. Depthwise: `[channels][1][3][3]`.
    /// Fully connected / pointwise (PyTorch `Linear`): `[cout][cin]`.
    Oihw,
}

/// Depthwise 3x3 weights and bias, packed into channel tiles (see `dwconv::ukernel` for the layout).
#[derive(Clone, Debug)]
pub struct DepthwiseWeights {
    pub(crate) isa: Isa,
    pub(crate) c_tile: usize,
    pub(crate) channels: usize,
    pub(crate) data: AlignedBuf,
}

impl DepthwiseWeights {
    /// Channels the weights were packed for.
    pub fn channels(&self) -> usize {
        self.channels
    }
}

/// Weights and bias of a GEMM-shaped operator (pointwise 1x1, 3x3 conv, fully connected), packed
/// into `NR`-wide panels of B with the bias in front (see `gemm::ukernel` for the layout).
#[derive(Clone, Debug)]
pub struct PackedB {
    pub(crate) isa: Isa,
    pub(crate) nr: usize,
    /// Rows of B (the GEMM depth).
    pub(crate) k: usize,
    /// Columns of B (output channels).
    pub(crate) n: usize,
    pub(crate) data: AlignedBuf,
}

impl PackedB {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.n
    }
}

/// Pointwise (1x1) convolution weights, packed once.
#[derive(Clone, Debug)]
pub struct PointwiseWeights(pub(crate) PackedB);

impl PointwiseWeights {
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.0.k
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.0.n
    }
}

/// Standard 3x3 convolution weights, packed once as B of an implicit GEMM with depth `9 * cin`
/// in `(ky, kx, ci)` order.
#[derive(Clone, Debug)]
pub struct ConvWeights {
    pub(crate) b: PackedB,
    pub(crate) cin: usize,
}

impl ConvWeights {
    /// Input channels.
    pub fn in_channels(&self) -> usize {
        self.cin
    }
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.b.n
    }
}

/// Fully connected weights, packed once.
#[derive(Clone, Debug)]
pub struct FullyConnectedWeights(pub(crate) PackedB);

impl FullyConnectedWeights {
    /// Input features.
    pub fn in_features(&self) -> usize {
        self.0.k
    }
    /// Output features.
    pub fn out_features(&self) -> usize {
        self.0.n
    }
}

fn check_len(what: &'static str, needed: usize, got: usize) -> Result<()> {
    if got != needed {
        return Err(Error::ShapeMismatch {
            what,
            expected: needed,
            got,
        });
    }
    Ok(())
}

fn check_bias(bias: Option<&[f32]>, n: usize) -> Result<()> {
    match bias {
        Some(b) => check_len("bias length", n, b.len()),
        None => Ok(()),
    }
}

/// Packs depthwise weights. `weights` holds `9 * channels` floats in `layout`.
pub(crate) fn pack_depthwise(
    isa: Isa,
    c_tile: usize,
    weights: &[f32],
    layout: WeightLayout,
    bias: Option<&[f32]>,
    channels: usize,
) -> Result<DepthwiseWeights> {
    nonzero("channels", channels)?;
    check_len(
        "depthwise weights length",
        checked_mul("weights", &[9, channels])?,
        weights.len(),
    )?;
    check_bias(bias, channels)?;
    let tiles = channels.div_ceil(c_tile);
    let mut data = AlignedBuf::zeroed(checked_mul("packed weights", &[tiles, 10, c_tile])?);
    for (t, tile) in data
        .as_mut_slice()
        .chunks_exact_mut(10 * c_tile)
        .enumerate()
    {
        for j in 0..c_tile {
            let c = t * c_tile + j;
            if c >= channels {
                break;
            }
            tile[j] = bias.map_or(0.0, |b| b[c]);
            for tap in 0..9 {
                tile[(1 + tap) * c_tile + j] = match layout {
                    WeightLayout::Hwio => weights[tap * channels + c],
                    WeightLayout::Oihw => weights[c * 9 + tap],
                };
            }
        }
    }
    Ok(DepthwiseWeights {
        isa,
        c_tile,
        channels,
        data,
    })
}

/// Packs a `K x N` matrix B given by `get(k, n)`, and the bias, into NR-wide panels.
pub(crate) fn pack_b(
    isa: Isa,
    nr: usize,
    k: usize,
    n: usize,
    bias: Option<&[f32]>,
    get: impl Fn(usize, usize) -> f32,
) -> Result<PackedB> {
    nonzero("input channels", k)?;
    nonzero("output channels", n)?;
    check_bias(bias, n)?;
    let panels = n.div_ceil(nr);
    let panel_len = checked_mul("packed panel", &[k + 1, nr])?;
    let mut data = AlignedBuf::zeroed(checked_mul("packed weights", &[panels, panel_len])?);
    for (p, panel) in data.as_mut_slice().chunks_exact_mut(panel_len).enumerate() {
        let cols = (n - p * nr).min(nr);
        if let Some(b) = bias {
            panel[..cols].copy_from_slice(&b[p * nr..p * nr + cols]);
        }
        for kk in 0..k {
            let row = &mut panel[(1 + kk) * nr..(1 + kk) * nr + cols];
            for (j, v) in row.iter_mut().enumerate() {
                *v = get(kk, p * nr + j);
            }
        }
    }
    Ok(PackedB {
        isa,
        nr,
        k,
        n,
        data,
    })
}

/// Packs `[cin][cout]` (Hwio) or `[cout][cin]` (Oihw) weights of a 1x1 / fully connected layer.
pub(crate) fn pack_matrix(
    isa: Isa,
    nr: usize,
    weights: &[f32],
    layout: WeightLayout,
    bias: Option<&[f32]>,
    cin: usize,
    cout: usize,
) -> Result<PackedB> {
    check_len(
        "weights length",
        checked_mul("weights", &[cin, cout])?,
        weights.len(),
    )?;
    pack_b(isa, nr, cin, cout, bias, |k, n| match layout {
        WeightLayout::Hwio => weights[k * cout + n],
        WeightLayout::Oihw => weights[n * cin + k],
    })
}

/// Packs 3x3 conv weights (`[3][3][cin][cout]` or `[cout][cin][3][3]`) as B with depth `9*cin`.
pub(crate) fn pack_conv3x3(
    isa: Isa,
    nr: usize,
    weights: &[f32],
    layout: WeightLayout,
    bias: Option<&[f32]>,
    cin: usize,
    cout: usize,
) -> Result<ConvWeights> {
    nonzero("input channels", cin)?;
    let k = checked_mul("conv depth", &[9, cin])?;
    check_len(
        "conv weights length",
        checked_mul("weights", &[k, cout])?,
        weights.len(),
    )?;
    let b = pack_b(isa, nr, k, cout, bias, |kk, n| {
        let (tap, ci) = (kk / cin, kk % cin);
        match layout {
            WeightLayout::Hwio => weights[kk * cout + n],
            WeightLayout::Oihw => weights[(n * cin + ci) * 9 + tap],
        }
    })?;
    Ok(ConvWeights { b, cin })
}

/// `Err(WeightsMismatch)` unless weights packed for `(isa, tile)` are used with the same.
pub(crate) fn check_packed_for(packed: (Isa, usize), kernels: (Isa, usize)) -> Result<()> {
    if packed != kernels {
        return Err(Error::WeightsMismatch {
            packed_for: format!("{} (tile {})", packed.0, packed.1),
            used_with: format!("{} (tile {})", kernels.0, kernels.1),
        });
    }
    Ok(())
}
