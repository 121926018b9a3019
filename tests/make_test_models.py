"""TorchScript models for the inference tests, written with Debian's torch."""
import json
import os
import subprocess
import sys
from typing import Dict

import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Head(nn.Module):
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"mean": x.mean(dim=1), "max": x.amax(dim=1)}


class DictModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(6, 4)
        self.head = Head()

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        h = self.proj(x)
        parts = self.head(h)
        return {"logits": h, "probs": torch.softmax(h, dim=1), "mean": parts["mean"]}


class Bf16Model(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * 3).to(torch.bfloat16)


class TwoInputs(nn.Module):
    def forward(self, a: torch.Tensor, b: torch.Tensor):
        return a + 2 * b, a * b


class Transpose(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.t()  # a strided view: the store must make it contiguous


def write(repo, name, module, config=None):
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    torch.jit.script(module).save(os.path.join(d, "model.pt"))
    if config is not None:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f)
    return d


def make_repository(repo):
    subprocess.run([sys.executable, os.path.join(ROOT, "models", "make_demo_model.py"), repo],
                   check=True)
    torch.manual_seed(1)
    write(repo, "dicts", DictModel().eval())
    write(repo, "bf16", Bf16Model())
    write(repo, "transpose", Transpose())
    write(repo, "two", TwoInputs(), {
        "inputs": [{"name": "a", "dtype": "float64", "shape": [-1, 3]},
                   {"name": "b", "dtype": "float64", "shape": [-1, 3]}],
        "outputs": ["sum", "product"], "max_batch": 8, "instances": 2})
    broken = os.path.join(repo, "broken")
    os.makedirs(broken, exist_ok=True)
    with open(os.path.join(broken, "model.pt"), "wb") as f:
        f.write(b"this is not a TorchScript archive")
    return repo
