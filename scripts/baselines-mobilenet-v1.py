#!/usr/bin/env python3
"""Same-machine library baselines for `sepconv-bench mobilenet`: MobileNet v1 1.0-224, batch 1,
in XNNPACK (through LiteRT, TensorFlow Lite's runtime, whose CPU path it is) and ONNX Runtime.

The network of `bench-harness/src/mobilenet` (stem conv 3x3 s2, 13 depthwise-separable blocks,
batch norm folded into each conv's bias, ReLU6, 7x7 average pool, fully connected 1024 x 1000,
softmax) with seeded random weights, written once as a `.tflite` flatbuffer (NHWC, TensorFlow's
`SAME` padding) and once as an ONNX graph (NCHW, the same padding spelled out), from numpy
alone: no TensorFlow or PyTorch needed. Both models are run on one input and their outputs
compared before anything is timed, so the two libraries are known to compute the same network.
Prints median / min / max ms over the timed runs (after 10 warm-up runs) at each thread count.

    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install ai-edge-litert tflite onnx onnxruntime numpy
    /tmp/venv/bin/python scripts/baselines-mobilenet-v1.py --runs 200 1 2   # thread counts

LiteRT applies XNNPACK by default to a float model; `--no-xnnpack` also times its reference
builtin kernels, to show that the default path is XNNPACK's. ONNX Runtime runs its CPU provider
(MLAS kernels, for the widest ISA this CPU has: AVX-512 where present).

`--layers` prints instead ONNX Runtime's time per layer (its profiler's kernel time of each node,
median over the runs), one `layer NAME MS` line per layer under sepconv's layer names, for
`scripts/compare-mobilenet-layers.sh`. (XNNPACK runs the whole graph as one LiteRT delegate node,
so the Python API gives only its end-to-end time.)
"""
import argparse
import json
import os
import statistics
import tempfile

import flatbuffers
import numpy as np
import onnx
import onnxruntime as ort
import tflite
from ai_edge_litert import interpreter as litert
from onnx import TensorProto, helper, numpy_helper

from timing import timed

# (input channels, output channels, depthwise stride) of the 13 separable blocks.
BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] \
    + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]


def weights(seed=0):
    """Folded weights in HWIO / HW-C / [in][out] layouts, He-scaled so activations stay finite."""
    rng = np.random.default_rng(seed)

    def he(shape, fan_in):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def bias(n):
        return (rng.standard_normal(n) * 0.05).astype(np.float32)

    w = {"stem": (he((3, 3, 3, 32), 27), bias(32)), "blocks": []}
    for ci, co, _ in BLOCKS:
        w["blocks"].append(((he((3, 3, ci), 9), bias(ci)), (he((ci, co), ci), bias(co))))
    w["fc"] = (he((1024, 1000), 1024), bias(1000))
    return w


# ---------------------------------------------------------------- TFLite (XNNPACK via LiteRT)

