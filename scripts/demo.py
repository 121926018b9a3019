#!/usr/bin/python3
"""make demo: start npystreamd with the bundled models (demo; resnet18 for a
view of a real-size activation), run demo on a few
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

def held_out_digits(n):
    """The last n of sklearn's digits (inside the model's held-out split or
    not, they are real handwriting) as model inputs, with their labels."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "make_demo_model", os.path.join(ROOT, "models", "make_demo_model.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    from sklearn.datasets import load_digits
    digits = load_digits()
    return maker.to_model_input(digits.images[-n:]).numpy(), digits.target[-n:]


def held_out_accuracy(models):
    import json
    try:
        with open(os.path.join(models, "demo", "accuracy.json")) as f:
            return f"{json.load(f)['held_out_accuracy']:.1%}"
    except (OSError, ValueError, KeyError):
        return "unknown"


def start_daemon(build, extra):
    proc = subprocess.Popen([os.path.join(build, "bin", "npystreamd"), "--listen", "127.0.0.1:0",
                             *extra],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    for line in proc.stderr:
        print("  daemon:", line.rstrip())
        m = re.search(r" listening grpc=(\S+) http=(\S+)", line)
        if m:
            return proc, m.group(1), m.group(2)
        if time.time() > deadline:
            break
    proc.kill()
    raise SystemExit("npystreamd did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--http", default=os.environ.get("DEMO_HTTP", "127.0.0.1:8080"),
                        help="the admin port, where the dashboard is")
    parser.add_argument("--serve", choices=["auto", "yes", "no"],
                        default=os.environ.get("DEMO_SERVE", "auto"),
                        help="keep serving the dashboard after the checks (auto: on a terminal)")
    args = parser.parse_args()
    models = os.path.join(args.build, "models")
    proc, target, http = start_daemon(args.build, ["--model-repository", models,
                                                   "--http-listen", args.http])
    try:
        with npystream.Client(target) as client:
            for m in client.list_models().models:
                print(f"model {m.name} on {m.device}: inputs {[i.name for i in m.inputs]}, "
                      f"layers {list(m.layers)}")
            x, labels = held_out_digits(8)
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
            predicted = logits.argmax(axis=1)
            print(f"predicted classes {predicted.tolist()}, true {labels.tolist()}: "
                  f"{int((predicted == labels).sum())} of {len(labels)} right "
                  f"(held-out accuracy at build time: {held_out_accuracy(models)})")

            # The same tensors a client can keep resident and fetch as .npy.
            info = client.put(x, name="digits")
            buf = io.BytesIO()
            client.fetch_to("digits", buf)
            ref = io.BytesIO()
            np.save(ref, x)
            print(f"fetch_to of {info.handle}: {len(buf.getvalue())} bytes, "
                  f"identical to np.save: {buf.getvalue() == ref.getvalue()}")

            # A real-size model (resnet18, untrained): a view moves only what is asked for.
            image = np.random.default_rng(0).standard_normal((4, 3, 224, 224), dtype=np.float32)
            t = time.perf_counter()
            layer1 = client.infer("resnet18", {"x": image}, capture=["layer1"])["layer1"]
            ms = (time.perf_counter() - t) * 1e3
            held = client.put(layer1, name="resnet18_layer1")
            view = client.fetch("resnet18_layer1", index=np.s_[0, :8], dtype=np.float16, pool=2)
            want = layer1[0, :8].astype(np.float16).reshape(8, 28, 2, 28, 2).mean(
                axis=(2, 4), dtype=np.float16)
            print(f"resnet18 infer of 4 images {ms:.0f} ms -> layer1 {layer1.shape}, "
                  f"{held.nbytes} bytes; view [0, :8] float16 pool 2: {view.shape}, "
                  f"{view.nbytes} bytes, numpy agrees: {np.allclose(view, want, rtol=1e-3)}")

            png = os.path.join(args.build, "demo_conv1.png")
            import matplotlib
            matplotlib.use("Agg")
            from npystream import plot
            plot.show_activations(client, "demo", ["conv1", "conv2", "fc"], {"x": x[:1]}) \
                .savefig(png, dpi=80)
            print(f"activation maps written to {png}")

            serve = args.serve == "yes" or (args.serve == "auto" and sys.stdin.isatty())
            if serve:
                print(f"dashboard: http://{http}/  (a digit a second is fed to demo, an image "
                      "to resnet18; Ctrl-C stops)", flush=True)
                try:
                    i = 0
                    while True:
                        client.infer("demo", {"x": x[i % len(x):i % len(x) + 1]}, fetch=False)
                        client.infer("resnet18", {"x": image[i % len(image)][None]}, fetch=False)
                        i += 1
                        time.sleep(1)
                except KeyboardInterrupt:
                    print()
            else:
                print(f"dashboard was at http://{http}/ (run `make demo` on a terminal, or "
                      "DEMO_SERVE=yes, to keep it open)")
    finally:
        proc.terminate()
        proc.wait(30)
        for line in proc.stderr:
            print("  daemon:", line.rstrip())
    print("demo: ok")


if __name__ == "__main__":
    main()
