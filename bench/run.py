#!/usr/bin/python3
"""make bench: npystream against the usual way and the machine's limits,
side by side in one run. Results: a table on stdout and
bench/results/<date>-<host>.json (then bench/plot.py draws them)."""
import argparse
import datetime
import json
import os
import shutil
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(HERE, "peers"))

import numpy as np  # noqa: E402

import npystream  # noqa: E402
from usual_client import UsualClient  # noqa: E402
from proc_stats import rss  # noqa: E402
from slow_link import slow_link_cases  # noqa: E402
from replicas import replica_cases  # noqa: E402

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


def start(args, pattern, env=None):
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, m
    raise SystemExit(f"{args[0]} did not start")


def run_json(args):
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def timed(fn, repeat):
    secs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        secs.append(time.perf_counter() - t)
    return secs


def summary(secs, nbytes):
    secs = sorted(secs)
    return {"bytes": nbytes, "min": secs[0], "median": statistics.median(secs),
            "p50": statistics.median(secs), "p99": secs[min(len(secs) - 1, int(0.99 * len(secs)))],
            "n": len(secs), "Bps": nbytes / statistics.median(secs), "Bps_best": nbytes / secs[0]}


def iperf3(seconds):
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", "5299"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        out = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", "5299", "-t", str(seconds), "-J"],
                             capture_output=True, text=True, check=True, timeout=120).stdout
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 8
    finally:
        server.wait(30)


def fmt_rate(bps):
    return f"{bps / 1e9:.2f} GB/s" if bps >= 1e8 else f"{bps / 1e6:.1f} MB/s"


def bench_models(build):
    """The demo model as built, with dynamic batching on, and with 1, 2 and 4
    instances (for the scaling rows)."""
    repo = os.path.join(build, "bench-models")
    src = os.path.join(build, "models", "demo")
    for name, extra in (("demo", {}), ("demo_batched", {"dynamic_batching": {
            "max_batch": 64, "max_queue_delay_us": 500, "preferred_batch_sizes": [8, 16, 32, 64]}}),
                        ("demo_i1", {"instances": 1}), ("demo_i2", {"instances": 2}),
                        ("demo_i4", {"instances": 4})):
        os.makedirs(os.path.join(repo, name), exist_ok=True)
        shutil.copyfile(os.path.join(src, "model.pt"), os.path.join(repo, name, "model.pt"))
        with open(os.path.join(src, "config.json")) as f:
            config = json.load(f)
        config.update(extra)
        with open(os.path.join(repo, name, "config.json"), "w") as f:
            json.dump(config, f)
    # A model whose cost is its Linear layers (BLAS), unlike the demo CNN:
    # 784 -> 1024 -> 1024 -> 10, random weights from a fixed seed.
    import torch  # Debian's python3-torch, as for the demo model

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(784, 1024)
            self.fc2 = torch.nn.Linear(1024, 1024)
            self.fc3 = torch.nn.Linear(1024, 10)

        def forward(self, x):
            x = torch.relu(self.fc1(x.flatten(1)))
            return self.fc3(torch.relu(self.fc2(x)))

    torch.manual_seed(0)
    mlp = MLP().eval()
    for name, extra in (("mlp", {}), ("mlp_batched", {"dynamic_batching": {
            "max_batch": 64, "max_queue_delay_us": 500, "preferred_batch_sizes": [8, 16, 32, 64]}})):
        os.makedirs(os.path.join(repo, name), exist_ok=True)
        torch.jit.script(mlp).save(os.path.join(repo, name, "model.pt"))
        config = {"device": "cpu", "inputs": [{"name": "x", "dtype": "float32",
                                               "shape": [-1, 1, 28, 28]}],
                  "outputs": ["logits"], "max_batch": 256, "instances": 2, **extra}
        with open(os.path.join(repo, name, "config.json"), "w") as f:
            json.dump(config, f)
    return repo


