"""Compact CNN for NORMAL vs PNEUMONIA chest radiographs.

Input: float32 [N, 1, 224, 224], already normalised by the preprocessing
contract ((x - 0.5) / 0.25). The network first standardises every image on
its own (zero mean, unit variance over its pixels) so that global brightness
and contrast differences between acquisition sites do not reach the
convolutions; this is part of the graph, not of the preprocessing contract.

Output of ``forward``: logits [N, 2] in label order ["NORMAL", "PNEUMONIA"].
``ExportWrapper`` adds the softmax for the ONNX graph ("probabilities").
"""

from __future__ import annotations

import torch
from torch import nn

LABELS = ["NORMAL", "PNEUMONIA"]


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class PerImageStandardize(nn.Module):
    """x -> (x - mean(x)) / sqrt(var(x) + eps), per image over C,H,W."""

    def __init__(self, eps: float = 1e-5):
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps)


class RadNet(nn.Module):
    """Stride-2 stem, four stride-2 stages of two 3x3 conv-BN-ReLU, GAP, dropout, linear.

    224 -> 112 -> 56 -> 28 -> 14 -> 7. About 0.3M parameters.
    """

    def __init__(self, widths=(16, 32, 48, 80, 128), dropout: float = 0.2):
        super().__init__()
        w0, w1, w2, w3, w4 = widths
        self.std = PerImageStandardize()
        self.features = nn.Sequential(
            conv_bn(1, w0, 2),  # 112
            conv_bn(w0, w1, 2),  # 56
            conv_bn(w1, w1),
            conv_bn(w1, w2, 2),  # 28
            conv_bn(w2, w2),
            conv_bn(w2, w3, 2),  # 14
            conv_bn(w3, w3),
            conv_bn(w3, w4, 2),  # 7
            conv_bn(w4, w4),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(w4, len(LABELS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.std(x))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(self.drop(x))


class ExportWrapper(nn.Module):
    """RadNet with softmax: image [N,1,224,224] -> probabilities [N,2]."""

    def __init__(self, net: RadNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(image), dim=1)