def tflite_model(w):
    """The network as a `.tflite` flatbuffer (bytes): NHWC, `SAME` padding, ReLU6 fused."""
    b = flatbuffers.Builder(1 << 24)
    buffers, tensors, ops, codes = [b""], [], [], []

    def tensor(shape, data=None):
        if data is not None:
            buffers.append(np.ascontiguousarray(data, np.float32).tobytes())
        tensors.append((list(shape), len(buffers) - 1 if data is not None else 0))
        return len(tensors) - 1

    def opcode(code):
        if code not in codes:
            codes.append(code)
        return codes.index(code)

    def op(code, inputs, outputs, options_type, options):
        ops.append((opcode(code), inputs, outputs, options_type, options))

    def conv(x, shape_out, filt, bias, stride, depthwise):
        y = tensor(shape_out)
        if depthwise:
            def options():
                tflite.DepthwiseConv2DOptionsStart(b)
                tflite.DepthwiseConv2DOptionsAddPadding(b, tflite.Padding.SAME)
                tflite.DepthwiseConv2DOptionsAddStrideW(b, stride)
                tflite.DepthwiseConv2DOptionsAddStrideH(b, stride)
                tflite.DepthwiseConv2DOptionsAddDepthMultiplier(b, 1)
                tflite.DepthwiseConv2DOptionsAddFusedActivationFunction(
                    b, tflite.ActivationFunctionType.RELU6)
                tflite.DepthwiseConv2DOptionsAddDilationWFactor(b, 1)
                tflite.DepthwiseConv2DOptionsAddDilationHFactor(b, 1)
                return tflite.DepthwiseConv2DOptionsEnd(b)
            f = tensor((1, 3, 3, filt.shape[2]), filt[None])  # [1][3][3][C]
            op(tflite.BuiltinOperator.DEPTHWISE_CONV_2D, [x, f, tensor(bias.shape, bias)], [y],
               tflite.BuiltinOptions.DepthwiseConv2DOptions, options)
        else:
            def options():
                tflite.Conv2DOptionsStart(b)
                tflite.Conv2DOptionsAddPadding(b, tflite.Padding.SAME)
                tflite.Conv2DOptionsAddStrideW(b, stride)
                tflite.Conv2DOptionsAddStrideH(b, stride)
                tflite.Conv2DOptionsAddFusedActivationFunction(
                    b, tflite.ActivationFunctionType.RELU6)
                tflite.Conv2DOptionsAddDilationWFactor(b, 1)
                tflite.Conv2DOptionsAddDilationHFactor(b, 1)
                return tflite.Conv2DOptionsEnd(b)
            ohwi = np.transpose(filt, (3, 0, 1, 2))  # HWIO -> OHWI
            op(tflite.BuiltinOperator.CONV_2D, [x, tensor(ohwi.shape, ohwi),
                                                tensor(bias.shape, bias)], [y],
               tflite.BuiltinOptions.Conv2DOptions, options)
        return y

    x0 = tensor((1, 224, 224, 3))
    x, hw = conv(x0, (1, 112, 112, 32), *w["stem"], 2, False), 112
    for (ci, co, s), ((dw, dwb), (pw, pwb)) in zip(BLOCKS, w["blocks"]):
        hw //= s
        x = conv(x, (1, hw, hw, ci), dw, dwb, s, True)
        x = conv(x, (1, hw, hw, co), pw.reshape(1, 1, ci, co), pwb, 1, False)

    def pool_options():
        tflite.Pool2DOptionsStart(b)
        tflite.Pool2DOptionsAddPadding(b, tflite.Padding.VALID)
        tflite.Pool2DOptionsAddStrideW(b, 1)
        tflite.Pool2DOptionsAddStrideH(b, 1)
        tflite.Pool2DOptionsAddFilterWidth(b, 7)
        tflite.Pool2DOptionsAddFilterHeight(b, 7)
        return tflite.Pool2DOptionsEnd(b)
    pooled = tensor((1, 1, 1, 1024))
    op(tflite.BuiltinOperator.AVERAGE_POOL_2D, [x], [pooled],
       tflite.BuiltinOptions.Pool2DOptions, pool_options)

    def fc_options():
        tflite.FullyConnectedOptionsStart(b)
        return tflite.FullyConnectedOptionsEnd(b)
    fw, fb = w["fc"]
    logits = tensor((1, 1000))
    op(tflite.BuiltinOperator.FULLY_CONNECTED,
       [pooled, tensor((1000, 1024), fw.T), tensor(fb.shape, fb)], [logits],
       tflite.BuiltinOptions.FullyConnectedOptions, fc_options)

    def softmax_options():
        tflite.SoftmaxOptionsStart(b)
        tflite.SoftmaxOptionsAddBeta(b, 1.0)
        return tflite.SoftmaxOptionsEnd(b)
    probs = tensor((1, 1000))
    op(tflite.BuiltinOperator.SOFTMAX, [logits], [probs],
       tflite.BuiltinOptions.SoftmaxOptions, softmax_options)

    # Serialize, innermost objects first (flatbuffers builds back to front).
    def vector(start, items, add):
        start(b, len(items))
        for item in reversed(items):
            add(item)
        return b.EndVector()

    buffer_offsets = []
    for data in buffers:
        d = b.CreateByteVector(data) if data else None
        tflite.BufferStart(b)
        if d is not None:
            tflite.BufferAddData(b, d)
        buffer_offsets.append(tflite.BufferEnd(b))
    tensor_offsets = []
    for i, (shape, buf) in enumerate(tensors):
        name = b.CreateString(f"t{i}")
        sh = vector(tflite.TensorStartShapeVector, shape, b.PrependInt32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, sh)
        tflite.TensorAddType(b, tflite.TensorType.FLOAT32)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name)
        tensor_offsets.append(tflite.TensorEnd(b))
    op_offsets = []
    for code, inputs, outputs, options_type, options in ops:
        opts = options()
        ins = vector(tflite.OperatorStartInputsVector, inputs, b.PrependInt32)
        outs = vector(tflite.OperatorStartOutputsVector, outputs, b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, code)
        tflite.OperatorAddInputs(b, ins)
        tflite.OperatorAddOutputs(b, outs)
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, opts)
        op_offsets.append(tflite.OperatorEnd(b))
    code_offsets = []
    for code in codes:
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offsets.append(tflite.OperatorCodeEnd(b))
    t_vec = vector(tflite.SubGraphStartTensorsVector, tensor_offsets, b.PrependUOffsetTRelative)
    o_vec = vector(tflite.SubGraphStartOperatorsVector, op_offsets, b.PrependUOffsetTRelative)
    in_vec = vector(tflite.SubGraphStartInputsVector, [x0], b.PrependInt32)
    out_vec = vector(tflite.SubGraphStartOutputsVector, [probs], b.PrependInt32)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, t_vec)
    tflite.SubGraphAddInputs(b, in_vec)
    tflite.SubGraphAddOutputs(b, out_vec)
    tflite.SubGraphAddOperators(b, o_vec)
    subgraph = tflite.SubGraphEnd(b)
    sg_vec = vector(tflite.ModelStartSubgraphsVector, [subgraph], b.PrependUOffsetTRelative)
    oc_vec = vector(tflite.ModelStartOperatorCodesVector, code_offsets, b.PrependUOffsetTRelative)
    bf_vec = vector(tflite.ModelStartBuffersVector, buffer_offsets, b.PrependUOffsetTRelative)
    desc = b.CreateString("sepconv MobileNet v1 1.0-224 baseline")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, oc_vec)
    tflite.ModelAddSubgraphs(b, sg_vec)
    tflite.ModelAddDescription(b, desc)
    tflite.ModelAddBuffers(b, bf_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


# ---------------------------------------------------------------- ONNX (ONNX Runtime)

def onnx_model(w):
    """The same network as an ONNX graph: NCHW, TensorFlow's `SAME` pads written out."""
    nodes, inits = [], []

    def init(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def conv(x, name, oihw, bias, stride, group, in_hw):
        # TensorFlow `SAME`: total padding max((out - 1) * stride + 3 - in, 0), the extra one at
        # the bottom / right.
        k = oihw.shape[2]
        out_hw = -(-in_hw // stride)
        total = max((out_hw - 1) * stride + k - in_hw, 0)
        pads = [total // 2, total // 2, total - total // 2, total - total // 2]
        nodes.append(helper.make_node(
            "Conv", [x, init(name + "_w", oihw), init(name + "_b", bias)], [name + "_c"],
            strides=[stride, stride], pads=pads, group=group, kernel_shape=[k, k]))
        nodes.append(helper.make_node("Clip", [name + "_c", "zero", "six"], [name]))
        return name, out_hw

    init("zero", np.array(0.0))
    init("six", np.array(6.0))
    sw, sb = w["stem"]
    x, hw = conv("input", "conv1", np.transpose(sw, (3, 2, 0, 1)), sb, 2, 1, 224)
    for i, ((ci, co, s), ((dw, dwb), (pw, pwb))) in enumerate(zip(BLOCKS, w["blocks"])):
        dw_oihw = np.transpose(dw, (2, 0, 1))[:, None]  # [C][1][3][3]
        x, hw = conv(x, f"dw{i + 1}", dw_oihw, dwb, s, ci, hw)
        x, hw = conv(x, f"pw{i + 1}", pw.T[:, :, None, None], pwb, 1, 1, hw)
    fw, fb = w["fc"]
    nodes += [
        helper.make_node("GlobalAveragePool", [x], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", init("fc_w", fw), init("fc_b", fb)], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "mobilenet_v1", [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             [1, 3, 224, 224])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 1000])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


# ---------------------------------------------------------------- runners


def litert_runner(model, threads, xnnpack=True):
    kind = litert.OpResolverType.AUTO if xnnpack \
        else litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = litert.Interpreter(model_content=model, num_threads=threads,
                            experimental_op_resolver_type=kind)
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]

    def run(x):
        it.set_tensor(i, x)
        it.invoke()
        return it.get_tensor(o)
    return run


def ort_session(model, threads, profile_prefix=None):
    """An ONNX Runtime CPU session on `threads` threads, all graph optimisations on; profiling
    into files starting with `profile_prefix` when one is given."""
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def ort_runner(model, threads):
    s = ort_session(model, threads)
    return lambda x: s.run(None, {"input": x})[0]


def ort_layers(model, x, threads, runs, warm=10):
    """ONNX Runtime's median kernel time per node over `runs` runs on input `x` (after `warm`),
    in ms, keyed by sepconv's layer names (`conv1`, `conv_dw_1`, `conv_pw_1`, ...,
    `global_average_pooling2d`, `conv_preds`, `softmax`); the layout conversions ONNX Runtime
    inserts (NCHWc reorders) and the flatten are summed under `(layout)`, any other node keeps
    its own name in parentheses."""
    with tempfile.TemporaryDirectory() as tmp:
        s = ort_session(model, threads, os.path.join(tmp, "ort"))
        for _ in range(warm + runs):
            s.run(None, {"input": x})
        events = json.load(open(s.end_profiling()))
    per_run = {}  # node -> kernel microseconds of each run, in order
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_run.setdefault(e["name"][:-len("_kernel_time")], []).append(e["dur"])

    def sepconv_name(node):
        base = node.removesuffix("_nchwc")
        for prefix, name in (("dw", "conv_dw_"), ("pw", "conv_pw_")):
            if base.startswith(prefix) and base[len(prefix):].isdigit():
                return name + base[len(prefix):]
        op = node.split("_")[0]
        if op.startswith("Reorder") or op == "Flatten":
            return "(layout)"
        return {"conv1": "conv1", "pool": "global_average_pooling2d"}.get(base) or \
            {"Gemm": "conv_preds", "Softmax": "softmax"}.get(op, f"({node})")

    layers = {}
    for node, times in per_run.items():
        assert len(times) == warm + runs, (node, len(times))
        name = sepconv_name(node)
        layers[name] = [a + b for a, b in zip(layers.get(name, [0] * runs), times[warm:])]
    return {name: statistics.median(t) / 1e3 for name, t in layers.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("threads", nargs="*", type=int, default=[1])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--no-xnnpack", action="store_true",
                    help="also time LiteRT's builtin kernels without the XNNPACK delegate")
    ap.add_argument("--layers", action="store_true",
                    help="print ONNX Runtime's median time per layer instead (first thread count)")
    args = ap.parse_args()
    w = weights()
    x_nhwc = np.random.default_rng(1).standard_normal((1, 224, 224, 3)).astype(np.float32)
    x_nchw = np.ascontiguousarray(np.transpose(x_nhwc, (0, 3, 1, 2)))
    if args.layers:
        print("ONNX Runtime", ort.__version__, f"(CPU provider), {args.threads[0]} thread(s),",
              f"kernel time per layer, median of {args.runs} runs")
        for name, ms in ort_layers(onnx_model(w), x_nchw, args.threads[0], args.runs).items():
            print(f"layer {name} {ms:.4f}")
        return
    tfl, onx = tflite_model(w), onnx_model(w)
    print(f"LiteRT {getattr(litert, '__version__', '')}".strip(), "(XNNPACK),",
          "ONNX Runtime", ort.__version__, "(CPU provider), numpy", np.__version__)
    a, b = litert_runner(tfl, 1)(x_nhwc), ort_runner(onx, 1)(x_nchw)
    diff = float(np.abs(a - b).max())
    top_a, top_b = np.argsort(-a[0])[:5].tolist(), np.argsort(-b[0])[:5].tolist()
    print(f"outputs agree: max |diff| {diff:.2e}, top-5 {top_a} / {top_b}")
    assert diff < 1e-4 and top_a == top_b, "the two models do not compute the same network"
    for threads in args.threads:
        rows = [("XNNPACK (LiteRT)", litert_runner(tfl, threads), x_nhwc),
                ("ONNX Runtime", ort_runner(onx, threads), x_nchw)]
        if args.no_xnnpack:
            rows.append(("LiteRT builtin, no XNNPACK", litert_runner(tfl, threads, False),
                         x_nhwc))
        for name, run, x in rows:
            med, lo, hi = timed(lambda: run(x), args.runs)
            print(f"{name:28} {threads:2} thread(s): median {med:7.3f} ms  "
                  f"min {lo:7.3f}  max {hi:7.3f}  ({args.runs} runs)", flush=True)


if __name__ == "__main__":
    main()
