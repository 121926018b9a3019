#!/usr/bin/python3
"""make demo: start npystreamd, move arrays through it, show they come back
bit-identical, then stop it."""
import argparse
import io
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))

import numpy as np  # noqa: E402

import npystream  # noqa: E402


def start_daemon(build, extra):
    proc = subprocess.Popen([os.path.join(build, "bin", "npystreamd"), "--listen", "127.0.0.1:0",
                             "--http-listen", "127.0.0.1:0", *extra],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    for line in proc.stderr:
        print("  daemon:", line.rstrip())
        m = re.search(r" listening grpc=(\S+)", line)
        if m:
            return proc, m.group(1)
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit("npystreamd did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = parser.parse_args()
    proc, target = start_daemon(args.build, [])
    try:
        with npystream.Client(target) as client:
            arr = np.random.default_rng(0).standard_normal((256, 1024), dtype=np.float32)
            info = client.put(arr, name="demo_input")
            print(f"put   {info.handle}: {info.dtype} {info.shape} on {info.device}, "
                  f"{info.npy_bytes} .npy bytes")
            t = time.perf_counter()
            back = client.fetch("demo_input")
            dt = time.perf_counter() - t
            buf = io.BytesIO()
            np.save(buf, arr)
            print(f"fetch {type(back).__name__} {back.dtype} {back.shape} in {dt * 1e3:.1f} ms; "
                  f"bit-identical to np.load(np.save(...)): "
                  f"{back.tobytes() == np.load(io.BytesIO(buf.getvalue())).tobytes()}")
            for t in client.list():
                print(f"list  {t.handle} {t.dtype} {t.shape} {t.device}")
    finally:
        proc.terminate()
        proc.wait(30)
        for line in proc.stderr:
            print("  daemon:", line.rstrip())
    print("demo: ok")


if __name__ == "__main__":
    main()
