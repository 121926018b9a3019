#!/usr/bin/python3
"""Soak: 64 concurrent clients mixing Put/Fetch/Stat/Release/Infer/Subscribe
against one npystreamd for SOAK_SECONDS (every fourth over its Unix socket,
where fetches take the plain fetch socket), then checks the daemon gave back
what it took: RSS within 10 % (+32 MiB) of its idle baseline, file
descriptors and threads back to baseline, the store empty and its metrics
consistent with List. Prints one JSON line of figures (requests, errors by
code, RSS/fd/thread before and after). `make soak` runs 5 minutes; the
pytest suite runs 60 s (tests/test_faults.py::test_soak).

usage: soak.py [--seconds N] [--clients N] [--build DIR]"""
import argparse
import collections
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import npystream  # noqa: E402
from conftest import Daemon, metric_sum  # noqa: E402


def proc_stats(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    names = collections.Counter()
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                names[f.read().strip()] += 1
        except OSError:
            pass
    return {"rss_bytes": int(fields["VmRSS"].split()[0]) * 1024,
            "threads": int(fields["Threads"]), "thread_names": dict(names),
            "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def given_back(before, after):
    """What the daemon has not given back since `before`: [] when RSS is
    within 10 % (+32 MiB) of it and fds and threads are no more."""
    unmet = []
    # A sanitized daemon's allocator keeps freed memory in quarantine: its
    # RSS says nothing about the daemon's own (fds and threads still count).
    sanitized = bool(os.environ.get("NPYSTREAM_SANITIZE"))
    if not sanitized and after["rss_bytes"] > before["rss_bytes"] * 1.10 + 32 * 2**20:
        unmet.append(f"RSS {before['rss_bytes']} -> {after['rss_bytes']}")
    if after["fds"] > before["fds"]:
        unmet.append(f"fds {before['fds']} -> {after['fds']}")
    if after["threads"] > before["threads"]:
        unmet.append(f"threads {before['threads']} -> {after['threads']}")
    return unmet


def worker(daemon, seed, deadline, counts, errors, lock):
    rng = random.Random(seed)
    mine = []
    unix = seed % 4 == 1  # gRPC and the plain fetch over the Unix socket
    with (npystream.Client(daemon.socket) if unix else daemon.client()) as c:
        while time.monotonic() < deadline:
            op = rng.choice(["put", "put", "fetch", "fetch", "stat", "release", "infer",
                             "subscribe"])
            if op == "put" and len(mine) >= 24:  # each client keeps at most 24 tensors
                op = "release"
            try:
                if op == "put":
                    n = rng.choice([16, 1024, 64 * 1024, 256 * 1024])
                    a = np.arange(n, dtype=np.float32) * rng.random()
                    info = c.put(a)
                    mine.append((info.handle, a))
                elif op == "fetch" and mine:
                    handle, a = rng.choice(mine)
                    if not np.array_equal(c.fetch(handle), a):
                        raise AssertionError(f"fetch of {handle} returned other bytes")
                elif op == "stat" and mine:
                    c.stat(rng.choice(mine)[0])
                elif op == "release" and mine:
                    handle, _ = mine.pop(rng.randrange(len(mine)))
                    c.release(handle)
                elif op == "infer":
                    x = np.random.default_rng(seed).standard_normal(
                        (rng.choice([1, 4, 8]), 1, 28, 28), dtype=np.float32)
                    c.infer("demo", {"x": x}, capture=["conv1"] if rng.random() < 0.3 else None)
                elif op == "subscribe":
                    sub = c.subscribe("demo", ["fc"])
                    got = threading.Event()

                    def read():
                        for _ in sub:
                            got.set()
                            return

                    t = threading.Thread(target=read, daemon=True)
                    t.start()
                    time.sleep(0.02)
                    c.infer("demo", {"x": np.zeros((1, 1, 28, 28), np.float32)})
                    got.wait(5)
                    sub.cancel()
                    t.join(5)
                else:
                    continue
                with lock:
                    counts[op] += 1
            except npystream.Error as e:
                with lock:
                    errors[f"{op}:{type(e).__name__}"] += 1
        for handle, _ in mine:
            c.release(handle)


# Long enough for the heap to reach its working size before the idle
# baseline: after 2 s the baseline still varied 202-239 MiB between runs on
# this VM while the level after the soak stayed 239-262 MiB.
WARM_SECONDS = 6


def run(seconds, clients, build=None):
    if build:
        os.environ["NPYSTREAM_BUILD"] = build
    models = os.path.join(os.environ.get("NPYSTREAM_BUILD", os.path.join(ROOT, "build")),
                          "models")
    folder = tempfile.mkdtemp(prefix="npystream-soak-")
    d = Daemon("--model-repository", models, "--store-budget", "4GiB",
               "--listen", f"unix://{folder}/soak.sock")
    d.socket = f"unix://{folder}/soak.sock"
    try:
        # Warm up every path with the same concurrency for 6 s (gRPC's
        # executor grows to its bounded size, 2 threads a core, and keeps
        # them), let it go idle, then take the idle baseline.
        counts, errors = collections.Counter(), collections.Counter()
        lock = threading.Lock()
        warm_until = time.monotonic() + WARM_SECONDS
        warm = [threading.Thread(target=worker,
                                 args=(d, 1000 + i, warm_until, counts, errors, lock))
                for i in range(clients)]
        for t in warm:
            t.start()
        for t in warm:
            t.join()
        counts.clear()
        time.sleep(5)
        before = proc_stats(d.proc.pid)
        deadline = time.monotonic() + seconds
        threads = [threading.Thread(target=worker, args=(d, i, deadline, counts, errors, lock))
                   for i in range(clients)]
        start = time.monotonic()
        for t in threads:
            t.start()
        peak = before
        while any(t.is_alive() for t in threads):
            time.sleep(1)
            now = proc_stats(d.proc.pid)
            if now["rss_bytes"] > peak["rss_bytes"]:
                peak = now
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        # Idle again: calls and channels closed, the store empty. The daemon
        # hands free heap memory and its kept tensor blocks back after a
        # whole idle period (2 s ticks)
        # and gRPC retires idle threads: give both up to 30 s.
        settle_until = time.monotonic() + 30
        while True:
            time.sleep(2)
            after = proc_stats(d.proc.pid)
            if not given_back(before, after) or time.monotonic() > settle_until:
                break
        with d.client() as c:
            listed = c.list()
        result = {
            "seconds": round(elapsed, 1), "clients": clients,
            "requests": sum(counts.values()), "by_op": dict(counts),
            "errors": dict(errors), "before": before, "peak_rss_bytes": peak["rss_bytes"],
            "after": after, "listed_after": len(listed),
            "store_bytes_after": metric_sum(d, "npystream_store_bytes"),
            "store_tensors_after": metric_sum(d, "npystream_store_tensors"),
        }
        result["alive"] = d.alive()
        return result
    finally:
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


def check(result):
    """The soak's promises, as assertions (message says which failed)."""
    before, after = result["before"], result["after"]
    assert result["alive"], "npystreamd died"
    assert result["requests"] > 0
    assert not result["errors"], f"errors: {result['errors']}"
    unmet = given_back(before, after)
    assert not unmet, "; ".join(unmet)
    assert result["listed_after"] == 0 and result["store_tensors_after"] == 0
    assert result["store_bytes_after"] == 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float,
                        default=float(os.environ.get("SOAK_SECONDS", 300)))
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--build", default=None)
    args = parser.parse_args()
    print(f"soak: {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
    result = run(args.seconds, args.clients, args.build)
    print(json.dumps(result), flush=True)
    check(result)
    mib = 2**20
    print(f"soak: ok: {result['requests']} requests in {result['seconds']} s, no errors; RSS "
          f"{result['before']['rss_bytes'] / mib:.0f} MiB idle -> "
          f"{result['peak_rss_bytes'] / mib:.0f} MiB peak -> "
          f"{result['after']['rss_bytes'] / mib:.0f} MiB after; fds "
          f"{result['before']['fds']} -> {result['after']['fds']}; threads "
          f"{result['before']['threads']} -> {result['after']['threads']}")


if __name__ == "__main__":
    main()
