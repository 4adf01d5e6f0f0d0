//! Workloads as data: the MobileNet v1 layer table (Howard et al. 2017, Table 1) for every width
//! multiplier and resolution of Tables 6 and 7, "Conv MobileNet" (the same network with standard
//! convolutions, Table 4), and the depthwise / pointwise shapes of MobileNet v2 (Sandler et al.
//! 2018, Table 2: 224, width 1.0, expansion 6, 17 bottlenecks).
//!
//! Every layer has a stable id that never changes once published (CI compares results by id):
//!
//! | id | layer |
//! |---|---|
//! | `mbv1_a100_r224_conv01` | the stem, 3x3 conv stride 2, 3 -> 32 |
//! | `mbv1_a100_r224_dw02` | depthwise 3x3 of separable block 2 (blocks 01..13) |
//! | `mbv1_a100_r224_pw02` | pointwise 1x1 of separable block 2 |
//! | `mbv1_a100_r224_std02` | the standard 3x3 conv that replaces block 2 in Conv MobileNet |
//! | `mbv1_a100_r224_pool` | 7x7 global average pool |
//! | `mbv1_a100_r224_fc` | the 1024 -> 1000 fully connected layer |
//! | `mbv2_a100_r224_b03_exp` / `_b03_dw` / `_b03_proj` | bottleneck 3 of v2: expansion 1x1, depthwise, projection 1x1 |
//! | `mbv2_a100_r224_conv01`, `_pw18`, `_pool`, `_fc` | v2 stem, last 1x1 (320 -> 1280), pool, classifier |
//!
//! `a100` is the width multiplier in percent (`a075`, `a050`, `a025`), `r224` the input resolution.

#![forbid(unsafe_code)]

use std::fmt;

use serde::{Deserialize, Serialize};

/// The operator of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Standard 3x3 convolution (the stem, and the layers of Conv MobileNet).
    Conv3x3,
    /// Depthwise 3x3 convolution, channel multiplier 1.
    Depthwise3x3,
    /// Pointwise 1x1 convolution.
    Pointwise,
    /// Global average pooling.
    AvgPool,
    /// Fully connected layer.
    FullyConnected,
}

impl Op {
    /// Every op, in report order.
    pub const ALL: [Op; 5] = [
        Op::Depthwise3x3,
        Op::Pointwise,
        Op::Conv3x3,
        Op::FullyConnected,
        Op::AvgPool,
    ];

    /// The op's name in bench ids and reports (`<tier>.<op>`).
    pub fn name(self) -> &'static str {
        match self {
            Op::Conv3x3 => "conv3x3",
            Op::Depthwise3x3 => "dwconv3x3",
            Op::Pointwise => "pointwise",
            Op::AvgPool => "avgpool",
            Op::FullyConnected => "fc",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One layer: an op on a `1 x h x w x cin` NHWC input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Stable id, e.g. `mbv1_a100_r224_dw02`.
    pub id: String,
    /// The operator.
    pub op: Op,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels (= `cin` for depthwise and pooling).
    pub cout: usize,
    /// Stride (1 or 2; 1 for 1x1, pool and fc).
    pub stride: usize,
}

impl Layer {
    fn new(id: String, op: Op, hw: usize, cin: usize, cout: usize, stride: usize) -> Layer {
        Layer {
            id,
            op,
            h: hw,
            w: hw,
            cin,
            cout,
            stride,
        }
    }

    /// Output `(height, width)`: TensorFlow `SAME` padding for 3x3 (`ceil(in / stride)`), 1x1
    /// for pool and fully connected.
    pub fn out_hw(&self) -> (usize, usize) {
        match self.op {
            Op::AvgPool | Op::FullyConnected => (1, 1),
            _ => (self.h.div_ceil(self.stride), self.w.div_ceil(self.stride)),
        }
    }

    /// Input elements.
    pub fn input_len(&self) -> usize {
        self.h * self.w * self.cin
    }

    /// Output elements.
    pub fn output_len(&self) -> usize {
        let (oh, ow) = self.out_hw();
        oh * ow * self.cout
    }

    /// Weights (no bias), as the paper counts parameters.
    pub fn params(&self) -> usize {
        match self.op {
            Op::Conv3x3 => 9 * self.cin * self.cout,
            Op::Depthwise3x3 => 9 * self.cin,
            Op::Pointwise => self.cin * self.cout,
            Op::FullyConnected => self.h * self.w * self.cin * self.cout,
            Op::AvgPool => 0,
        }
    }

    /// Bias values (one per output channel; none for pooling).
    pub fn bias_len(&self) -> usize {
        match self.op {
            Op::AvgPool => 0,
            _ => self.cout,
        }
    }

    /// Multiply-adds (the paper's "Mult-Adds"). Pooling counts one add per input element.
    pub fn macs(&self) -> u64 {
        let (oh, ow) = self.out_hw();
        let out_px = (oh * ow) as u64;
        match self.op {
            Op::Conv3x3 => out_px * 9 * (self.cin * self.cout) as u64,
            Op::Depthwise3x3 => out_px * 9 * self.cin as u64,
            Op::Pointwise => out_px * (self.cin * self.cout) as u64,
            Op::FullyConnected => (self.h * self.w * self.cin * self.cout) as u64,
            Op::AvgPool => self.input_len() as u64,
        }
    }

    /// FLOPs: 2 per multiply-add (1 per add for pooling), bias and activation not counted.
    pub fn flops(&self) -> u64 {
        match self.op {
            Op::AvgPool => self.macs(),
            _ => 2 * self.macs(),
        }
    }

    /// Compulsory memory traffic of one call, in bytes: input, weights, bias and output, each
    /// touched once (f32).
    pub fn compulsory_bytes(&self) -> u64 {
        4 * (self.input_len() + self.params() + self.bias_len() + self.output_len()) as u64
    }

    /// Arithmetic intensity: FLOPs per compulsory byte.
    pub fn arithmetic_intensity(&self) -> f64 {
        self.flops() as f64 / self.compulsory_bytes() as f64
    }

    /// A short shape description, e.g. `112x112x32 -> 112x112x64 s1`.
    pub fn shape_str(&self) -> String {
        let (oh, ow) = self.out_hw();
        format!(
            "{}x{}x{} -> {}x{}x{} s{}",
            self.h, self.w, self.cin, oh, ow, self.cout, self.stride
        )
    }
}

/// A network: a sequence of layers, each fed by the previous one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    /// Stable id, e.g. `mbv1_a100_r224` or `mbv1conv_a100_r224`.
    pub id: String,
    /// A human name, e.g. `MobileNet v1 1.0-224`.
    pub name: String,
    /// Width multiplier in percent.
    pub alpha_pct: u32,
    /// Input resolution.
    pub resolution: usize,
    /// Layers in execution order.
    pub layers: Vec<Layer>,
}

impl Network {
    /// Total multiply-adds, excluding pooling (as the paper counts).
    pub fn macs(&self) -> u64 {
        self.layers
            .iter()
            .filter(|l| l.op != Op::AvgPool)
            .map(Layer::macs)
            .sum()
    }

    /// Total weights (no biases, no batch norm), as the paper counts.
    pub fn params(&self) -> usize {
        self.layers.iter().map(Layer::params).sum()
    }

    /// Total FLOPs of one inference (2 per multiply-add, pooling adds included).
    pub fn flops(&self) -> u64 {
        self.layers.iter().map(Layer::flops).sum()
    }

    /// The layer with this id.
    pub fn layer(&self, id: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.id == id)
    }
}

/// Width multipliers of the paper's Table 6, in percent.
pub const V1_ALPHAS: [u32; 4] = [100, 75, 50, 25];
/// Resolutions of the paper's Table 7.
pub const V1_RESOLUTIONS: [usize; 4] = [224, 192, 160, 128];

