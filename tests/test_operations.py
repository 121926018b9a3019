"""Operating npystreamd: metrics, health, drain, HTTP downloads, TLS, auth,
limits. Every test runs against real daemons started with its own flags."""
import io
import json
import os
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest

import npystream
from conftest import BUILD, assert_json_log, http, metrics
from make_test_models import Transpose, write
from npy_ref import save_bytes
from npystream import _wire
from npystream.v1 import tensors_pb2 as pb

MODELS = os.path.join(BUILD, "models")


def health(target, credentials=None):
    """grpc.health.v1.Health/Check with an empty service name, called raw."""
    channel = (grpc.secure_channel(target, credentials) if credentials
               else grpc.insecure_channel(target))
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None,
                                response_deserializer=None)
    try:
        raw = check(b"", timeout=10)
        return {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(raw, raw)
    finally:
        channel.close()


def test_metrics_count_exact_bytes_and_calls(make_daemon):
    d = make_daemon("--model-repository", MODELS)
    before = metrics(d)
    arr = np.arange(10_000, dtype=np.float64)
    npy = len(save_bytes(arr))
    with d.client() as c:
        c.put(arr, name="m1")
        c.fetch("m1")
        c.fetch("m1")
        with pytest.raises(npystream.NotFoundError):
            c.stat("missing")
        c.infer("demo", {"x": np.zeros((2, 1, 28, 28), np.float32)}, fetch=False)
    after = metrics(d)

    def delta(key):
        return after.get(key, 0) - before.get(key, 0)

    assert delta("npystream_bytes_received_total") >= npy  # Put + the inline infer input
    assert delta("npystream_bytes_sent_total") == 2 * npy
    assert delta('npystream_rpc_requests_total{code="OK",method="Put"}') == 1
    assert delta('npystream_rpc_requests_total{code="OK",method="Fetch"}') == 2
    assert delta('npystream_rpc_requests_total{code="NOT_FOUND",method="Stat"}') == 1
    assert delta('npystream_rpc_duration_seconds_count{method="Fetch"}') == 2
    assert delta('npystream_infer_duration_seconds_count{model="demo"}') == 1
    assert after["npystream_store_tensors"] == 2  # m1 + the demo output
    assert after['npystream_store_bytes{device="cpu"}'] == arr.nbytes + 2 * 10 * 4
    assert after['npystream_store_budget_bytes{device="cpu"}'] == 8 << 30
    assert after["npystream_fetch_active"] == 0
    for name in ("npystream_d2h_bytes_total", "npystream_h2d_bytes_total",
                 "npystream_staging_ring_free_bytes"):
        assert name in after


def test_contiguous_copies_are_counted_and_results_match_numpy(make_daemon, tmp_path):
    write(str(tmp_path), "transpose", Transpose())
    d = make_daemon("--model-repository", str(tmp_path))
    copies = 'npystream_contiguous_copies_total{device="cpu"}'
    copied = 'npystream_contiguous_copy_bytes_total{device="cpu"}'
    x = np.arange(15, dtype=np.float32).reshape(3, 5)
    with d.client() as c:
        before = metrics(d)
        c.put(x, name="x")
        c.fetch("x")
        assert metrics(d).get(copies, 0) == before.get(copies, 0)  # contiguous: no copy
        out = c.infer("transpose", {"x": x}, fetch=False)
        after = metrics(d)
        (info,) = out.values()
        got = c.fetch(info.handle)
    np.testing.assert_array_equal(got, x.T)
    assert got.flags.c_contiguous
    assert after[copies] - before.get(copies, 0) == 1
    assert after[copied] - before.get(copied, 0) == x.nbytes


def test_subscribe_drops_are_counted(make_daemon):
    d = make_daemon("--model-repository", MODELS)
    with d.client() as c:
        sub = c.subscribe("demo", ["conv1"])  # never read: the slowest subscriber
        it = iter(sub)
        threading.Thread(target=lambda: next(it, None), daemon=True).start()
        time.sleep(0.3)
        x = np.random.default_rng(0).standard_normal((64, 1, 28, 28), dtype=np.float32)
        for _ in range(30):
            c.infer("demo", {"x": x})
        dropped = metrics(d).get('npystream_subscribe_dropped_total{layer="conv1",model="demo"}', 0)
        sub.cancel()
    assert dropped > 0


def test_health_endpoints_and_grpc_health_reflection(daemon):
    assert http(daemon, "/healthz")[0] == 200
    status, _, body = http(daemon, "/readyz")
    assert status == 200 and b'"ready":true' in body
    assert health(daemon.target) == "SERVING"
    channel = grpc.insecure_channel(daemon.target)
    reflect = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=None, response_deserializer=None)
    reply = next(reflect(iter([b"\x3a\x00"])))  # list_services: ""
    channel.close()
    assert b"npystream.v1.Tensors" in reply and b"npystream.v1.Inference" in reply
    assert b"grpc.health.v1.Health" in reply


