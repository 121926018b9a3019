"""Inference against a real npystreamd, checked against the same TorchScript
models run locally by Debian's torch."""
import concurrent.futures
import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest
import torch

import npystream
from conftest import SLOWDOWN
from make_test_models import TwoInputs, make_repository, write


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repository(str(tmp_path_factory.mktemp("models")))


@pytest.fixture(scope="module")
def served(repo):
    from conftest import Daemon
    d = Daemon("--model-repository", repo)
    yield d
    assert d.alive(), "".join(d.log[-40:])
    assert d.stop() == 0


@pytest.fixture
def c(served):
    with served.client() as client:
        yield client


def digits(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28), dtype=np.float32)


def local(repo, name):
    return torch.jit.load(os.path.join(repo, name, "model.pt"))


def test_outputs_equal_local_torchscript_exactly(c, repo):
    x = digits(5)
    got = c.infer("demo", {"x": x})
    with torch.no_grad():
        ref = local(repo, "demo")(torch.from_numpy(x)).numpy()
    assert list(got) == ["logits"]
    assert got["logits"].dtype == np.float32 and np.array_equal(got["logits"], ref)


def test_capture_layers_by_name(c, repo):
    x = digits(3, seed=1)
    got = c.infer("demo", {"x": x}, capture=["conv1", "pool2", "fc"])
    m = local(repo, "demo")
    with torch.no_grad():
        t = torch.from_numpy(x)
        conv1 = m.conv1(t)
        pool2 = m.pool2(m.relu2(m.conv2(m.pool1(m.relu1(conv1)))))
        fc = m.fc(m.flatten(pool2))
    assert np.array_equal(got["conv1"], conv1.numpy())
    assert np.array_equal(got["pool2"], pool2.numpy())
    assert np.array_equal(got["fc"], fc.numpy())
    assert np.array_equal(got["logits"], fc.numpy())


def test_list_models_reports_layers_and_broken_models(c):
    listing = c.list_models()
    by_name = {m.name: m for m in listing.models}
    assert list(by_name["demo"].layers) == ["conv1", "relu1", "pool1", "conv2", "relu2",
                                            "pool2", "flatten", "fc"]
    assert by_name["demo"].inputs[0].dtype == "<f4"
    assert by_name["two"].instances == 2
    errors = {e.name: e.message for e in listing.errors}
    assert "broken" in errors and "cannot load" in errors["broken"]
    with pytest.raises(npystream.NotFoundError) as err:
        c.infer("broken", {"x": digits(1)})
    assert "failed to load" in str(err.value)


def test_dict_outputs_and_dict_layer_capture(c, repo):
    x = np.random.default_rng(2).standard_normal((4, 6), dtype=np.float32)
    got = c.infer("dicts", {"x": x}, capture=["head", "proj"])
    m = local(repo, "dicts")
    with torch.no_grad():
        ref = m(torch.from_numpy(x))
        h = m.proj(torch.from_numpy(x))
    for key in ("logits", "probs", "mean"):
        assert np.array_equal(got[key], ref[key].numpy()), key
    assert np.array_equal(got["proj"], h.numpy())
    assert np.array_equal(got["head.mean"], h.mean(dim=1).numpy())
    assert np.array_equal(got["head.max"], h.amax(dim=1).numpy())
    only = c.infer("dicts", {"x": x}, outputs=["probs"], capture=["mean"])
    assert sorted(only) == ["mean", "probs"]


def test_bfloat16_output_arrives_as_float32(c):
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = c.infer("bf16", {"x": x})["output"]
    assert got.dtype == np.float32
    ref = (torch.from_numpy(x) * 3).to(torch.bfloat16).to(torch.float32).numpy()
    assert np.array_equal(got, ref)


def test_inputs_by_handle_and_handles_out(c):
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    b = np.ones((2, 3))
    ha = c.put(a)
    infos = c.infer("two", {"a": ha, "b": b}, fetch=False, ttl=60)
    assert set(infos) == {"sum", "product"}
    assert infos["sum"].device == "cpu" and infos["sum"].expires_unix_ms > 0
    assert np.array_equal(c.fetch(infos["sum"].handle), a + 2 * b)
    assert np.array_equal(c.fetch(infos["product"].handle), a * b)
    # Outputs stay resident and can feed the next Infer by handle.
    again = c.infer("two", {"a": infos["sum"].handle, "b": infos["product"].handle})
    assert np.array_equal(again["sum"], (a + 2 * b) + 2 * (a * b))
    for info in list(infos.values()) + [ha]:
        c.release(info.handle)


