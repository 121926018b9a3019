"""GPU path against a real daemon: Put to cuda:0 (host-to-device through the
staging ring), Fetch back (device-to-host through the ring), inference on the
GPU, metrics. Every test here skips, naming the reason, where npystreamd finds
no usable CUDA device (the daemon's own probe decides, not Python's torch)."""
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import DAEMON, ROOT, Daemon
from make_test_models import Transpose, write
from npy_ref import save_bytes
from conftest import http, metrics

DTYPES = [np.float32, np.float16, np.float64, np.int8, np.uint8, np.int16, np.int32, np.int64,
          np.bool_, np.complex64]


def ring_free(daemon, want):
    """npystream_staging_ring_free_bytes once it reaches `want` (gRPC lets go
    of the last sent slices a moment after the client has them), or after 5 s."""
    deadline = time.time() + 5
    while True:
        free = metrics(daemon)["npystream_staging_ring_free_bytes"]
        if free == want or time.time() > deadline:
            return free
        time.sleep(0.05)


def probe():
    """(has_cuda, detail) from the daemon's startup 'devices' log line."""
    d = Daemon()
    try:
        line = next((l for l in d.log if " devices " in l), "")
    finally:
        d.stop()
    detail = re.search(r'detail="([^"]*)"', line)
    return " using=cuda" in line, (detail.group(1) if detail else line.strip())


HAS_CUDA, DETAIL = probe()
needs_gpu = pytest.mark.skipif(not HAS_CUDA, reason=f"no CUDA device for npystreamd: {DETAIL}")


@pytest.fixture(scope="module")
def gpu(tmp_path_factory):
    if not HAS_CUDA:
        pytest.skip(f"no CUDA device for npystreamd: {DETAIL}")
    repo = str(tmp_path_factory.mktemp("gpu_models"))
    subprocess.run([sys.executable, os.path.join(ROOT, "models", "make_demo_model.py"), repo],
                   check=True)
    write(repo, "transpose", Transpose())
    d = Daemon("--device", "cuda:0", "--model-repository", repo,
               "--staging-bytes", "64MiB", "--staging-chunk", "4MiB")
    d.repo = repo
    yield d
    assert d.alive(), "npystreamd died:\n" + "".join(d.log[-50:])
    assert d.stop() == 0


def test_explicit_cuda_device_without_one_fails_at_start():
    if HAS_CUDA:
        pytest.skip("this machine has a CUDA device")
    out = subprocess.run([DAEMON, "--listen", "127.0.0.1:0", "--http-listen", "",
                          "--device", "cuda:0"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "config_failed" in out.stderr and "--device cuda:0" in out.stderr


@needs_gpu
def test_cuda_round_trip_is_numpy_save_bytes(gpu):
    rng = np.random.default_rng(0)
    with gpu.client() as c:
        for i, dtype in enumerate(DTYPES):
            for shape in [(), (0,), (7,), (33, 65), (3, 1, 1025)]:
                arr = (rng.standard_normal(shape) * 50).astype(dtype)
                info = c.put(arr, name=f"g{i}_{len(shape)}_{arr.size}", device="cuda:0")
                assert info.device == "cuda:0"
                got = c.fetch(info.handle)
                assert got.dtype == arr.dtype and got.shape == arr.shape
                assert save_bytes(got) == save_bytes(arr)
                status, _, body = http(gpu, f"/v1/tensors/{info.handle}.npy")
                assert status == 200 and body == save_bytes(arr)
                c.release(info.handle)


@needs_gpu
def test_large_cuda_tensor_goes_through_the_ring_both_ways(gpu):
    arr = np.random.default_rng(1).standard_normal((64 << 20) // 4, dtype=np.float32)
    with gpu.client() as c:
        before = metrics(gpu)
        info = c.put(arr, device="cuda:0")
        mid = metrics(gpu)
        got = c.fetch(info.handle)
        after = metrics(gpu)
        c.release(info.handle)
    assert np.array_equal(got, arr)
    assert mid["npystream_h2d_bytes_total"] - before["npystream_h2d_bytes_total"] == arr.nbytes
    assert after["npystream_d2h_bytes_total"] - mid["npystream_d2h_bytes_total"] == arr.nbytes
    assert ring_free(gpu, 64 << 20) == 64 << 20


@needs_gpu
def test_device_memory_is_not_leaked_over_1000_fetches(gpu):
    key = 'npystream_gpu_memory_used_bytes{device="cuda:0"}'
    arr = np.arange(1 << 18, dtype=np.float32)  # 1 MiB
    with gpu.client() as c:
        info = c.put(arr, device="cuda:0")
        c.fetch(info.handle)
        before = metrics(gpu)[key]
        for _ in range(1000):
            c.fetch(info.handle)
        after = metrics(gpu)
        c.release(info.handle)
    assert before > 0
    assert after[key] <= before, f"GPU memory grew by {after[key] - before} bytes"
    assert ring_free(gpu, 64 << 20) == 64 << 20


@needs_gpu
def test_inference_on_the_gpu_matches_the_cpu(gpu):
    import torch
    x = np.random.default_rng(2).standard_normal((8, 1, 28, 28), dtype=np.float32)
    with gpu.client() as c:
        listing = {m.name: m for m in c.list_models().models}
        assert listing["demo"].device == "cuda:0"
        out = c.infer("demo", {"x": x}, capture=["conv1"], inline_max_bytes=0)
        before = metrics(gpu)
        t = np.arange(12, dtype=np.float32).reshape(3, 4)
        transposed = c.infer("transpose", {"x": t}, inline_max_bytes=0)
        after = metrics(gpu)
    model = torch.jit.load(os.path.join(gpu.repo, "demo", "model.pt"), map_location="cpu")
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    (logits,) = [v for k, v in out.items() if k != "conv1"]
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)
    assert out["conv1"].shape[0] == 8
    (tt,) = transposed.values()
    assert np.array_equal(tt, t.T) and tt.flags.c_contiguous
    key = 'npystream_contiguous_copies_total{device="cuda:0"}'
    assert after.get(key, 0) - before.get(key, 0) == 1
