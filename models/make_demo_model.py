#!/usr/bin/python3
"""Writes the bundled demo model: OUTDIR/demo/model.pt (TorchScript) and
config.json. A small CNN on 28x28 single-channel inputs with named layers,
trained here on the handwritten digits Debian's python3-sklearn ships
(load_digits: 1,797 8x8 images), fixed seed, no downloads.

The input contract (the dashboard's draw pad and scripts/demo.py follow it):
an 8x8 digit image scaled to [0, 1], upsampled to 28x28 bilinearly
(align_corners=False), ink bright on a dark background.

usage: make_demo_model.py OUTDIR"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SEED = 20261123
EPOCHS = 30
HELD_OUT = 0.2


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


def to_model_input(images8):
    """(N, 8, 8) digits with values 0..16 -> (N, 1, 28, 28) float32 in [0, 1]."""
    x = torch.as_tensor(np.asarray(images8, dtype=np.float32) / 16.0).unsqueeze(1)
    return F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)


def jitter(x, generator):
    """Small random shifts and scales, so a digit drawn by hand off-centre or
    a little larger or smaller than the dataset's is still recognised."""
    n = x.shape[0]
    scale = 0.85 + 0.3 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) - 0.5) * 0.3
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)


def train(model):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = to_model_input(digits.images)
    y = torch.as_tensor(digits.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(SEED)
    order = torch.randperm(len(y), generator=generator)
    n_test = int(len(y) * HELD_OUT)
    test, fit = order[:n_test], order[n_test:]
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(EPOCHS):
        perm = fit[torch.randperm(len(fit), generator=generator)]
        for i in range(0, len(perm), 64):
            batch = perm[i:i + 64]
            loss = F.cross_entropy(model(jitter(x[batch], generator)), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    return accuracy, n_test


def main():
    out = os.path.join(sys.argv[1], "demo")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = DemoCNN()
    start = time.monotonic()
    accuracy, n_test = train(model)
    print(f"demo model: trained on sklearn load_digits in {time.monotonic() - start:.1f} s, "
          f"held-out accuracy {accuracy:.1%} ({n_test} digits)", flush=True)
    if accuracy < 0.95:
        sys.exit(f"demo model: held-out accuracy {accuracy:.1%} is under 95%")
    torch.jit.script(model.eval()).save(os.path.join(out, "model.pt"))
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
    with open(os.path.join(out, "accuracy.json"), "w") as f:
        json.dump({"held_out_accuracy": accuracy, "held_out_digits": n_test, "seed": SEED}, f)


if __name__ == "__main__":
    main()
