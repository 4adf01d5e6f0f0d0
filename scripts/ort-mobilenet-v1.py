#!/usr/bin/env python3
"""A same-machine library baseline for `sepconv-bench mobilenet`: MobileNet v1 1.0-224, batch 1.

The network of `bench-harness/src/mobilenet` (stem conv 3x3 s2, 13 depthwise-separable blocks,
batch norm folded into each conv's bias, ReLU6, global average pool, fully connected 1024 x 1000,
softmax) in PyTorch with seeded random weights, exported to ONNX and timed in ONNX Runtime's CPU
provider (MLAS kernels, whatever ISA it picks for this CPU), and in PyTorch itself (channels-last,
oneDNN), at each thread count given. Prints median / min / max ms over the timed runs (after 10
warm-up ones). Needs torch, onnx and onnxruntime (not a dependency of the Rust workspace).

    python3 scripts/ort-mobilenet-v1.py 1 16      # thread counts
"""
import sys

import torch
import torch.nn as nn

from timing import timed

BLOCKS = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] \
    + [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]


def mobilenet_v1():
    layers = [nn.Conv2d(3, 32, 3, 2, 1), nn.ReLU6()]
    for ci, co, s in BLOCKS:
        layers += [nn.Conv2d(ci, ci, 3, s, 1, groups=ci), nn.ReLU6(), nn.Conv2d(ci, co, 1), nn.ReLU6()]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1024, 1000), nn.Softmax(dim=1)]
    return nn.Sequential(*layers).eval()


def main():
    torch.manual_seed(0)
    m, x = mobilenet_v1(), torch.randn(1, 3, 224, 224)
    path = "/tmp/sepconv-mobilenet-v1.onnx"
    ort = None
    try:
        torch.onnx.export(m, x, path, opset_version=17, dynamo=False)
        import onnxruntime as ort
        print("onnxruntime", ort.__version__, flush=True)
    except Exception as e:  # no exporter or no onnxruntime: PyTorch alone
        print("no ONNX Runtime:", repr(e)[:300], flush=True)
    print("torch", torch.__version__, flush=True)
    for threads in [int(a) for a in sys.argv[1:]] or [1]:
        if ort is not None:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = {s.get_inputs()[0].name: x.numpy()}
            r = timed(lambda: s.run(None, feed), 150 if threads == 1 else 300)
            print(f"ORT   threads {threads:2d}: median {r[0]:.2f} ms  min {r[1]:.2f}  max {r[2]:.2f}", flush=True)
        torch.set_num_threads(threads)
        mc, xc = m.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
        with torch.inference_mode():
            r = timed(lambda: mc(xc), 100 if threads == 1 else 200)
        print(f"torch threads {threads:2d}: median {r[0]:.2f} ms  min {r[1]:.2f}  max {r[2]:.2f}", flush=True)


if __name__ == "__main__":
    main()