/// MobileNet v1 body after the stem (Table 1): `(depthwise stride, pointwise output channels)` of
/// the 13 separable blocks, at width 1.0.
pub const V1_BLOCKS: [(usize, usize); 13] = [
    (1, 64),
    (2, 128),
    (1, 128),
    (2, 256),
    (1, 256),
    (2, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (1, 512),
    (2, 1024),
    (1, 1024),
];

/// `round(alpha * c)`, the paper's channel count at width multiplier `alpha_pct` percent.
pub fn scale_channels(c: usize, alpha_pct: u32) -> usize {
    ((c as u64 * alpha_pct as u64 + 50) / 100).max(1) as usize
}

/// The id prefix of a MobileNet v1 variant, e.g. `mbv1_a075_r192`.
pub fn v1_id(alpha_pct: u32, resolution: usize) -> String {
    format!("mbv1_a{alpha_pct:03}_r{resolution}")
}

/// MobileNet v1 (Table 1) at width multiplier `alpha_pct` percent and input `resolution`: the
/// stem, 13 depthwise + pointwise blocks, global average pool, fully connected (1000 classes).
pub fn mobilenet_v1(alpha_pct: u32, resolution: usize) -> Network {
    v1(alpha_pct, resolution, false)
}

/// "Conv MobileNet" (Table 4): MobileNet v1 with each depthwise + pointwise pair replaced by one
/// standard 3x3 convolution of the same stride and channels (layers `..._stdNN`).
pub fn conv_mobilenet_v1(alpha_pct: u32, resolution: usize) -> Network {
    v1(alpha_pct, resolution, true)
}

fn v1(alpha_pct: u32, resolution: usize, standard: bool) -> Network {
    let p = v1_id(alpha_pct, resolution);
    let ch = |c| scale_channels(c, alpha_pct);
    let mut layers = vec![Layer::new(
        format!("{p}_conv01"),
        Op::Conv3x3,
        resolution,
        3,
        ch(32),
        2,
    )];
    let (mut hw, mut c) = (resolution.div_ceil(2), ch(32));
    for (i, &(stride, cout)) in V1_BLOCKS.iter().enumerate() {
        let (b, cout) = (i + 1, ch(cout));
        if standard {
            layers.push(Layer::new(
                format!("{p}_std{b:02}"),
                Op::Conv3x3,
                hw,
                c,
                cout,
                stride,
            ));
        } else {
            layers.push(Layer::new(
                format!("{p}_dw{b:02}"),
                Op::Depthwise3x3,
                hw,
                c,
                c,
                stride,
            ));
            layers.push(Layer::new(
                format!("{p}_pw{b:02}"),
                Op::Pointwise,
                hw.div_ceil(stride),
                c,
                cout,
                1,
            ));
        }
        hw = hw.div_ceil(stride);
        c = cout;
    }
    layers.push(Layer::new(format!("{p}_pool"), Op::AvgPool, hw, c, c, 1));
    layers.push(Layer::new(
        format!("{p}_fc"),
        Op::FullyConnected,
        1,
        c,
        1000,
        1,
    ));
    let alpha = format!("{}.{:02}", alpha_pct / 100, alpha_pct % 100);
    let alpha = alpha.trim_end_matches('0').trim_end_matches('.');
    let alpha = if alpha.contains('.') {
        alpha.to_string()
    } else {
        format!("{alpha}.0")
    };
    Network {
        id: if standard {
            format!("mbv1conv_a{alpha_pct:03}_r{resolution}")
        } else {
            p
        },
        name: format!(
            "{} {alpha}-{resolution}",
            if standard {
                "Conv MobileNet"
            } else {
                "MobileNet v1"
            }
        ),
        alpha_pct,
        resolution,
        layers,
    }
}

/// MobileNet v2 bottlenecks (Sandler et al. 2018, Table 2): `(expansion t, output channels c,
/// repeats n, first stride s)`.
pub const V2_BOTTLENECKS: [(usize, usize, usize, usize); 7] = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
];