def test_http_npy_download_and_ranges(daemon, client, unique):
    name = unique()
    arr = np.random.default_rng(3).standard_normal((300, 7)).astype(np.float32)
    client.put(arr, name=name)
    expected = save_bytes(arr)
    status, headers, body = http(daemon, f"/v1/tensors/{name}.npy")
    assert status == 200 and body == expected
    assert headers["Content-Length"] == str(len(expected))
    assert headers["Content-Type"] == "application/octet-stream"
    with urllib.request.urlopen(f"http://{daemon.http}/v1/tensors/{name}.npy") as r:
        assert np.array_equal(np.load(io.BytesIO(r.read())), arr)
    for rng, lo, hi in (("bytes=0-99", 0, 99), ("bytes=100-", 100, len(expected) - 1),
                        ("bytes=-50", len(expected) - 50, len(expected) - 1),
                        ("bytes=120-5000", 120, 5000),
                        ("bytes=8000-99999", 8000, len(expected) - 1)):
        status, headers, body = http(daemon, f"/v1/tensors/{name}.npy", {"Range": rng})
        assert status == 206, rng
        assert body == expected[lo:hi + 1], rng
        assert headers["Content-Range"] == f"bytes {lo}-{hi}/{len(expected)}"
    status, headers, _ = http(daemon, f"/v1/tensors/{name}.npy",
                              {"Range": f"bytes={len(expected)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(expected)}"
    assert http(daemon, "/v1/tensors/nope.npy")[0] == 404
    status, _, body = http(daemon, "/v1/tensors")
    assert status == 200 and name.encode() in body
    row = next(t for t in json.loads(body)["tensors"] if t["name"] == name)
    status, _, body = http(daemon, f"/v1/tensors/{name}")
    assert status == 200 and json.loads(body) == row
    assert (row["shape"], row["dtype"], row["nbytes"]) == ([300, 7], "<f4", arr.nbytes)
    assert http(daemon, "/v1/tensors/nope")[0] == 404
    r = subprocess.run(["curl", "-sf", "-o", "-", f"http://{daemon.http}/v1/tensors/{name}.npy"],
                       capture_output=True, timeout=30)
    assert r.returncode == 0 and r.stdout == expected


def test_sigterm_during_1_gib_fetch_completes_it_and_exits_0(make_daemon):
    d = make_daemon("--drain-timeout", "60")
    arr = np.arange(1 << 28, dtype=np.uint32)  # 1 GiB
    with d.client() as c:
        c.put(arr, name="big")
    del arr
    started = threading.Event()
    result = {}

    def fetch():
        with d.client() as c:
            def progress(done, total):
                if done > total // 8:
                    started.set()
                time.sleep(0.002)  # keep the fetch in flight for a few seconds
            got = c.fetch("big", progress=progress)
            result["ok"] = got.shape == (1 << 28,) and bool(
                (got[:: 1 << 16] == np.arange(0, 1 << 28, 1 << 16, dtype=np.uint32)).all()
                and got[-1] == (1 << 28) - 1)

    t = threading.Thread(target=fetch)
    t.start()
    assert started.wait(60)
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.time() + 5
    while time.time() < deadline and http(d, "/readyz")[0] != 503:
        time.sleep(0.02)
    status, _, body = http(d, "/readyz")
    assert status == 503 and b"draining" in body
    assert http(d, "/healthz")[0] == 200
    assert health(d.target) == "NOT_SERVING"
    with d.client() as c:
        with pytest.raises(npystream.UnavailableError) as err:
            c.stat("big")
        assert "draining" in str(err.value)
    t.join(120)
    assert result.get("ok") is True
    assert d.proc.wait(60) == 0
    assert any("stopped clean=true" in line for line in d.log)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def test_tls(make_daemon, certs):
    d = make_daemon("--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"])
    arr = np.arange(50, dtype=np.int32)
    with npystream.Client(d.target, root_certificates=read(certs["ca.pem"])) as c:
        c.put(arr, name="secure")
        assert np.array_equal(c.fetch("secure"), arr)
    with npystream.Client(d.target, timeout=5) as plain:
        with pytest.raises(npystream.UnavailableError):
            plain.list()
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    status, _, body = http(d, "/v1/tensors/secure.npy", context=ctx, scheme="https")
    assert status == 200 and body == save_bytes(arr)


def test_mutual_tls(make_daemon, certs):
    d = make_daemon("--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
                    "--tls-client-ca", certs["ca.pem"])
    roots = read(certs["ca.pem"])
    with npystream.Client(d.target, root_certificates=roots, timeout=5) as anonymous:
        with pytest.raises(npystream.UnavailableError):
            anonymous.list()
    with npystream.Client(d.target, root_certificates=roots, private_key=read(certs["client.key"]),
                          certificate_chain=read(certs["client.pem"])) as c:
        c.put(np.ones(3), name="m")
        assert np.array_equal(c.fetch("m"), np.ones(3))
    ctx = ssl.create_default_context(cafile=certs["ca.pem"])
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        urllib.request.urlopen(f"https://{d.http}/healthz", context=ctx, timeout=10).read()
    ctx.load_cert_chain(certs["client.pem"], certs["client.key"])
    assert http(d, "/healthz", context=ctx, scheme="https")[0] == 200


def test_token_is_required_on_every_protected_call(make_daemon, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    d = make_daemon("--auth-token-file", str(token_file), "--model-repository", MODELS)
    x = np.zeros((1, 1, 28, 28), np.float32)
    with d.client(token="s3cret-token") as good:
        info = good.put(np.arange(4), name="t1")
        calls = {
            "put": lambda c: c.put(np.arange(4)),
            "fetch": lambda c: c.fetch("t1"),
            "fetch_to": lambda c: c.fetch_to("t1", io.BytesIO()),
            "stat": lambda c: c.stat("t1"),
            "list": lambda c: c.list(),
            "release": lambda c: c.release("nope"),
            "list_models": lambda c: c.list_models(),
            "reload": lambda c: c.reload(),
            "infer": lambda c: c.infer("demo", {"x": x}),
            "subscribe": lambda c: next(iter(c.subscribe("demo", ["conv1"]))),
        }
        for token in (None, "wrong-token", "s3cret-token "):
            env_token = os.environ.pop("NPYSTREAM_TOKEN", None)
            with d.client(token=token) as bad:
                for name, call in calls.items():
                    with pytest.raises(npystream.UnauthenticatedError):
                        call(bad)
            if env_token is not None:
                os.environ["NPYSTREAM_TOKEN"] = env_token
        for name, call in calls.items():
            if name not in ("subscribe", "release"):
                call(good)
        assert np.array_equal(good.fetch(info.handle), np.arange(4))
    assert http(d, "/v1/tensors")[0] == 401
    assert http(d, "/v1/tensors/t1.npy")[0] == 401
    assert http(d, "/v1/tensors", {"Authorization": "Bearer wrong"})[0] == 401
    assert http(d, "/v1/tensors/t1.npy", {"Authorization": "Bearer s3cret-token"})[0] == 200
    for path in ("/metrics", "/healthz", "/readyz"):
        assert http(d, path)[0] == 200
    assert health(d.target) == "SERVING"
    assert metrics(d)['npystream_rpc_requests_total{code="UNAUTHENTICATED",method="Fetch"}'] >= 3


def test_limits_each_return_their_status_and_the_daemon_keeps_serving(make_daemon):
    d = make_daemon("--max-put-bytes", "64MiB", "--max-ndim", "4", "--max-header-bytes", "256",
                    "--idle-timeout", "1", "--max-concurrent-streams", "8")
    with d.client() as c:
        c.put(np.zeros(1000), name="keep")
        with pytest.raises(npystream.ResourceExhaustedError) as err:
            c.put(np.zeros((64 << 20) + 1, np.uint8))
        assert "--max-put-bytes" in str(err.value)
        with pytest.raises(npystream.InvalidArgumentError) as err:
            c.put(np.zeros((1, 1, 1, 1, 1)))
        assert "ndim" in str(err.value)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.zeros(3), version=(2, 0))
        raw = bytearray(buf.getvalue())
        big_header = np.lib.format._wrap_header(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }" + " " * 400, (1, 0))
        channel = grpc.insecure_channel(d.target)
        put = channel.stream_unary("/npystream.v1.Tensors/Put", request_serializer=None,
                                   response_deserializer=pb.TensorInfo.FromString)
        with pytest.raises(grpc.RpcError) as rpc_err:
            put(iter([pb.PutRequest(header=pb.PutHeader()).SerializeToString(),
                      _wire.put_data(big_header + bytes(24))]))
        assert rpc_err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "exceeds the limit of 256" in rpc_err.value.details()

        # A Put that stalls after its header is cancelled by the idle timeout.
        def stalled():
            yield pb.PutRequest(header=pb.PutHeader(name="stall")).SerializeToString()
            yield _wire.put_data(bytes(raw[:60]))
            time.sleep(4)

        start = time.monotonic()
        with pytest.raises(grpc.RpcError) as rpc_err:
            put(stalled(), timeout=30)
        assert rpc_err.value.code() == grpc.StatusCode.CANCELLED
        assert time.monotonic() - start < 3.9
        channel.close()

        # Per-call deadlines are honoured. gRPC keeps deadlines in whole
        # milliseconds, rounded up, so a 1 us timeout gives the call up to
        # ~1 ms: the tensor is large enough (tens of ms over TCP) that no
        # fetch of it fits (an 800 KB one once did in CI).
        c.put(np.zeros(4 << 20), name="deadline")
        with npystream.Client(d.target, timeout=1e-6) as hasty:
            with pytest.raises(npystream.Error) as err:
                hasty.fetch("deadline")
            assert err.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert np.array_equal(c.fetch("keep"), np.zeros(1000))
        assert {t.handle for t in c.list()} == {"keep", "deadline"}
    assert d.alive()


def test_max_concurrent_streams_queues_calls_on_one_connection(make_daemon, monkeypatch):
    d = make_daemon("--max-concurrent-streams", "1")
    # Fetch and Stat must share one connection: the grpcio path for both (the
    # native fetch path has a channel of its own).
    monkeypatch.setenv("NPYSTREAM_NATIVE", "0")
    with d.client() as c:
        c.put(np.zeros(16 << 20, np.float32), name="slow")  # 64 MiB
        started = threading.Event()
        done = {}

        def slow_fetch():
            def progress(n, total):
                started.set()
                time.sleep(0.02)  # ~64 chunks: keeps the stream open ~1.3 s
            c.fetch("slow", progress=progress)
            done["fetch"] = time.monotonic()

        t = threading.Thread(target=slow_fetch)
        t.start()
        assert started.wait(30)
        # Another connection (its own subchannel pool) is not limited by this one.
        other = grpc.insecure_channel(d.target, options=[("grpc.use_local_subchannel_pool", 1)])
        stat = other.unary_unary("/npystream.v1.Tensors/Stat",
                                 request_serializer=pb.TensorRef.SerializeToString,
                                 response_deserializer=pb.TensorInfo.FromString)
        s = time.monotonic()
        assert stat(pb.TensorRef(handle="slow"), timeout=10).handle == "slow"
        assert time.monotonic() - s < 0.5
        other.close()
        # Same connection: the call queues until the server has finished the
        # fetch's stream (once the slow reader has drained all but the 16 MiB
        # window, ~0.9 s from here).
        s = time.monotonic()
        c.stat("slow")
        queued = time.monotonic() - s
        t.join(60)
    assert "fetch" in done
    assert queued > 0.4, queued


def test_json_logs_keep_messages_with_spaces_whole_and_values_typed(make_daemon):
    d = make_daemon("--log-format", "json", "--store-budget", "1KiB")
    with d.client() as c:
        with pytest.raises(npystream.ResourceExhaustedError) as refused:
            c.put(np.zeros(1024, np.float32))
    assert d.stop() == 0
    records = assert_json_log(d.log)
    failed = [r for r in records if r["event"] == "rpc" and r["method"] == "Put"]
    assert len(failed) == 1, records
    rpc = failed[0]
    assert rpc["level"] == "WARNING"
    assert rpc["code"] == "RESOURCE_EXHAUSTED"
    assert " " in rpc["error"] and rpc["error"] in str(refused.value)
    assert isinstance(rpc["bytes"], int) and isinstance(rpc["ms"], float)
    listening = next(r for r in records if r["event"] == "listening")
    assert listening["budget"] == 1024 and listening["models"] == 0
    assert next(r for r in records if r["event"] == "stopped")["clean"] is True