@pytest.mark.parametrize("model,inputs,kwargs,needle", [
    ("demo", {"x": np.zeros((2, 3, 28, 28), np.float32)}, {}, "input 'x': expected float32[-1, 1, 28, 28]"),
    ("demo", {"x": np.zeros((2, 1, 28, 28), np.float64)}, {}, "input 'x': expected float32"),
    ("demo", {"y": np.zeros((2, 1, 28, 28), np.float32)}, {}, "has no input 'y'"),
    ("two", {"a": np.zeros((2, 3))}, {}, "missing input 'b'"),
    ("two", {"a": np.zeros((9, 3)), "b": np.zeros((9, 3))}, {}, "exceeds max_batch 8"),
    ("demo", {"x": np.zeros((1, 1, 28, 28), np.float32)}, {"outputs": ["nope"]}, "has no output 'nope'"),
    ("demo", {"x": np.zeros((1, 1, 28, 28), np.float32)}, {"capture": ["conv9"]}, "no layer or output 'conv9'"),
    ("bf16", {"x": np.zeros(3, np.uint32)}, {}, "uint32 has no LibTorch dtype"),
    ("dicts", {"x": np.zeros((2, 5), np.float32)}, {}, "rejected its inputs"),
])
def test_bad_inputs_are_invalid_argument(c, model, inputs, kwargs, needle):
    with pytest.raises(npystream.InvalidArgumentError) as err:
        c.infer(model, inputs, **kwargs)
    assert needle in str(err.value)


def test_unknown_model_is_not_found(c):
    with pytest.raises(npystream.NotFoundError):
        c.infer("no-such-model", {"x": digits(1)})
    with pytest.raises(npystream.NotFoundError):
        next(iter(c.subscribe("no-such-model", ["conv1"])))
    with pytest.raises(npystream.InvalidArgumentError):
        next(iter(c.subscribe("demo", ["conv7"])))


def test_reload_by_rpc_and_sighup(repo, make_daemon, tmp_path):
    own = str(tmp_path / "repo")
    os.makedirs(own)
    shutil.copytree(os.path.join(repo, "two"), os.path.join(own, "two"))
    d = make_daemon("--model-repository", own)
    with d.client() as c:
        assert [m.name for m in c.list_models().models] == ["two"]
        write(own, "three", TwoInputs())
        assert sorted(m.name for m in c.reload().models) == ["three", "two"]
        write(own, "four", TwoInputs())
        d.proc.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "four" in {m.name for m in c.list_models().models}:
                break
            time.sleep(0.05)
        assert "four" in {m.name for m in c.list_models().models}
        got = c.infer("four", {"a": np.ones((1, 3)), "b": np.ones((1, 3))})
        assert np.array_equal(got["output0"], np.full((1, 3), 3.0))


def test_slow_subscriber_gets_the_newest_value(served, c, repo):
    m = local(repo, "demo")
    batches = [digits(64, seed=200 + i) for i in range(21)]  # conv1: 1.6 MB each
    with torch.no_grad():
        newest = m.conv1(torch.from_numpy(batches[-1])).numpy()
    stream = c.subscribe("demo", ["conv1"])
    received = []
    first_seen = threading.Event()

    def reader():
        for name, arr in stream:
            received.append((name, arr))
            first_seen.set()
            if len(received) == 1:
                time.sleep(2.0)  # a slow reader: 20 values are produced meanwhile

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    time.sleep(0.3)  # let the subscription register
    c.infer("demo", {"x": batches[0]})
    assert first_seen.wait(10)
    start = time.monotonic()
    for x in batches[1:]:
        c.infer("demo", {"x": x})
    infer_seconds = time.monotonic() - start
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
            received and np.array_equal(received[-1][1], newest)):
        time.sleep(0.05)
    stream.close()
    assert all(name == "conv1" for name, _ in received)
    assert np.array_equal(received[-1][1], newest)  # the newest value arrives
    assert len(received) < len(batches)  # older ones were dropped, not queued
    assert infer_seconds < 2.0  # Infer never waited for the slow reader


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_1000_infers(served, c):
    if os.environ.get("NPYSTREAM_SANITIZE"):
        pytest.skip("a sanitizer's allocator keeps freed memory in quarantine: RSS is not the daemon's")
    x = digits(8, seed=5)
    for _ in range(100):
        c.infer("demo", {"x": x}, capture=["conv1"])
    before = rss_bytes(served.proc.pid)
    for _ in range(1000):
        c.infer("demo", {"x": x}, capture=["conv1"])
    after = rss_bytes(served.proc.pid)
    deadline = time.monotonic() + 5  # releases are sent without waiting
    while any(not t.expires_unix_ms for t in c.list()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(t.expires_unix_ms for t in c.list())
    # 1000 calls x (conv1 200 KiB + logits) would be ~200 MiB if leaked.
    assert after - before < 24 << 20, (before, after)


def test_eight_concurrent_infer_clients(served, repo):
    m = local(repo, "demo")

    def worker(seed):
        with served.client() as client:
            for i in range(10):
                x = digits(4, seed=seed * 100 + i)
                got = client.infer("demo", {"x": x}, capture=["pool1"])
                with torch.no_grad():
                    ref = m(torch.from_numpy(x)).numpy()
                    pool1 = m.pool1(m.relu1(m.conv1(torch.from_numpy(x)))).numpy()
                if not (np.array_equal(got["logits"], ref) and np.array_equal(got["pool1"], pool1)):
                    return False
        return True

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(worker, range(8)))


