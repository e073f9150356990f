#!/usr/bin/python3
"""Generate tiny.onnx and tiny_expected.json, the test model of package inference.

tiny.onnx: input "input" float32 [N,1,8,8] (N dynamic) -> output "probs"
float32 [N,3]: Conv2d(1->4, 3x3, pad 1) -> ReLU -> global average pool ->
Linear(4->3) -> Softmax. Weights come from torch.manual_seed(7), so the file
is reproducible from this script (torch 1.13, opset 13).

tiny_expected.json: PyTorch's output for the formula-defined batch
x[k] = sin(0.37*k) + 0.01*k (k = flat NCHW index) with N = 4, so the Go test
rebuilds the input from the formula and compares probabilities (1e-5).

Run: /usr/bin/python3 internal/inference/testdata/make_tiny.py
"""
import json
import math
import os

import torch

torch.manual_seed(7)
here = os.path.dirname(os.path.abspath(__file__))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        x = x.mean(dim=(2, 3))
        return torch.softmax(self.fc(x), dim=1)


m = Tiny().eval()
torch.onnx.export(
    m,
    torch.zeros(1, 1, 8, 8),
    os.path.join(here, "tiny.onnx"),
    input_names=["input"],
    output_names=["probs"],
    dynamic_axes={"input": {0: "N"}, "probs": {0: "N"}},
    opset_version=13,
)

n = 4
flat = [math.sin(0.37 * k) + 0.01 * k for k in range(n * 64)]
x = torch.tensor(flat, dtype=torch.float32).reshape(n, 1, 8, 8)
with torch.no_grad():
    y = m(x)
with open(os.path.join(here, "tiny_expected.json"), "w") as f:
    json.dump(
        {
            "formula": "x[k] = sin(0.37*k) + 0.01*k, k = flat NCHW index",
            "shape": [n, 1, 8, 8],
            "probs": [[round(float(v), 8) for v in row] for row in y],
        },
        f,
        indent=1,
    )
    f.write("\n")