def infer_load(make_call, clients, seconds):
    """`clients` threads, each with its own connection, call in a loop for
    `seconds`: requests per second and latency percentiles."""
    calls = [make_call() for _ in range(clients)]
    for call in calls:
        call()  # connect and warm
    latencies = [[] for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)

    def run(i):
        barrier.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            t = time.perf_counter()
            calls[i]()
            latencies[i].append(time.perf_counter() - t)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    lat = sorted(x for per in latencies for x in per)
    return {"clients": clients, "rps": len(lat) / elapsed, "p50": lat[len(lat) // 2],
            "p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))], "calls": len(lat)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--build", default=os.path.join(ROOT, "build"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only-infer", action="store_true", help="run only the inference case")
    parser.add_argument("--only-shm", action="store_true",
                        help="run only the same-host cases (Unix socket, --shm-dir)")
    parser.add_argument("--only-views", action="store_true",
                        help="run only the view cases (slice and strided view vs whole)")
    parser.add_argument("--only-slow-link", action="store_true",
                        help="run only row (c): resnet18 to a dashboard over a 50 Mbit/s link")
    parser.add_argument("--only-aio", action="store_true",
                        help="run only 64 concurrent asyncio fetches vs 64 sync threads")
    parser.add_argument("--only-replicas", action="store_true",
                        help="run only direct vs routed vs relayed fetches across two replicas")
    parser.add_argument("--only-gpu", action="store_true",
                        help="run only the GPU cases (a GPU machine without iperf3 or curl)")
    args = parser.parse_args()
    quick = args.quick
    bin_dir = os.path.join(args.build, "bin")
    tool = os.path.join(bin_dir, "npystream_bench")
    sizes = [4 * KIB, MIB, 64 * MIB] + ([] if quick else [GIB])
    repeat = {4 * KIB: 30, MIB: 20, 64 * MIB: 5 if not quick else 3, GIB: 3}
    results = {"date": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": socket.gethostname(), "machine": f"{os.cpu_count()} cores, "
               f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / GIB:.0f} GiB, "
               f"{platform.platform()}", "quick": quick, "rows": []}
    rows = results["rows"]
    if args.only_gpu:
        results["gpu"] = gpu_cases(bin_dir, tool, GIB if not quick else 256 * MIB)
        save(results, quick, "-gpu")
        return
    if args.only_views:
        results["views"] = view_cases(bin_dir, quick)
        save(results, quick, "-views")
        return
    if args.only_replicas:
        results["replicas"] = replica_cases(bin_dir, quick, start, fmt_rate)
        save(results, quick, "-replicas")
        return
    if args.only_aio:
        results["aio"] = aio_cases(bin_dir, quick)
        save(results, quick, "-aio")
        return
    if args.only_slow_link:
        results["slow_link"] = slow_link_cases(bin_dir, os.path.join(args.build, "models"),
                                               quick, start)
        save(results, quick, "-slow-link")
        return
    if args.only_shm:
        results["same_host"] = same_host_cases(bin_dir, tool, quick)
        save(results, quick, "-shm")
        return

    def add(case, size, stats, ref_name=None, ref_value=None, **extra):
        row = {"case": case, "size": size, **stats, **extra}
        if ref_name:
            row["ref"] = ref_name
            row["ratio"] = stats["Bps"] / ref_value if ref_value else None
        rows.append(row)
        ratio = f"{row['ratio']:.2f}x {ref_name}" if ref_name else ""
        print(f"{case:<34} {size_label(size):>8} {fmt_rate(stats['Bps']):>12} "
              f"p50 {stats['p50'] * 1e3:9.3f} ms  p99 {stats['p99'] * 1e3:9.3f} ms  {ratio}",
              flush=True)
        return row

    models = bench_models(args.build)
    daemon, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                       "--http-listen", "127.0.0.1:0", "--store-budget", "16GiB",
                       "--model-repository", models],
                      r" listening grpc=(\S+) http=(\S+)")
    target, http = m.group(1), m.group(2)
    raw, m = start([tool, "raw-server", str(max(sizes))], r"port (\d+)")
    raw_target = f"127.0.0.1:{m.group(1)}"
    peer, m = start([sys.executable, os.path.join(HERE, "peers", "usual_server.py")], r"port (\d+)")
    peer_target = f"127.0.0.1:{m.group(1)}"
    client = npystream.Client(target)  # fetches through npystream._native (C++)
    os.environ["NPYSTREAM_NATIVE"] = "0"
    client_grpcio = npystream.Client(target)  # the pure grpcio path, for comparison
    del os.environ["NPYSTREAM_NATIVE"]
    usual = UsualClient(peer_target)
    tmp = tempfile.mkdtemp()
    try:
        print(f"# npystream bench on {results['machine']}", flush=True)
        # Inference: Infer + fetch of the demo model's outputs, batch 8, vs the
        # same TorchScript model in the usual Python gRPC server.
        x = np.random.default_rng(0).standard_normal((8, 1, 28, 28), dtype=np.float32)
        model_path = os.path.join(args.build, "models", "demo", "model.pt")
        reps = 100 if quick else 300
        ref = usual.infer(model_path, x)
        assert np.array_equal(client.infer("demo", {"x": x})["logits"], ref)
        timed(lambda: client.infer("demo", {"x": x}), 20)
        ours = summary(timed(lambda: client.infer("demo", {"x": x}), reps), x.nbytes)
        theirs = summary(timed(lambda: usual.infer(model_path, x), reps), x.nbytes)
        results["infer"] = {"npystream": ours, "usual": theirs,
                            "p50_ratio": ours["p50"] / theirs["p50"]}
        print(f"{'infer+fetch demo (batch 8)':<34} npystream p50 {ours['p50'] * 1e3:.2f} ms p99 "
              f"{ours['p99'] * 1e3:.2f} ms vs usual Python server p50 {theirs['p50'] * 1e3:.2f} ms "
              f"p99 {theirs['p99'] * 1e3:.2f} ms ({ours['p50'] / theirs['p50']:.2f}x)", flush=True)
        # Inference under load: batch-1 requests from 1, 16 and 64 concurrent
        # clients; batching off and on (C++ clients, so the daemon is what is
        # measured), and the usual Python server (its own Python client).
        x1 = x[:1].copy()
        x1_path = os.path.join(tmp, "x1.npy")
        np.save(x1_path, x1)
        seconds = 1.5 if quick else 3

        def cpp_load(model):
            return lambda clients: run_json([tool, "infer-load", target, model, x1_path,
                                             str(clients), str(seconds)])

        variants = {
            "batching off": cpp_load("demo"),
            "batching on": cpp_load("demo_batched"),
            "usual Python server": lambda clients: infer_load(
                lambda: (lambda u: lambda: u.infer(model_path, x1))(UsualClient(peer_target)),
                clients, seconds),
            # The same with the MLP, whose forward pass batching makes cheaper
            # per row (BLAS matrix products instead of matrix-vector ones).
            "MLP, batching off": cpp_load("mlp"),
            "MLP, batching on": cpp_load("mlp_batched"),
        }
        load = results["infer_load"] = {}
        for name, measure in variants.items():
            load[name] = []
            for clients in (1, 16, 64):
                r = measure(clients)
                load[name].append(r)
                print(f"{'infer load, ' + name:<34} {clients:>3} clients {r['rps']:>8.0f} req/s "
                      f"p50 {r['p50'] * 1e3:7.2f} ms  p99 {r['p99'] * 1e3:7.2f} ms", flush=True)
        ratios = results["infer_load_ratios"] = {}
        for model, prefix in (("demo", ""), ("MLP", "MLP, ")):
            off64, on64 = load[prefix + "batching off"][2], load[prefix + "batching on"][2]
            off1 = load[prefix + "batching off"][0]
            ratios[model] = {"on_vs_off_64_clients": on64["rps"] / off64["rps"],
                             "p99_on64_vs_off1": on64["p99"] / off1["p99"]}
            print(f"{'limit check: batching, ' + model:<34} 64 clients on/off "
                  f"{on64['rps'] / off64['rps']:.2f}x (goal >= 3x); p99 on@64 / off@1 "
                  f"{on64['p99'] / off1['p99']:.2f}x (goal <= 2x)", flush=True)
        blas_cases(bin_dir, tool, models, tmp, x1_path, seconds, load)
        # The Open Inference Protocol's ModelInfer (what tritonclient sends)
        # beside npystream's Infer and the usual Python server: batch 1 and
        # 64, 1 and 16 clients, same daemon, same run.
        oip = results["oip"] = {}
        for batch in (1, 64):
            xb = np.random.default_rng(1).standard_normal((batch, 1, 28, 28), dtype=np.float32)
            npy_path, raw_path = os.path.join(tmp, f"x{batch}.npy"), os.path.join(tmp, f"x{batch}.bin")
            np.save(npy_path, xb)
            xb.tofile(raw_path)
            shape = ",".join(str(d) for d in xb.shape)
            variants = {
                "npystream Infer": lambda c, p=npy_path: run_json(
                    [tool, "infer-load", target, "demo", p, str(c), str(seconds)]),
                "OIP ModelInfer": lambda c, p=raw_path, s=shape: run_json(
                    [tool, "oip-load", target, "demo", p, s, str(c), str(seconds)]),
                "usual Python server": lambda c, xb=xb: infer_load(
                    lambda: (lambda u: lambda: u.infer(model_path, xb))(UsualClient(peer_target)),
                    c, seconds),
            }
            for name, measure in variants.items():
                for clients in (1, 16):
                    r = measure(clients)
                    oip[f"{name}, batch {batch}, {clients} clients"] = r
                    print(f"{'oip: ' + name:<34} batch {batch:>2} {clients:>3} clients "
                          f"{r['rps']:>8.0f} req/s p50 {r['p50'] * 1e3:7.2f} ms  "
                          f"p99 {r['p99'] * 1e3:7.2f} ms", flush=True)
        for batch in (1, 64):
            for clients in (1, 16):
                ours = oip[f"OIP ModelInfer, batch {batch}, {clients} clients"]
                own = oip[f"npystream Infer, batch {batch}, {clients} clients"]
                usual_r = oip[f"usual Python server, batch {batch}, {clients} clients"]
                print(f"{'ratio: OIP ModelInfer':<34} batch {batch:>2} {clients:>3} clients "
                      f"{ours['rps'] / own['rps']:.2f}x npystream Infer, "
                      f"{ours['rps'] / usual_r['rps']:.2f}x usual server (req/s)", flush=True)
        # Scaling on this machine: instances x LibTorch intra-op threads, 1
        # and 16 clients, batch 1 and 64, one daemon per thread setting.
        scaling = results["scaling"] = {}
        for threads in (1, 2):
            d, dm = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                           "--http-listen", "", "--torch-threads", str(threads),
                           "--model-repository", models],
                          r" listening grpc=(\S+)")
            try:
                for batch, clients, instances in [(b, c, i) for b in (1, 64) for c in (1, 16)
                                                  for i in (1, 2, 4) if c > 1 or i == 1]:
                    r = run_json([tool, "infer-load", dm.group(1), f"demo_i{instances}",
                                  os.path.join(tmp, f"x{batch}.npy"), str(clients), str(seconds)])
                    key = f"threads {threads}, instances {instances}, batch {batch}, {clients} clients"
                    scaling[key] = r
                    print(f"{'scaling: torch threads ' + str(threads):<34} instances "
                          f"{instances} batch {batch:>2} {clients:>2} clients {r['rps']:>8.0f} req/s "
                          f"p50 {r['p50'] * 1e3:7.2f} ms  p99 {r['p99'] * 1e3:7.2f} ms",
                          flush=True)
            finally:
                d.terminate()
                d.wait(30)
        if args.only_infer:
            return
        wire = iperf3(2 if quick else 4)
        results["iperf3_Bps"] = wire
        print(f"{'limit: iperf3 loopback TCP (1 conn)':<34} {'':>8} {fmt_rate(wire):>12}")
        for size in sizes:
            n = repeat[size]
            mc = run_json([tool, "memcpy", str(max(size, 64 * MIB) if size < MIB else size)])
            add("limit: memcpy (1 thread)", size,
                {"bytes": size, "min": 0, "median": 0, "p50": 0, "p99": 0, "n": 5, "Bps": mc["Bps_max"],
                 "Bps_best": mc["Bps_max"]})
            r = run_json([tool, "raw-stream", raw_target, str(size), str(n)])
            raw_stats = summary([r["min"]] + [r["median"]] * (n - 1), size)
            raw_stats.update(p50=r["p50"], p99=r["p99"])
            add("limit: raw gRPC stream (C++)", size, raw_stats, "iperf3", wire)

            name = f"f32_{size}"
            arr = np.arange(size // 4, dtype=np.float32)
            info = client.put(arr, name=name, device="cpu")
            usual.make(f"{name}:{size}".encode())
            np.save(os.path.join(tmp, f"{name}.npy"), arr)

            u = add("usual: py tobytes->frombuffer", size,
                    summary(timed(lambda: usual.fetch_tobytes(name), n), size))
            add("usual: py np.save->np.load", size,
                summary(timed(lambda: usual.fetch_npsave(name), n), size), "usual tobytes", u["Bps"])
            r = run_json([tool, "fetch", target, name, str(n), "1"])
            cpp = summary([r["min"]] + [r["median"]] * (n - 1), info.npy_bytes)
            cpp.update(p50=r["p50"], p99=r["p99"])
            add("npystream: C++ Fetch to buffer", size, cpp, "iperf3", wire)
            py = summary(timed(lambda: client.fetch(name), n), info.npy_bytes)
            add("npystream: Python fetch -> ndarray", size, py, "iperf3", wire,
                vs_usual=py["Bps"] / u["Bps"])
            print(f"{'':<34} {'':>8} {'':>12} Python fetch vs usual peer: {py['Bps'] / u['Bps']:.2f}x")
            add("npystream: Python fetch, grpcio path", size,
                summary(timed(lambda: client_grpcio.fetch(name), n), info.npy_bytes), "iperf3", wire)
            # The same into one reused array (fetch(out=)): no fresh pages to
            # fault in and zero, as a dashboard polling a live tensor does.
            reused = np.empty_like(arr)
            add("npystream: Python fetch(out=reused)", size,
                summary(timed(lambda: client.fetch(name, out=reused), n), info.npy_bytes),
                "iperf3", wire)
            url = f"http://{http}/v1/tensors/{name}.npy"
            add("npystream: HTTP GET .npy (curl)", size, summary(timed(lambda: subprocess.run(
                ["curl", "-sf", "-o", "/dev/null", url], check=True), n), info.npy_bytes), "iperf3", wire)

            def put_py():
                client.release(f"p_{name}") if any(t.handle == f"p_{name}" for t in client.list()) else None
                client.put(arr, name=f"p_{name}", device="cpu")
            add("npystream: Python put", size, summary(timed(put_py, n), info.npy_bytes), "iperf3", wire)
            path = os.path.join(tmp, f"{name}.npy")

            def put_cpp():
                subprocess.run([os.path.join(bin_dir, "npystream"), "--target", target, "put", path],
                               check=True, capture_output=True)
            add("npystream: C++ tool put (process)", size, summary(timed(put_cpp, n), info.npy_bytes),
                "iperf3", wire)
            r = run_json([tool, "put", target, str(size), str(n)])
            cpp_put = summary([r["min"]] + [r["median"]] * (n - 1), r["bytes"])
            cpp_put.update(p50=r["p50"], p99=r["p99"])
            add("npystream: C++ Put from memory", size, cpp_put, "iperf3", wire)
            for t in client.list():
                if t.handle.startswith("t") or t.handle.startswith("p_"):
                    client.release(t.handle)
            if size == GIB:
                client.release(name)  # the memory case starts its own daemon

        # Concurrency on 64 MiB.
        conc_name = f"f32_{64 * MIB}"
        for threads in ([1, 4, 16] if quick else [1, 4, 16, 64]):
            r = run_json([tool, "fetch", target, conc_name, "2" if threads < 16 else "1", str(threads)])
            stats = {"bytes": r["bytes"], "min": r["min"], "median": r["median"], "p50": r["p50"],
                     "p99": r["p99"], "n": r["n"], "Bps": r["aggregate_Bps"], "Bps_best": r["aggregate_Bps"]}
            add(f"concurrency: {threads} C++ clients, aggregate", 64 * MIB, stats, "iperf3", wire,
                threads=threads)

        # Small calls: 4 KiB fetch vs a unary-style gRPC echo of 4 KiB, in
        # alternating rounds so both see the same machine (this VM drifts by
        # tens of microseconds between minutes); the ratio is the median of
        # the rounds' p50 ratios.
        rounds = []
        for _ in range(3 if quick else 5):
            echo = run_json([tool, "raw-echo", raw_target, str(4 * KIB), "100" if quick else "400"])
            small = run_json([tool, "fetch", target, f"f32_{4 * KIB}", "100" if quick else "400", "1"])
            rounds.append({"echo": echo, "fetch": small, "p50_ratio": small["p50"] / echo["p50"]})
        ratio = statistics.median(r["p50_ratio"] for r in rounds)
        echo_p50 = statistics.median(r["echo"]["p50"] for r in rounds)
        fetch_p50 = statistics.median(r["fetch"]["p50"] for r in rounds)
        echo_p99 = statistics.median(r["echo"]["p99"] for r in rounds)
        fetch_p99 = statistics.median(r["fetch"]["p99"] for r in rounds)
        results["small"] = {"rounds": rounds, "p50_ratio": ratio,
                            "echo": {"p50": echo_p50, "p99": echo_p99},
                            "fetch": {"p50": fetch_p50, "p99": fetch_p99}}
        each = ", ".join(f"{r['p50_ratio']:.2f}" for r in rounds)
        print(f"{'small: 4 KiB fetch vs gRPC echo':<34} p50 {fetch_p50 * 1e6:.0f} us vs "
              f"{echo_p50 * 1e6:.0f} us, median ratio over {len(rounds)} alternating rounds "
              f"{ratio:.2f}x (rounds: {each}); p99 {fetch_p99 * 1e6:.0f} vs {echo_p99 * 1e6:.0f} us",
              flush=True)
    finally:
        client.close()
        client_grpcio.close()
        for p in (daemon, raw, peer):
            p.terminate()
            p.wait(30)

    # Memory: a fresh daemon serving one 1 GiB tensor to 4 clients at once.
    mem_size = 256 * MIB if quick else GIB
    d, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                  "--http-listen", "", "--store-budget", "16GiB"], r" listening grpc=(\S+)")
    try:
        base = rss(d.pid)
        with npystream.Client(m.group(1)) as c:
            c.put(np.ones(mem_size // 4, dtype=np.float32), name="mem", device="cpu")
        after_put = rss(d.pid, "VmHWM")
        run_json([tool, "fetch", m.group(1), "mem", "1", "4"])
        peak = rss(d.pid, "VmHWM")
    finally:
        d.terminate()
        d.wait(30)
    results["memory"] = {"tensor_bytes": mem_size, "rss_before_put": base, "peak_after_put": after_put,
                         "peak_during_4_fetches": peak, "peak_minus_base": peak - base,
                         "goal": mem_size + 128 * MIB}
    print(f"{'memory: 4 clients x ' + size_label(mem_size) + ' fetch':<34} daemon peak RSS "
          f"{peak / MIB:.0f} MiB = base {base / MIB:.0f} + {(peak - base) / MIB:.0f} MiB "
          f"(goal: tensor + 128 = {(mem_size + 128 * MIB) / MIB:.0f} MiB over base)", flush=True)

    results["views"] = view_cases(bin_dir, quick)
    results["slow_link"] = slow_link_cases(bin_dir, os.path.join(args.build, "models"), quick,
                                           start)
    results["aio"] = aio_cases(bin_dir, quick)
    results["replicas"] = replica_cases(bin_dir, quick, start, fmt_rate)
    results["same_host"] = same_host_cases(bin_dir, tool, quick)
    results["gpu"] = gpu_cases(bin_dir, tool, GIB if not quick else 256 * MIB)

    out = save(results, quick)
    subprocess.run([sys.executable, os.path.join(HERE, "plot.py"), out], check=False)


def view_cases(bin_dir, quick):
    """Views on a host tensor, one daemon, alternating A/B rounds (medians and
    min..max): (a) index "0:16" of a [1024, N] float32 (1/64 of it) against
    the whole tensor, goal time ratio <= 1/32; (b) the strided "::2, ::2"
    against the contiguous slice of the same byte count, goal <= 2x. The
    C++ client (npystream._native) fetches, so the daemon's gather is timed."""
    size = 256 * MIB if quick else GIB
    rounds = 5
    d, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                  "--http-listen", "", "--store-budget", "16GiB"], r" listening grpc=(\S+)")
    out = {"tensor_bytes": size, "rounds": rounds}
    try:
        with npystream.Client(m.group(1)) as c:
            a = np.random.default_rng(3).standard_normal((1024, size // 4096), dtype=np.float32)
            c.put(a, name="v", device="cpu")
            checks = {"0:16": a[0:16], "::2, ::2": a[::2, ::2], "0:256": a[0:256]}
            for index, want in checks.items():  # right before fast
                assert np.array_equal(c.fetch("v", index=index), want), index
            del a, checks

            def once(index):
                t = time.perf_counter()
                c.fetch("v", index=index)
                return time.perf_counter() - t

            for name, (ia, ib, goal) in {"slice_1_64_vs_whole": ("0:16", None, 1 / 32),
                                         "strided_vs_contiguous": ("::2, ::2", "0:256", 2.0)}.items():
                ta, tb = [], []
                once(ia), once(ib)  # warm
                for _ in range(rounds):
                    ta.append(once(ia))
                    tb.append(once(ib))
                ratio = statistics.median(ta) / statistics.median(tb)
                ratios = sorted(x / y for x, y in zip(ta, tb))
                out[name] = {"a": ia, "b": ib or "(whole)", "a_s": ta, "b_s": tb,
                             "ratio_median": ratio, "ratio_min": ratios[0],
                             "ratio_max": ratios[-1], "goal": goal}
                print(f"{'view ' + name:<34} {size_label(size):>8} a={ia!r} p50 "
                      f"{statistics.median(ta) * 1e3:8.2f} ms, b={ib or 'whole'!r} p50 "
                      f"{statistics.median(tb) * 1e3:8.2f} ms: ratio {ratio:.4f} "
                      f"({ratios[0]:.4f}..{ratios[-1]:.4f}; goal <= {goal:.4g})", flush=True)
    finally:
        d.terminate()
        d.wait(30)
    return out


def aio_cases(bin_dir, quick):
    """64 concurrent fetches of 1 MiB: npystream.aio on one event loop
    against 64 threads sharing one sync client (its C++ path), alternating
    rounds on one daemon; aggregate bytes/s, medians and min..max."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor
    from npystream import aio
    n, size, rounds = 64, MIB, 5 if quick else 9
    d, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                  "--http-listen", ""], r" listening grpc=(\S+)")
    target = m.group(1)
    try:
        with npystream.Client(target) as sync, ThreadPoolExecutor(n) as pool:
            handles = [sync.put(np.full(size // 4, i, np.float32)).handle for i in range(n)]

            def threads():
                t = time.perf_counter()
                got = list(pool.map(sync.fetch, handles))
                assert all(g[0] == i for i, g in enumerate(got))
                return time.perf_counter() - t

            async def loop_rounds():
                secs = {"aio": [], "threads": []}
                async with aio.Client(target) as c:
                    async def once():
                        t = time.perf_counter()
                        got = await asyncio.gather(*(c.fetch(h) for h in handles))
                        assert all(g[0] == i for i, g in enumerate(got))
                        return time.perf_counter() - t
                    await once()
                    threads()  # warm both
                    for _ in range(rounds):
                        secs["aio"].append(await once())
                        secs["threads"].append(threads())
                return secs

            secs = asyncio.run(loop_rounds())
    finally:
        d.terminate()
        d.wait(30)
    out = {"fetches": n, "bytes_each": size, "rounds": rounds}
    for k, v in secs.items():
        out[k] = {"s": v, "median_Bps": n * size / statistics.median(v),
                  "min_Bps": n * size / max(v), "max_Bps": n * size / min(v)}
    ratios = sorted(a / b for a, b in zip(secs["threads"], secs["aio"]))
    out["aio_vs_threads_median"] = statistics.median(ratios)
    out["aio_vs_threads_range"] = [ratios[0], ratios[-1]]
    print(f"{'aio: 64 x 1 MiB on one loop':<34} {fmt_rate(out['aio']['median_Bps']):>12} vs 64 "
          f"threads {fmt_rate(out['threads']['median_Bps'])}: {out['aio_vs_threads_median']:.2f}x "
          f"({ratios[0]:.2f}..{ratios[-1]:.2f})", flush=True)
    return out


def blas_cases(bin_dir, tool, models, tmp, x1_path, seconds, load):
    """The daemon on Debian's reference BLAS (its libblas3, put first on the
    library path) against the OpenBLAS it runs on: batch-1 requests from 16
    clients and one batch of 64, demo model and MLP."""
    reference = "/usr/lib/x86_64-linux-gnu/blas"
    if not os.path.exists(os.path.join(reference, "libblas.so.3")):
        print(f"{'BLAS rows':<34} skipped: no reference BLAS here (package libblas3)", flush=True)
        return
    x64_path = os.path.join(tmp, "x64.npy")
    np.save(x64_path, np.random.default_rng(1).standard_normal((64, 1, 28, 28), dtype=np.float32))
    out = load["blas"] = {}
    for blas, env in (("OpenBLAS", None), ("reference BLAS", {**os.environ,
                                                              "LD_LIBRARY_PATH": reference})):
        d, dm = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0",
                       "--http-listen", "", "--model-repository", models],
                      r" listening grpc=(\S+)", env=env)
        try:
            for model in ("demo", "mlp"):
                for x_path, clients in ((x1_path, 16), (x64_path, 1)):
                    r = run_json([tool, "infer-load", dm.group(1), model, x_path, str(clients),
                                  str(seconds)])
                    batch = 1 if x_path == x1_path else 64
                    out[f"{blas}, {model}, batch {batch}, {clients} clients"] = r
                    print(f"{'BLAS: ' + blas:<34} {model:<5} batch {batch:>2} {clients:>2} clients "
                          f"{r['rps']:>8.0f} req/s p50 {r['p50'] * 1e3:7.2f} ms", flush=True)
        finally:
            d.terminate()
            d.wait(30)
    for model in ("demo", "mlp"):
        for batch, clients in ((1, 16), (64, 1)):
            key = f"{model}, batch {batch}, {clients} clients"
            ratio = out[f"OpenBLAS, {key}"]["rps"] / out[f"reference BLAS, {key}"]["rps"]
            print(f"{'ratio: OpenBLAS / reference':<34} {key}: {ratio:.2f}x req/s", flush=True)


def same_host_cases(bin_dir, tool, quick):
    """The sidecar's case: client and daemon on one host. The raw TCP and Unix
    sockets' own limits (no gRPC), loopback TCP fetch, Unix-socket stream
    fetch (the plain fetch socket, and gRPC over the same socket), --shm-dir
    fetch (one copy out of the file), map
    (no copy), shm put and TCP put, against single-thread memcpy measured in
    the same run; the shm put and fetch again with --shm-dir on a tmpfs
    mounted huge=within_size (2 MiB pages) when this user may mount one;
    alternating rounds, medians reported."""
    folder = tempfile.mkdtemp(prefix="npystream-bench-", dir="/dev/shm")
    sock = f"unix://{folder}/npystream.sock"
    d, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0", "--listen", sock,
                  "--http-listen", "", "--store-budget", "16GiB", "--shm-dir", f"{folder}/tensors"],
                 r" listening grpc=(\S+)")
    huge_mount, why = mount_huge_tmpfs(4 * (GIB if not quick else 64 * MIB) + 256 * MIB)
    huge_daemon = huge = None
    if huge_mount is None:
        print(f"{'same host: huge-page tmpfs rows':<40} skipped: {why}", flush=True)
    else:
        huge_daemon, _ = start([os.path.join(bin_dir, "npystreamd"), "--listen",
                                f"unix://{folder}/huge.sock", "--http-listen", "",
                                "--store-budget", "16GiB", "--shm-dir", f"{huge_mount}/tensors"],
                               r" listening grpc=(\S+)")
    out = {}
    try:
        tcp = npystream.Client(m.group(1), shm=False)
        unix = npystream.Client(sock, shm=False)  # the plain fetch socket beside it
        os.environ["NPYSTREAM_PLAIN_FETCH"] = "0"
        unix_grpc = npystream.Client(sock, shm=False)  # HTTP/2 over the same socket
        del os.environ["NPYSTREAM_PLAIN_FETCH"]
        local = npystream.Client(sock)
        if huge_daemon is not None:
            huge = npystream.Client(f"unix://{folder}/huge.sock")
        for size in [64 * MIB] + ([] if quick else [GIB]):
            arr = np.random.default_rng(2).random(size // 8)
            local.put(arr, name="src")
            if huge is not None:
                huge.put(arr, name="src")
            reps = 5 if size < GIB else 3
            keep = []
            reused = np.empty_like(arr)

            def map_once():
                keep.append(local.map("src"))

            def put_with(c):
                def put():  # the release (freeing 1 GiB) is not timed
                    t = time.perf_counter()
                    c.put(arr, name="dst")
                    took = time.perf_counter() - t
                    c.release("dst")
                    return took
                return put

            raw_tcp = RawSocketStream(socket.AF_INET, arr, folder)
            raw_unix = RawSocketStream(socket.AF_UNIX, arr, folder)
            variants = {
                "limit: raw TCP socket, into new memory": raw_tcp.receive,
                "limit: raw Unix socket, into new memory": raw_unix.receive,
                "loopback TCP fetch": lambda: tcp.fetch("src"),
                "Unix socket stream fetch (plain socket)": lambda: unix.fetch("src"),
                "Unix socket stream fetch (gRPC)": lambda: unix_grpc.fetch("src"),
                "shm fetch (copy)": lambda: local.fetch("src"),
                "shm fetch(out=reused)": lambda: local.fetch("src", out=reused),
                "shm map (zero-copy)": map_once,
                "shm put": put_with(local),
                "loopback TCP put": put_with(tcp),
            }
            if huge is not None:
                variants["shm fetch (copy), huge-page tmpfs"] = lambda: huge.fetch("src")
                variants["shm put, huge-page tmpfs"] = put_with(huge)
            for fn in variants.values():
                fn()  # warm: the heap and the page tables
            samples = {name: [] for name in ["memcpy (1 thread)", "memcpy into new memory",
                                             *variants]}
            for _ in range(3 if quick else 5):  # alternating rounds
                mc = run_json([tool, "memcpy", str(size)])
                samples["memcpy (1 thread)"].append(size / mc["Bps_max"])
                samples["memcpy into new memory"].extend(
                    timed(lambda: np.copyto(np.empty_like(arr), arr), reps))
                for name, fn in variants.items():
                    if name.endswith("put"):
                        samples[name].extend(fn() for _ in range(reps))
                    else:
                        samples[name].extend(timed(fn, reps))
                    keep.clear()
            assert raw_unix.receive().tobytes() == arr.tobytes()
            assert np.array_equal(unix.fetch("src"), arr)
            assert np.array_equal(unix_grpc.fetch("src"), arr)
            raw_tcp.close()
            raw_unix.close()
            assert np.array_equal(local.fetch("src"), arr) and np.array_equal(local.map("src"), arr)
            if huge is not None:
                assert np.array_equal(huge.fetch("src"), arr)
                huge.release("src")
            rows = out[size_label(size)] = {}
            memcpy_bps = size / statistics.median(samples["memcpy (1 thread)"])
            tcp_bps = size / statistics.median(samples["loopback TCP fetch"])
            for name, secs in samples.items():
                st = summary(secs, size)
                st["vs_memcpy"] = st["Bps"] / memcpy_bps
                st["vs_tcp_fetch"] = st["Bps"] / tcp_bps
                rows[name] = st
                print(f"{'same host: ' + name:<40} {size_label(size):>8} {fmt_rate(st['Bps']):>12} "
                      f"p50 {st['p50'] * 1e3:9.3f} ms  {st['vs_memcpy']:.2f}x memcpy  "
                      f"{st['vs_tcp_fetch']:.2f}x TCP fetch", flush=True)
            local.release("src")
        for c in (tcp, unix, unix_grpc, local, huge):
            if c is not None:
                c.close()
    finally:
        for daemon in (d, huge_daemon):
            if daemon is not None:
                daemon.terminate()
                daemon.wait(30)
        if huge_mount is not None:
            subprocess.run(["umount", "-l", huge_mount], check=False)
            os.rmdir(huge_mount)
        shutil.rmtree(folder, ignore_errors=True)
    return out


class RawSocketStream:
    """The socket's own limit, no gRPC: a thread sends `payload` whole at each
    request byte; receive() reads it into new memory (as a fetch does) over
    one kept connection, AF_INET loopback or AF_UNIX."""

    def __init__(self, family, payload, folder):
        self._payload = memoryview(payload).cast("B")
        listener = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_UNIX:
            listener.bind(os.path.join(folder, f"raw-{id(self)}.sock"))
        else:
            listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self._client = socket.socket(family, socket.SOCK_STREAM)
        self._client.connect(listener.getsockname())
        conn, _ = listener.accept()
        listener.close()
        self._thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
        self._thread.start()

    def _serve(self, conn):
        with conn:
            while conn.recv(1) == b"s":
                conn.sendall(self._payload)

    def receive(self):
        out = np.empty(self._payload.nbytes, np.uint8)
        view, got = memoryview(out), 0
        self._client.sendall(b"s")
        while got < len(view):
            n = self._client.recv_into(view[got:], min(len(view) - got, 4 * MIB))
            if n == 0:
                raise ConnectionError("raw socket stream closed early")
            got += n
        return out

    def close(self):
        self._client.sendall(b"q")
        self._client.close()
        self._thread.join(10)


def mount_huge_tmpfs(size):
    """A fresh tmpfs of `size` bytes mounted huge=within_size (2 MiB pages for
    files of 2 MiB and more): (its path, None), or (None, why not)."""
    with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
        if "[deny]" in f.read():
            return None, "shmem_enabled=deny: this kernel gives tmpfs no huge pages"
    path = tempfile.mkdtemp(prefix="npystream-bench-huge-")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},huge=within_size", "tmpfs",
                           path], capture_output=True, text=True)
    if done.returncode != 0:
        os.rmdir(path)
        return None, f"cannot mount a tmpfs (needs root): {done.stderr.strip()}"
    return path, None


def save(results, quick, suffix=""):
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", f"{datetime.date.today().isoformat()}-"
                       f"{socket.gethostname()}{suffix}{'-quick' if quick else ''}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"results: {out}")
    return out


def gpu_cases(bin_dir, tool, size):
    """The transfer engine on a GPU: device-to-host through the ring vs one
    cudaMemcpy into pinned memory and vs pageable memory (tensor.cpu()); a
    loopback fetch of a CUDA tensor vs the same tensor on the CPU; time to the
    first payload byte; the daemon's host RSS during the CUDA fetch."""
    d2h = run_json([tool, "d2h", str(size)])
    if "skipped" in d2h:
        print(f"{'GPU cases':<34} skipped: {d2h['skipped']}", flush=True)
        return {"skipped": d2h["skipped"]}
    label = f"GPU ({d2h['device']})"
    rate = {k: size / d2h[k]["median"] for k in ("single_pinned", "pageable", "ring")}
    print(f"{label}: D2H {size_label(size)}: ring {fmt_rate(rate['ring'])} = "
          f"{rate['ring'] / rate['single_pinned']:.2f}x one cudaMemcpy to pinned "
          f"({fmt_rate(rate['single_pinned'])}), {rate['ring'] / rate['pageable']:.2f}x pageable "
          f"tensor.cpu() ({fmt_rate(rate['pageable'])})", flush=True)
    ring_bytes = 256 * MIB
    d, m = start([os.path.join(bin_dir, "npystreamd"), "--listen", "127.0.0.1:0", "--http-listen", "",
                  "--store-budget", "16GiB", "--staging-bytes", str(ring_bytes)],
                 r" listening grpc=(\S+)")
    out = {"device": d2h["device"], "bytes": size, "d2h": d2h, "d2h_Bps": rate,
           "ring_vs_single_memcpy": rate["ring"] / rate["single_pinned"],
           "ring_vs_pageable": rate["ring"] / rate["pageable"], "staging_bytes": ring_bytes}
    try:
        target = m.group(1)
        with npystream.Client(target) as c:
            arr = np.ones(size // 4, dtype=np.float32)
            c.put(arr, name="on_gpu", device="cuda:0")
            c.put(arr, name="on_cpu", device="cpu")
        del arr
        fetched = {}
        for name in ("on_cpu", "on_gpu"):
            fetched[name] = run_json([tool, "fetch", target, name, "3", "1"])
        with open(f"/proc/{d.pid}/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM: the peak from here on is the fetch's
        before = rss(d.pid)
        run_json([tool, "fetch", target, "on_gpu", "1", "1"])
        peak = rss(d.pid, "VmHWM")
    finally:
        d.terminate()
        d.wait(30)
    gpu_Bps = size / fetched["on_gpu"]["median"]
    cpu_Bps = size / fetched["on_cpu"]["median"]
    out.update(fetch_gpu=fetched["on_gpu"], fetch_cpu=fetched["on_cpu"],
               fetch_gpu_vs_cpu=gpu_Bps / cpu_Bps,
               first_byte_p50=fetched["on_gpu"]["first_byte"]["p50"],
               rss_before_fetch=before, rss_peak_during_fetch=peak)
    print(f"{label}: fetch {size_label(size)} CUDA tensor {fmt_rate(gpu_Bps)} = "
          f"{gpu_Bps / cpu_Bps:.2f}x the same tensor on the CPU ({fmt_rate(cpu_Bps)}); first "
          f"payload byte p50 {out['first_byte_p50'] * 1e3:.2f} ms (CPU tensor "
          f"{fetched['on_cpu']['first_byte']['p50'] * 1e3:.2f} ms)", flush=True)
    print(f"{label}: daemon RSS during the CUDA fetch: peak {peak / MIB:.0f} MiB, "
          f"+{(peak - before) / MIB:.0f} MiB over its RSS before it (which holds the "
          f"{ring_bytes // MIB} MiB ring; goal: ring + 64 MiB, no host copy)", flush=True)
    return out


def size_label(n):
    for unit, v in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= v:
            return f"{n // v} {unit}"
    return f"{n} B"


if __name__ == "__main__":
    main()
