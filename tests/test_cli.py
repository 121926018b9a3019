"""Both command-line clients against a real daemon; each one's output is
checked with numpy and with the other client."""
import os
import subprocess
import sys

import numpy as np

from conftest import BUILD, ROOT
from npy_ref import random_array, save_bytes

TOOL = os.path.join(BUILD, "bin", "npystream")


def py_cli(daemon, *args):
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "client", "python"))
    return subprocess.run([sys.executable, "-m", "npystream", "--target", daemon.target, *args],
                          capture_output=True, text=True, env=env, timeout=120)


def cpp_cli(daemon, *args):
    return subprocess.run([TOOL, "--target", daemon.target, *args],
                          capture_output=True, text=True, timeout=120)


def test_python_cli_put_fetch_stat_ls_rm(daemon, tmp_path, unique):
    arr = random_array("float64", (3 << 20,))  # 24 MiB: shows progress
    src = tmp_path / "in.npy"
    np.save(src, arr)
    name = unique()
    r = py_cli(daemon, "put", str(src), "--name", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(name + "\t<f8\t3145728\t")
    assert "100%" in r.stderr  # progress bar
    out = tmp_path / "out.npy"
    r = py_cli(daemon, "fetch", name, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == save_bytes(arr)
    assert "100%" in r.stderr
    assert name in py_cli(daemon, "ls").stdout
    assert py_cli(daemon, "stat", name).stdout.split("\t")[1] == "<f8"
    assert py_cli(daemon, "rm", name).returncode == 0
    r = py_cli(daemon, "stat", name)
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr


def test_cpp_put_python_fetch_and_back(daemon, client, tmp_path, unique):
    arr = random_array("int16", (5, 7, 9), seed=3)
    src = tmp_path / "in.npy"
    np.save(src, arr)
    name = unique()
    r = cpp_cli(daemon, "put", str(src), "--name", name)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\t")[:3] == [name, "<i2", "5x7x9"]
    assert np.array_equal(client.fetch(name), arr)  # second client
    other = client.put(random_array("complex64", (4, 4), seed=4))
    out = tmp_path / "out.npy"
    r = cpp_cli(daemon, "fetch", other.handle, "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == save_bytes(random_array("complex64", (4, 4), seed=4))
    r = cpp_cli(daemon, "fetch", "missing-handle", "-o", str(out))
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr
