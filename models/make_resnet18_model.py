#!/usr/bin/python3
"""Writes the real-size model: OUTDIR/resnet18/model.pt (TorchScript) and
config.json. torchvision's ResNet-18 architecture (Debian's
python3-torchvision) with random weights from a fixed seed: it is NOT
trained (nothing can be downloaded here), so its outputs are meaningless as
classes; its activations have a real model's sizes, which is what the bench,
the dashboard test and `make demo` need (layer1 for one 224x224 image is
64x56x56 float32 = 784 KiB).

Input x [N, 3, 224, 224] float32; output logits [N, 1000]; capturable layers
conv1, layer1, layer2, layer3, layer4, fc (and the others torchvision names).

usage: make_resnet18_model.py OUTDIR"""
import json
import os
import sys

import torch
import torchvision
from torch import nn

SEED = 20261207
LAYERS = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
          "avgpool", "fc"]


class ResNet18(nn.Module):
    """torchvision's resnet18 with its forward written out, so every stage is
    a direct call on a named submodule (what capture hooks onto)."""

    def __init__(self):
        super().__init__()
        net = torchvision.models.resnet18(weights=None)
        for name in LAYERS:
            setattr(self, name, getattr(net, name))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def main():
    out = os.path.join(sys.argv[1], "resnet18")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    model = ResNet18().eval()
    torch.jit.script(model).save(os.path.join(out, "model.pt"))
    config = {
        "device": "auto",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 3, 224, 224]}],
        "outputs": ["logits"],
        "layers": LAYERS,
        "max_batch": 32,
        "instances": 1,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    params = sum(p.numel() for p in model.parameters())
    print(f"resnet18 model: {params:,} parameters, random weights (seed {SEED}, untrained)",
          flush=True)


if __name__ == "__main__":
    main()
