"""Faults (#15): kills, the budget under concurrent Puts, expiry and
deadlines mid-stream, a client that stops reading. Each ends with the daemon
serving and no stored tensor lost or changed."""
import asyncio
import io
import os
import socket
import threading
import time

import grpc
import numpy as np
import pytest

import npystream
from npystream import aio
from npystream.v1 import tensors_pb2 as pb
from conftest import Daemon, metric_sum, metrics

MIB = 1 << 20


def test_sigkill_then_restart_handles_are_not_found(make_daemon):
    first = make_daemon()
    with first.client() as c:
        handle = c.put(np.arange(10.0)).handle
    first.proc.kill()
    first.proc.wait(30)
    second = make_daemon()
    with second.client() as c:
        with pytest.raises(npystream.NotFoundError) as err:
            c.fetch(handle)
        assert handle in str(err.value)


def test_budget_under_32_concurrent_puts(make_daemon):
    """Exactly the Puts that fit succeed; stored bytes never exceed the budget."""
    d = make_daemon("--store-budget", "10MiB")
    arrays = {f"p{i}": np.full(MIB // 4, i, dtype=np.float32) for i in range(32)}  # 1 MiB each
    stored, refused, over = [], [], []
    done = threading.Event()

    def sample():
        while not done.is_set():
            used = metrics(d).get('npystream_store_bytes{device="cpu"}', 0)
            if used > 10 * MIB:
                over.append(used)

    def put(name):
        with d.client() as c:
            try:
                c.put(arrays[name], name=name)
                stored.append(name)
            except npystream.ResourceExhaustedError as e:
                refused.append(str(e))

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=put, args=(n,)) for n in arrays]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    done.set()
    sampler.join()
    assert len(stored) == 10 and len(refused) == 22, (stored, refused[:2])
    assert all("budget" in r for r in refused)
    assert not over, f"stored bytes went over the budget: {over[:3]}"
    with d.client() as c:
        assert sorted(t.handle for t in c.list()) == sorted(stored)
        for name in stored:
            assert np.array_equal(c.fetch(name), arrays[name])