PTHREADS_OPENBLAS = "/usr/lib/x86_64-linux-gnu/openblas-pthread"


@pytest.mark.skipif(not os.path.isdir(PTHREADS_OPENBLAS),
                    reason="libopenblas0-pthread is not installed")
@pytest.mark.parametrize("threads", [1, 3])
def test_a_threaded_openblas_gets_the_torch_threads_not_a_thread_per_core(
        make_daemon, repo, threads):
    """A user's system may pick the pthreads OpenBLAS (it is the alternatives'
    first choice): its threads per call follow --torch-threads, not the cores."""
    d = make_daemon("--model-repository", repo, "--log-format", "json",
                    "--torch-threads", str(threads),
                    env={"LD_LIBRARY_PATH": PTHREADS_OPENBLAS})
    blas = next(json.loads(line) for line in d.log if '"event":"blas"' in line.replace(" ", ""))
    assert blas["threading"] == "pthreads", blas
    assert blas["threads"] == threads, blas
    x = digits(64, seed=7)
    with d.client() as c:
        got = c.infer("demo", {"x": x})["logits"]
    with torch.no_grad():
        ref = local(repo, "demo")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_small_results_come_back_inline_large_ones_by_handle(c, repo):
    x = digits(64, seed=9)  # conv1: 64x8x28x28 float32 = 1.6 MB, over the 1 MiB default
    m = local(repo, "demo")
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
        conv1 = m.conv1(torch.from_numpy(x)).numpy()
    before = {t.handle for t in c.list()}
    got = c.infer("demo", {"x": x}, capture=["conv1"])
    assert np.array_equal(got["logits"], ref) and np.array_equal(got["conv1"], conv1)
    # The raw reply: logits inline with no handle, conv1 stored with a handle.
    from npystream.v1 import inference_pb2 as ipb
    import io as _io
    req = ipb.InferRequest(model="demo", capture=["conv1"], inline_max_bytes=1 << 20)
    req.inputs.add(name="x", npy=_npy(x))
    reply = c._inference.Infer(req)
    assert reply.outputs[0].handle == "" and len(reply.output_npy[0]) == reply.outputs[0].npy_bytes
    assert np.array_equal(np.load(_io.BytesIO(reply.output_npy[0])), ref)
    assert reply.activations[0].handle != "" and reply.activation_npy[0] == b""
    c.release(reply.activations[0].handle)
    deadline = time.monotonic() + 5
    while {t.handle for t in c.list()} != before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert {t.handle for t in c.list()} == before  # nothing left behind


def _npy(arr):
    import io as _io
    buf = _io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_batched_requests_reach_subscribers_one_value_per_request(make_daemon, tmp_path):
    """With dynamic batching on, subscribers see each request's own rows (one
    value per request, numbered by seq), not the merged batch."""
    import io

    import websocket
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    build = os.environ.get("NPYSTREAM_BUILD", os.path.join(root, "build"))
    src = os.path.join(build, "models", "demo")
    dst = tmp_path / "repo" / "demo_batched"
    dst.mkdir(parents=True)
    shutil.copyfile(os.path.join(src, "model.pt"), dst / "model.pt")
    config = json.load(open(os.path.join(src, "config.json")))
    config["dynamic_batching"] = {"max_batch": 64, "max_queue_delay_us": 20000}
    (dst / "config.json").write_text(json.dumps(config))
    d = make_daemon("--model-repository", str(tmp_path / "repo"))
    ws = websocket.create_connection(
        f"ws://{d.http}/v1/models/demo_batched/subscribe?layers=conv1&max_hz=0", timeout=30)
    time.sleep(0.1)
    n = 24
    xs = [digits(1, seed=100 + i) for i in range(n)]
    local = torch.jit.load(str(dst / "model.pt"))
    with torch.no_grad():
        refs = [local.conv1(torch.from_numpy(x)).numpy() for x in xs]
    barrier = threading.Barrier(n)

    def one(i):
        with d.client() as c:
            barrier.wait()
            c.infer("demo_batched", {"x": xs[i]}, fetch=False)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    seqs = []
    ws.settimeout(2 * SLOWDOWN)
    try:
        while True:
            meta = json.loads(ws.recv())
            arr = np.load(io.BytesIO(ws.recv()))
            seqs.append(meta["seq"])
            assert arr.shape == (1, 8, 28, 28), arr.shape  # one request's rows
            assert any(np.allclose(arr, r, rtol=1e-5, atol=1e-5) for r in refs)
            if meta["seq"] == n:
                break
    finally:
        ws.close()
    assert seqs[-1] == n  # one published value per request
    from conftest import metric_sum
    count = metric_sum(d, "npystream_batch_size_count")
    rows = metric_sum(d, "npystream_batch_size_sum")
    assert rows == n and count < n  # the requests really were merged