/// MobileNet v2 at 224, width 1.0: the stem (3x3 s2, 3 -> 32), 17 bottlenecks (expansion 1x1,
/// depthwise 3x3, projection 1x1; the first has no expansion), the last 1x1 (320 -> 1280), pool
/// and classifier. Residual adds are not layers here (they cost no multiply-adds).
pub fn mobilenet_v2() -> Network {
    let p = "mbv2_a100_r224";
    let mut layers = vec![Layer::new(
        format!("{p}_conv01"),
        Op::Conv3x3,
        224,
        3,
        32,
        2,
    )];
    let (mut hw, mut c, mut b) = (112, 32, 0);
    for &(t, cout, n, s) in &V2_BOTTLENECKS {
        for r in 0..n {
            b += 1;
            let stride = if r == 0 { s } else { 1 };
            let mid = c * t;
            if t != 1 {
                layers.push(Layer::new(
                    format!("{p}_b{b:02}_exp"),
                    Op::Pointwise,
                    hw,
                    c,
                    mid,
                    1,
                ));
            }
            layers.push(Layer::new(
                format!("{p}_b{b:02}_dw"),
                Op::Depthwise3x3,
                hw,
                mid,
                mid,
                stride,
            ));
            hw = hw.div_ceil(stride);
            layers.push(Layer::new(
                format!("{p}_b{b:02}_proj"),
                Op::Pointwise,
                hw,
                mid,
                cout,
                1,
            ));
            c = cout;
        }
    }
    layers.push(Layer::new(
        format!("{p}_pw18"),
        Op::Pointwise,
        hw,
        c,
        1280,
        1,
    ));
    layers.push(Layer::new(
        format!("{p}_pool"),
        Op::AvgPool,
        hw,
        1280,
        1280,
        1,
    ));
    layers.push(Layer::new(
        format!("{p}_fc"),
        Op::FullyConnected,
        1,
        1280,
        1000,
        1,
    ));
    Network {
        id: p.to_string(),
        name: "MobileNet v2 1.0-224".to_string(),
        alpha_pct: 100,
        resolution: 224,
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ours` matches the paper's `paper` (printed with `decimals` decimals) within 2%, or
    /// rounds to the same printed value.
    fn close(ours: f64, paper: f64, decimals: i32) -> bool {
        let scale = 10f64.powi(decimals);
        (ours / paper - 1.0).abs() <= 0.02 || (ours * scale).round() == (paper * scale).round()
    }

    #[test]
    fn mobilenet_224_is_569m_macs_and_4_2m_params() {
        let n = mobilenet_v1(100, 224);
        assert_eq!(n.macs(), 568_740_352);
        assert_eq!(n.params(), 4_209_088);
        assert!(close(n.macs() as f64 / 1e6, 569.0, 0));
        assert!(close(n.params() as f64 / 1e6, 4.2, 1));
    }

    #[test]
    fn conv_mobilenet_is_4866m_macs_and_29_3m_params() {
        let n = conv_mobilenet_v1(100, 224);
        assert!(close(n.macs() as f64 / 1e6, 4866.0, 0), "{}", n.macs());
        assert!(close(n.params() as f64 / 1e6, 29.3, 1), "{}", n.params());
    }

    #[test]
    fn width_multipliers_match_table_6() {
        for (alpha, macs, params) in [
            (100, 569.0, 4.2),
            (75, 325.0, 2.6),
            (50, 149.0, 1.3),
            (25, 41.0, 0.5),
        ] {
            let n = mobilenet_v1(alpha, 224);
            let (m, p) = (n.macs() as f64 / 1e6, n.params() as f64 / 1e6);
            assert!(close(m, macs, 0), "alpha {alpha}: {m} M macs");
            assert!(close(p, params, 1), "alpha {alpha}: {p} M params");
        }
    }

    #[test]
    fn resolutions_match_table_7() {
        for (res, macs) in [(224, 569.0), (192, 418.0), (160, 290.0), (128, 186.0)] {
            let n = mobilenet_v1(100, res);
            let m = n.macs() as f64 / 1e6;
            assert!(close(m, macs, 0), "r{res}: {m} M macs");
            assert!((n.params() as f64 / 1e6 - 4.2).abs() < 0.05);
        }
    }

    #[test]
    fn table_2_shares() {
        let n = mobilenet_v1(100, 224);
        let share = |f: &dyn Fn(&Layer) -> bool| {
            n.layers
                .iter()
                .filter(|l| f(l))
                .map(Layer::macs)
                .sum::<u64>() as f64
                / n.macs() as f64
        };
        assert!((share(&|l| l.op == Op::Pointwise) - 0.9486).abs() < 0.001);
        assert!((share(&|l| l.op == Op::Depthwise3x3) - 0.0306).abs() < 0.001);
        // The paper prints 1.19% for the stem; 10.8 M / 568.7 M is 1.91% (and the paper's column
        // only sums to 100% with 1.91%): a transposition in the paper.
        assert!((share(&|l| l.op == Op::Conv3x3) - 0.0191).abs() < 0.001);
        assert!((share(&|l| l.op == Op::FullyConnected) - 0.0018).abs() < 0.001);
    }

    #[test]
    fn v1_layer_table_shapes_and_ids() {
        let n = mobilenet_v1(100, 224);
        assert_eq!(n.layers.len(), 1 + 26 + 2);
        let dw02 = n.layer("mbv1_a100_r224_dw02").unwrap();
        assert_eq!((dw02.h, dw02.cin, dw02.stride), (112, 64, 2));
        assert_eq!(dw02.out_hw(), (56, 56));
        let pw02 = n.layer("mbv1_a100_r224_pw02").unwrap();
        assert_eq!((pw02.h, pw02.cin, pw02.cout), (56, 64, 128));
        let pw13 = n.layer("mbv1_a100_r224_pw13").unwrap();
        assert_eq!((pw13.h, pw13.cin, pw13.cout), (7, 1024, 1024));
        assert_eq!(n.layer("mbv1_a100_r224_pool").unwrap().h, 7);
        assert_eq!(n.layer("mbv1_a100_r224_fc").unwrap().cin, 1024);
        let stem = n.layer("mbv1_a100_r224_conv01").unwrap();
        assert_eq!((stem.cin, stem.cout, stem.stride), (3, 32, 2));
        // Quarter width, 128: channels round(alpha * c), maps 64 .. 4.
        let q = mobilenet_v1(25, 128);
        assert_eq!(q.layer("mbv1_a025_r128_pw13").unwrap().cout, 256);
        assert_eq!(q.layer("mbv1_a025_r128_pool").unwrap().h, 4);
        assert_eq!(q.name, "MobileNet v1 0.25-128");
        assert_eq!(n.name, "MobileNet v1 1.0-224");
        // Every id is unique across all variants.
        let mut ids: Vec<String> = V1_ALPHAS
            .iter()
            .flat_map(|&a| V1_RESOLUTIONS.iter().map(move |&r| (a, r)))
            .flat_map(|(a, r)| {
                mobilenet_v1(a, r)
                    .layers
                    .into_iter()
                    .chain(conv_mobilenet_v1(a, r).layers)
            })
            .map(|l| l.id)
            .chain(mobilenet_v2().layers.into_iter().map(|l| l.id))
            .collect();
        let total = ids.len();
        ids.sort();
        ids.dedup();
        // The stem, pool and fc are shared by a network and its Conv MobileNet twin.
        assert_eq!(ids.len(), total - 16 * 3);
    }

    #[test]
    fn separable_over_standard_is_1_over_n_plus_1_over_9() {
        let (sep, std) = (mobilenet_v1(100, 224), conv_mobilenet_v1(100, 224));
        for b in 1..=13 {
            let dw = sep.layer(&format!("mbv1_a100_r224_dw{b:02}")).unwrap();
            let pw = sep.layer(&format!("mbv1_a100_r224_pw{b:02}")).unwrap();
            let sc = std.layer(&format!("mbv1_a100_r224_std{b:02}")).unwrap();
            let ratio = (dw.macs() + pw.macs()) as f64 / sc.macs() as f64;
            let theory = 1.0 / pw.cout as f64 + 1.0 / 9.0;
            assert!((ratio - theory).abs() < 1e-12, "block {b}");
        }
    }

    #[test]
    fn mobilenet_v2_is_300m_macs_and_3_4m_params() {
        let n = mobilenet_v2();
        assert_eq!(
            n.layers.iter().filter(|l| l.op == Op::Depthwise3x3).count(),
            17
        );
        let m = n.macs() as f64 / 1e6;
        let p = n.params() as f64 / 1e6;
        assert!((m / 300.0 - 1.0).abs() < 0.02, "{m} M macs");
        assert!((p / 3.4 - 1.0).abs() < 0.05, "{p} M params");
        let last = n.layer("mbv2_a100_r224_pw18").unwrap();
        assert_eq!((last.h, last.cin, last.cout), (7, 320, 1280));
        let b02 = n.layer("mbv2_a100_r224_b02_dw").unwrap();
        assert_eq!((b02.h, b02.cin, b02.stride), (112, 96, 2));
    }
}