def test_ttl_expiry_during_an_active_fetch_completes_it(make_daemon):
    d = make_daemon()
    arr = np.arange(64 * MIB // 8, dtype=np.float64)
    with d.client() as c:
        info = c.put(arr, ttl=1)
        paused = []

        def slow(done, total):  # the first progress call outlives the TTL
            if not paused:
                paused.append(done)
                time.sleep(2)

        got = c.fetch(info.handle, progress=slow)
        assert paused and np.array_equal(got, arr)
        with pytest.raises(npystream.NotFoundError):
            c.stat(info.handle)


def test_deadline_exceeded_mid_stream_leaves_the_tensor_intact(make_daemon):
    d = make_daemon()
    arr = np.arange(64 * MIB // 4, dtype=np.float32)
    with d.client() as c:
        c.put(arr, name="big")
    with d.client(timeout=0.5) as slow_client:
        with pytest.raises(npystream.Error) as err:
            slow_client.fetch("big", progress=lambda done, total: time.sleep(0.05))
        assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    with d.client() as c:
        assert np.array_equal(c.fetch("big"), arr)
    assert d.alive()


def test_a_client_that_stops_reading_is_cancelled_after_the_idle_timeout(make_daemon):
    d = make_daemon("--idle-timeout", "1")
    arr = np.arange(256 * MIB // 4, dtype=np.float32)
    with d.client() as c:
        c.put(arr, name="big")
    channel = grpc.insecure_channel(d.target)
    fetch = channel.unary_stream("/npystream.v1.Tensors/Fetch",
                                 request_serializer=None, response_deserializer=None)

    call = fetch(pb.FetchRequest(handle="big").SerializeToString())
    next(call)  # one message, then nothing read: flow control stalls the server
    time.sleep(3)
    with pytest.raises(grpc.RpcError) as err:
        for _ in call:
            pass
    assert err.value.code() == grpc.StatusCode.CANCELLED
    channel.close()
    assert any("rpc_idle_cancelled" in line for line in d.log)
    with d.client() as c:
        assert np.array_equal(c.fetch("big"), arr)


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))


def test_freed_tensor_memory_is_reused_under_load_and_unmapped_when_idle(make_daemon):
    """A released tensor's memory is kept for the next Put of its size (the
    metric shows it, the Put takes it back), then unmapped once the daemon
    has been idle for a whole 2 s period: RSS drops by the tensor's size."""
    d = make_daemon()
    cached = "npystream_host_memory_cached_bytes"
    a = np.arange(32 * MIB // 4, dtype=np.float32)
    with d.client() as c:
        c.put(a, name="first")
        c.release("first")
        assert metric_sum(d, cached) >= a.nbytes
        c.put(a + 1, name="second")  # the same size class: the kept block
        assert metric_sum(d, cached) == 0
        assert np.array_equal(c.fetch("second"), a + 1)
        c.release("second")
        assert metric_sum(d, cached) >= a.nbytes
        kept_rss = rss_bytes(d.proc.pid)
        deadline = time.monotonic() + 10
        while metric_sum(d, cached) > 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metric_sum(d, cached) == 0, "the kept block was not given back when idle"
        assert rss_bytes(d.proc.pid) < kept_rss - a.nbytes * 0.9
        c.put(a, name="third")  # and a Put after that maps a new block
        assert np.array_equal(c.fetch("third"), a)


def test_soak_gives_back_what_it_took():
    """64 clients mixing Put/Fetch/Stat/Release/Infer/Subscribe for 60 s
    (`make soak` runs 5 minutes): no errors, every fetch byte-identical, and
    afterwards RSS within 10 % (+32 MiB) of the idle baseline, fds and threads
    back, the store empty and its metrics agreeing with List."""
    import soak
    result = soak.run(float(os.environ.get("NPYSTREAM_SOAK_SECONDS", 60)), 64)
    print(f"soak: {result['requests']} requests, RSS {result['before']['rss_bytes'] >> 20} -> "
          f"{result['peak_rss_bytes'] >> 20} -> {result['after']['rss_bytes'] >> 20} MiB, "
          f"threads {result['before']['threads']} -> {result['after']['threads']}")
    soak.check(result)


def test_a_thousand_random_cancels(make_daemon):
    """1,000 calls cancelled at random points of Put, Fetch, Infer and
    Subscribe: the daemon keeps serving, nothing half-put is published, and
    every tensor stored before fetches byte-identical afterwards."""
    import concurrent.futures
    import io
    import os as _os
    import random

    from npystream.v1 import inference_pb2 as ipb

    build = _os.environ.get("NPYSTREAM_BUILD", _os.path.join(
        _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__))), "build"))
    d = make_daemon("--model-repository", _os.path.join(build, "models"))
    keep = {f"keep{i}": np.random.default_rng(i).standard_normal(50_000 + i) for i in range(8)}
    with d.client() as c:
        for name, a in keep.items():
            c.put(a, name=name)
        c.put(np.arange(8 * MIB // 4, dtype=np.float32), name="big")
        before_handles = {t.handle for t in c.list()}
    channel = grpc.insecure_channel(d.target)
    fetch = channel.unary_stream("/npystream.v1.Tensors/Fetch")
    put = channel.stream_unary("/npystream.v1.Tensors/Put")
    infer = channel.unary_unary("/npystream.v1.Inference/Infer")
    subscribe = channel.unary_stream("/npystream.v1.Inference/Subscribe")
    x = io.BytesIO()
    np.save(x, np.zeros((16, 1, 28, 28), np.float32))
    infer_req = ipb.InferRequest(model="demo", capture=["conv1"])
    infer_req.inputs.add(name="x", npy=x.getvalue())
    big_npy = io.BytesIO()
    np.save(big_npy, np.ones(4 * MIB // 4, np.float32))
    big_npy = big_npy.getvalue()

    def one(i):
        rng = random.Random(i)
        kind = rng.choice(["put", "fetch", "infer", "subscribe"])
        delay = rng.random() * 0.02
        if kind == "fetch":
            call = fetch(pb.FetchRequest(handle="big", chunk_bytes=65536).SerializeToString())
            for k, _ in enumerate(call):
                if k >= rng.randrange(0, 40):
                    break
            call.cancel()
        elif kind == "put":
            def parts():
                yield pb.PutRequest(header=pb.PutHeader(name=f"cancelled{i}")).SerializeToString()
                for off in range(0, len(big_npy), 256 * 1024):
                    yield pb.PutRequest(data=big_npy[off:off + 256 * 1024]).SerializeToString()
            future = put.future(parts())
            time.sleep(delay)
            future.cancel()
        elif kind == "infer":
            future = infer.future(infer_req.SerializeToString())
            time.sleep(delay)
            future.cancel()
        else:
            call = subscribe(ipb.SubscribeRequest(model="demo", layers=["conv1"])
                             .SerializeToString())
            time.sleep(delay)
            call.cancel()
        return kind

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        kinds = list(pool.map(one, range(1000)))
    elapsed = time.monotonic() - start
    channel.close()
    assert d.alive()
    with d.client() as c:
        for name, a in keep.items():
            assert np.array_equal(c.fetch(name), a), name
        assert np.array_equal(c.fetch("big"), np.arange(8 * MIB // 4, dtype=np.float32))
        # A cancelled Put either completed whole or left nothing behind.
        for t in c.list():
            if t.handle.startswith("cancelled"):
                assert np.array_equal(c.fetch(t.handle), np.ones(4 * MIB // 4, np.float32))
        c.infer("demo", {"x": np.zeros((1, 1, 28, 28), np.float32)})
        assert before_handles <= {t.handle for t in c.list()}
    print(f"1000 cancels ({dict((k, kinds.count(k)) for k in set(kinds))}) in {elapsed:.1f} s")


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_the_first_calls_after_a_daemon_restart_succeed(transport, tmp_path):
    """A daemon restarted at the same address leaves clients a dead kept
    connection; gRPC reports a call written into it as UNAVAILABLE ("Broken
    pipe", "Socket closed"). Idempotent calls are sent once more, so each
    first call after a restart is answered by the new daemon (here
    NOT_FOUND or an empty list, never UNAVAILABLE)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = f"127.0.0.1:{port}" if transport == "tcp" else f"unix://{tmp_path}/d.sock"
    daemon = Daemon("--listen", target)
    sync = npystream.Client(target, shm=False)  # fetch: the C++ path
    plain_grpc = npystream.Client(target, shm=False, timeout=60)  # fetch: grpcio
    loop = asyncio.new_event_loop()
    async def make_async_client():
        return aio.Client(target)
    async_client = loop.run_until_complete(make_async_client())  # on this loop
    calls = {
        "aio list": lambda: loop.run_until_complete(async_client.list()),
        "aio stat": lambda: loop.run_until_complete(async_client.stat("gone")),
        "list": sync.list,
        "stat": lambda: sync.stat("gone"),
        "fetch (C++)": lambda: sync.fetch("gone"),
        "fetch (grpcio)": lambda: plain_grpc.fetch("gone"),
        "fetch_to": lambda: plain_grpc.fetch_to("gone", io.BytesIO()),
        "list_models": sync.list_models,
    }
    for call in calls.values():  # every connection kept, before the restarts
        try:
            call()
        except npystream.NotFoundError:
            pass
    lost = []
    try:
        for _ in range(3):
            for name, call in calls.items():
                daemon.proc.kill()  # a crash; a drained stop (SIGTERM) loses the same calls
                daemon.stop()
                daemon = Daemon("--listen", target)
                try:
                    call()
                except npystream.NotFoundError:
                    pass
                except npystream.Error as err:
                    lost.append(f"{name}: {err}")
    finally:
        sync.close()
        plain_grpc.close()
        loop.run_until_complete(async_client.close())
        loop.close()
        daemon.stop()
    assert not lost
