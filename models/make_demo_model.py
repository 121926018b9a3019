#!/usr/bin/python3
"""Writes the bundled demo model: OUTDIR/demo/model.pt (TorchScript) and
config.json. A small CNN on 28x28 single-channel inputs with named layers,
fixed seed, no downloads. usage: make_demo_model.py OUTDIR"""
import json
import os
import sys

import torch
from torch import nn


class DemoCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(self.flatten(x))


def main():
    out = os.path.join(sys.argv[1], "demo")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20261123)
    model = DemoCNN().eval()
    scripted = torch.jit.script(model)
    scripted.save(os.path.join(out, "model.pt"))
    config = {
        "device": "auto",
        "inputs": [{"name": "x", "dtype": "float32", "shape": [-1, 1, 28, 28]}],
        "outputs": ["logits"],
        "layers": ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2", "flatten", "fc"],
        "max_batch": 256,
        "instances": 2,
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)


if __name__ == "__main__":
    main()
