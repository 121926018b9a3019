#!/usr/bin/python3
"""make demo: start npystreamd with the bundled demo model, run it on a few
digit images, fetch outputs and a conv activation as ndarrays, check them
against the same TorchScript model run locally, and draw the activations."""
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

# Seven-segment strokes on a 28x28 canvas: (row0, row1, col0, col1).
SEGMENTS = {"a": (4, 6, 8, 20), "b": (5, 14, 18, 20), "c": (14, 23, 18, 20), "d": (22, 24, 8, 20),
            "e": (14, 23, 8, 10), "f": (5, 14, 8, 10), "g": (13, 15, 8, 20)}
DIGITS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc",
          7: "abc", 8: "abcdefg", 9: "abcdfg"}


def digit_images(values):
    x = np.zeros((len(values), 1, 28, 28), dtype=np.float32)
    for i, v in enumerate(values):
        for seg in DIGITS[v]:
            r0, r1, c0, c1 = SEGMENTS[seg]
            x[i, 0, r0:r1, c0:c1] = 1.0
    return x


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
    models = os.path.join(args.build, "models")
    proc, target = start_daemon(args.build, ["--model-repository", models])
    try:
        with npystream.Client(target) as client:
            for m in client.list_models().models:
                print(f"model {m.name} on {m.device}: inputs {[i.name for i in m.inputs]}, "
                      f"layers {list(m.layers)}")
            x = digit_images([0, 3, 7, 8])
            t = time.perf_counter()
            got = client.infer("demo", {"x": x}, capture=["conv1"])
            ms = (time.perf_counter() - t) * 1e3
            logits, conv1 = got["logits"], got["conv1"]
            print(f"infer+fetch {ms:.1f} ms -> logits {type(logits).__name__} {logits.dtype} "
                  f"{logits.shape}, conv1 {conv1.dtype} {conv1.shape}")

            import torch
            local = torch.jit.load(os.path.join(models, "demo", "model.pt"))
            with torch.no_grad():
                ref_logits = local(torch.from_numpy(x)).numpy()
                ref_conv1 = local.conv1(torch.from_numpy(x)).numpy()
            print(f"max abs diff vs local TorchScript: logits "
                  f"{np.abs(logits - ref_logits).max():.3g}, conv1 {np.abs(conv1 - ref_conv1).max():.3g}")
            print(f"predicted classes (untrained demo weights): {logits.argmax(axis=1).tolist()}")

            # The same tensors a client can keep resident and fetch as .npy.
            info = client.put(x, name="digits")
            buf = io.BytesIO()
            client.fetch_to("digits", buf)
            ref = io.BytesIO()
            np.save(ref, x)
            print(f"fetch_to of {info.handle}: {len(buf.getvalue())} bytes, "
                  f"identical to np.save: {buf.getvalue() == ref.getvalue()}")

            png = os.path.join(args.build, "demo_conv1.png")
            import matplotlib
            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            fig, axes = plt.subplots(len(x), 1 + conv1.shape[1], figsize=(12, 6))
            for i in range(len(x)):
                axes[i, 0].imshow(x[i, 0], cmap="gray")
                for ch in range(conv1.shape[1]):
                    axes[i, ch + 1].imshow(conv1[i, ch], cmap="viridis")
                for ax in axes[i]:
                    ax.axis("off")
            axes[0, 0].set_title("input")
            for ch in range(conv1.shape[1]):
                axes[0, ch + 1].set_title(f"conv1[{ch}]")
            fig.tight_layout()
            fig.savefig(png, dpi=80)
            print(f"activation maps written to {png}")
    finally:
        proc.terminate()
        proc.wait(30)
        for line in proc.stderr:
            print("  daemon:", line.rstrip())
    print("demo: ok")


if __name__ == "__main__":
    main()
