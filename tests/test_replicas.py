"""Replicas as one service (#28): three daemons a, b, c on Unix sockets with
--peer-address mapping each id to its socket. A client that first reaches b
sends calls on a's handles ("...~a") straight to a (Topology tells it how),
and falls back to b when the owner is gone; b relays calls on a's handles
for clients that do not route (route=False, raw gRPC, HTTP)."""
import asyncio
import io
import json
import os
import socket
import time

import grpc
import numpy as np
import pytest
import torch

import npystream
from npystream import aio
from npystream.v1 import tensors_pb2 as pb
from npystream.v1 import tensors_pb2_grpc as pb_grpc
from conftest import BUILD, http, metric_sum, metrics
from npy_ref import save_bytes

FETCHES_OK = 'npystream_rpc_requests_total{code="OK",method="Fetch"}'


@pytest.fixture
def start_replicas(make_daemon, tmp_path):
    """start(**{replica: extra flags}) starts a, b and c; returns the
    template, {replica: Daemon} and {replica: its target}."""
    template = f"unix://{tmp_path}/{{replica}}.sock"

    def start(**extra):
        at = {r: template.replace("{replica}", r) for r in "abc"}
        daemons = {r: make_daemon("--replica-id", r, "--peer-address", template,
                                  "--listen", at[r], *extra.get(r, ()))
                   for r in "abc"}
        return template, daemons, at

    return start


@pytest.fixture
def replicas(start_replicas):
    return start_replicas()


def put_on(target, array, **kwargs):
    """The handle of `array` put on the daemon at `target`."""
    with npystream.Client(target) as c:
        return c.put(array, **kwargs).handle


def topology(target):
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.TensorsStub(channel).Topology(pb.TopologyRequest(), timeout=10)


def test_topology_names_the_replica_and_the_template(replicas, make_daemon):
    template, daemons, _ = replicas
    answer = topology(template.replace("{replica}", "b"))
    assert (answer.replica, answer.peer_address) == ("b", template)
    alone = make_daemon("--replica-id", "solo")
    answer = topology(alone.target)
    assert (answer.replica, answer.peer_address) == ("solo", "")


def test_calls_on_a_handle_go_to_its_owner(replicas, tmp_path):
    template, daemons, at = replicas
    a = np.random.default_rng(7).standard_normal((64, 100)).astype(np.float32)
    handle = put_on(at["a"], a, ttl=600)
    assert handle.endswith("~a")
    before = {r: metrics(d).get(FETCHES_OK, 0) for r, d in daemons.items()}
    with npystream.Client(at["b"], shm=False) as c:
        assert c.fetch(handle).tobytes() == a.tobytes()
        part = c.fetch(handle, index=np.s_[3, ::-7], dtype=np.float16)
        assert part.tobytes() == np.ascontiguousarray(a[3, ::-7]).astype(np.float16).tobytes()
        buf = io.BytesIO()
        c.fetch_to(handle, buf)
        assert buf.getvalue() == save_bytes(a)
        assert c.stat(handle).shape == (64, 100)
        assert c._routes.open_count == 1  # one connection, to a
        # put and infer stay on the first target.
        assert c.put(np.arange(3)).handle.endswith("~b")
    # The bytes came from a; b served no Fetch.
    after = {r: metrics(d).get(FETCHES_OK, 0) for r, d in daemons.items()}
    assert after["b"] == before["b"] and after["a"] >= before["a"] + 2

    async def through_aio():
        async with aio.Client(at["c"]) as c:
            got = await c.fetch(handle)
            info = await c.stat(handle)
            return got, info

    got, info = asyncio.run(through_aio())
    assert got.tobytes() == a.tobytes() and info.handle == handle

    with npystream.Client(at["b"], route=False) as plain:
        assert plain.fetch(handle).tobytes() == a.tobytes()  # relayed by b
    with npystream.Client(at["b"]) as c:
        assert c.release(handle) is True
    with npystream.Client(at["a"]) as owner:
        with pytest.raises(npystream.NotFoundError):
            owner.stat(handle)


def test_an_owner_that_is_gone_falls_back_to_the_first_target(replicas):
    template, daemons, at = replicas
    handle = put_on(at["c"], np.arange(10.0), ttl=600)
    with npystream.Client(at["b"]) as c:
        assert c.stat(handle).nbytes == 80
        daemons["c"].proc.kill()
        daemons["c"].proc.wait(30)
        start = time.monotonic()
        # c cannot be reached: b answers, relaying to c, which it cannot reach either.
        with pytest.raises(npystream.UnavailableError, match="replica 'c' .* unreachable"):
            c.fetch(handle)
        assert time.monotonic() - start < 3
        assert c._routes.open_count == 0  # the dead replica's connection was dropped


def forwarded(daemon, method, code="OK"):
    return metrics(daemon).get(
        f'npystream_forwarded_total{{code="{code}",method="{method}"}}', 0)


def rpc_error(call):
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_b_relays_calls_on_as_handles_for_clients_that_do_not_route(replicas):
    template, daemons, at = replicas
    a = np.random.default_rng(8).standard_normal((300, 1000)).astype(np.float32)  # 1.2 MB
    handle = put_on(at["a"], a, ttl=600)
    fetches_on_a = metrics(daemons["a"]).get(FETCHES_OK, 0)
    with npystream.Client(at["b"], route=False, shm=False) as c:
        assert c.fetch(handle).tobytes() == a.tobytes()
        part = c.fetch(handle, index=np.s_[::-3, 5:50], dtype=np.float16)
        assert part.tobytes() == np.ascontiguousarray(a[::-3, 5:50]).astype(np.float16).tobytes()
        buf = io.BytesIO()
        c.fetch_to(handle, buf)
        assert buf.getvalue() == save_bytes(a)
        info = c.stat(handle)
        assert (info.handle, info.shape, info.nbytes) == (handle, (300, 1000), a.nbytes)
    assert forwarded(daemons["b"], "Fetch") == 3 and forwarded(daemons["b"], "Stat") == 1
    assert metrics(daemons["a"]).get(FETCHES_OK, 0) == fetches_on_a + 3
    assert any("relayed_to=a" in line and "method=Fetch" in line for line in daemons["b"].log)

    request = pb.FetchRequest(handle=handle, chunk_bytes=65536)
    with grpc.insecure_channel(at["b"]) as via_b, grpc.insecure_channel(at["a"]) as to_a:
        b, owner = pb_grpc.TensorsStub(via_b), pb_grpc.TensorsStub(to_a)
        # The owner's messages pass on unchanged.
        relayed = [m.SerializeToString() for m in b.Fetch(request, timeout=30)]
        direct = [m.SerializeToString() for m in owner.Fetch(request, timeout=30)]
        assert len(relayed) > 10 and relayed == direct
        code, details = rpc_error(lambda: b.Map(pb.MapRequest(handle=handle), timeout=10))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert "mapping needs the owner's host" in details and "'a'" in details
        # A relayed call is never relayed again.
        hop = (("npystream-forwarded-by", "c"),)
        code, details = rpc_error(lambda: list(b.Fetch(request, metadata=hop, timeout=10)))
        assert code == grpc.StatusCode.FAILED_PRECONDITION
        assert all(f"'{r}'" in details for r in "abc"), details
        # The owner's own answers pass back too.
        code, details = rpc_error(lambda: list(b.Fetch(pb.FetchRequest(
            handle=handle, view=pb.TensorView(index="0,0,0")), timeout=10)))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert b.Release(pb.TensorRef(handle=handle), timeout=10).released
        code, _ = rpc_error(lambda: owner.Stat(pb.TensorRef(handle=handle), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND
        code, details = rpc_error(lambda: b.Stat(pb.TensorRef(handle=handle), timeout=10))
        assert code == grpc.StatusCode.NOT_FOUND and handle in details
    assert forwarded(daemons["b"], "Fetch", "INVALID_ARGUMENT") == 1
    assert forwarded(daemons["b"], "Stat", "NOT_FOUND") == 1
    assert forwarded(daemons["b"], "Release") == 1


def test_an_infer_on_c_reads_its_input_from_the_owner_a(start_replicas):
    models = os.path.join(BUILD, "models")
    _, daemons, at = start_replicas(
        c=("--model-repository", models, "--max-put-bytes", str(1 << 20)))
    x = np.random.default_rng(9).standard_normal((4, 1, 28, 28), dtype=np.float32)
    handle = put_on(at["a"], x, ttl=600)
    fetches_on_a = metrics(daemons["a"]).get(FETCHES_OK, 0)
    model = torch.jit.load(os.path.join(models, "demo", "model.pt"))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
        conv1 = model.conv1(torch.from_numpy(x)).numpy()
    # An infer goes to the first target, routing or not; c reads a's input.
    for route in (True, False):
        with npystream.Client(at["c"], route=route) as c:
            got = c.infer("demo", {"x": handle}, capture=["conv1"])
        assert np.array_equal(got["logits"], want) and np.array_equal(got["conv1"], conv1)
    assert forwarded(daemons["c"], "InferInput") == 2
    assert metrics(daemons["a"]).get(FETCHES_OK, 0) == fetches_on_a + 2
    assert any("relayed_to=a" in line and "method=Infer" in line for line in daemons["c"].log)
    with npystream.Client(at["a"]) as owner:
        assert owner.fetch(handle).tobytes() == x.tobytes()  # a's tensor stays a's, as it was

    with npystream.Client(at["c"], route=False) as c:
        big = put_on(at["a"], np.zeros((2, 1, 512, 512), np.float32))  # 2 MiB > 1 MiB
        with pytest.raises(npystream.ResourceExhaustedError, match="input 'x'.*--max-put-bytes"):
            c.infer("demo", {"x": big})
        gone = handle[:-2] + "x~a"
        with pytest.raises(npystream.NotFoundError, match=f"input 'x'.*{gone}"):
            c.infer("demo", {"x": gone})
        daemons["a"].proc.kill()
        daemons["a"].proc.wait(30)
        with pytest.raises(npystream.UnavailableError, match="input 'x'.*replica 'a' .*unreachable"):
            c.infer("demo", {"x": handle})
    assert forwarded(daemons["c"], "InferInput", "NOT_FOUND") == 1
    assert forwarded(daemons["c"], "InferInput", "UNAVAILABLE") == 1


def test_a_client_that_cancels_a_relayed_1_gib_fetch_frees_the_owners_pin(replicas):
    template, daemons, at = replicas
    handle = put_on(at["a"], np.ones(1 << 28, np.float32), ttl=600)  # 1 GiB
    with grpc.insecure_channel(at["b"]) as via_b:
        stream = pb_grpc.TensorsStub(via_b).Fetch(pb.FetchRequest(handle=handle), timeout=60)
        first = next(stream)
        assert first.info.nbytes == 1 << 30
        stream.cancel()
    with npystream.Client(at["a"]) as owner:
        assert owner.release(handle)
    # The owner's stream ended, and with it its pin: the gigabyte is freed.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        m = metrics(daemons["a"])
        if m.get("npystream_fetch_active") == 0 and metric_sum(daemons["a"],
                                                              "npystream_store_bytes") == 0:
            break
        time.sleep(0.05)
    m = metrics(daemons["a"])
    assert m.get("npystream_fetch_active") == 0, m
    assert metric_sum(daemons["a"], "npystream_store_bytes") == 0
    assert m.get('npystream_rpc_requests_total{code="CANCELLED",method="Fetch"}') == 1
    assert forwarded(daemons["b"], "Fetch", "CANCELLED") == 1


def test_a_relay_to_a_killed_replica_is_unavailable_naming_it(replicas):
    template, daemons, at = replicas
    handle = put_on(at["c"], np.arange(5.0))
    daemons["c"].proc.kill()
    daemons["c"].proc.wait(30)
    with npystream.Client(at["b"], route=False) as c:
        for call in (c.fetch, c.stat):
            start = time.monotonic()
            with pytest.raises(npystream.UnavailableError,
                               match=r"replica 'c' \(address unix://.*/c\.sock\) unreachable"):
                call(handle)
            assert time.monotonic() - start < 3
    assert forwarded(daemons["b"], "Fetch", "UNAVAILABLE") == 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_over_tcp_an_owner_that_never_answers_is_unavailable_within_the_connect_timeout(
        make_daemon):
    # Replica ids are ports here: the template maps each to 127.0.0.1:<id>.
    ports = [free_port(), free_port()]
    template = "127.0.0.1:{replica}"
    a, b = (make_daemon("--replica-id", str(p), "--peer-address", template,
                        "--listen", f"127.0.0.1:{p}", "--peer-connect-timeout", "1")
            for p in ports)
    x = np.random.default_rng(9).integers(0, 255, (3, 500, 700), np.uint8)
    with a.client() as owner:
        handle = owner.put(x).handle
    with b.client(route=False) as c:
        assert c.fetch(handle).tobytes() == x.tobytes()
    # A listener that never accepts, its queue full: connecting hangs.
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(0)
        fillers = []
        while len(fillers) < 8:  # fill the accept queue (its length depends on the kernel)
            try:
                fillers.append(socket.create_connection(hole.getsockname(), timeout=0.3))
            except TimeoutError:
                break
        lost = f"h~{hole.getsockname()[1]}"
        with b.client(route=False) as c:
            start = time.monotonic()
            with pytest.raises(npystream.UnavailableError, match=f"replica '{lost[2:]}'"):
                c.stat(lost)
            took = time.monotonic() - start
        for f in fillers:
            f.close()
    assert took < 2.5, took


def test_tokens_are_checked_where_a_call_arrives_and_passed_on(start_replicas, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret\n")
    _, daemons, at = start_replicas(**{r: ("--auth-token-file", str(token_file)) for r in "abc"})
    with npystream.Client(at["a"], token="s3cret") as owner:
        handle = owner.put(np.arange(6.0)).handle
    seen_on_a = metric_sum(daemons["a"], "npystream_rpc_requests_total")
    for token in ("", "wrong"):
        with npystream.Client(at["b"], token=token or None, route=False) as c:
            with pytest.raises(npystream.UnauthenticatedError):
                c.fetch(handle)
    # Refused on b: nothing reached a.
    assert metric_sum(daemons["a"], "npystream_rpc_requests_total") == seen_on_a
    with npystream.Client(at["b"], token="s3cret", route=False) as c:
        assert np.array_equal(c.fetch(handle), np.arange(6.0))
        assert c.stat(handle).nbytes == 48
    # The relay mark is no credential: a checks the token of a "relayed" call.
    with grpc.insecure_channel(at["a"]) as to_a:
        code, _ = rpc_error(lambda: pb_grpc.TensorsStub(to_a).Stat(
            pb.TensorRef(handle=handle), metadata=(("npystream-forwarded-by", "b"),), timeout=10))
    assert code == grpc.StatusCode.UNAUTHENTICATED


def test_http_downloads_of_as_handles_through_b_are_relayed(replicas):
    template, daemons, at = replicas
    a = np.random.default_rng(10).standard_normal((700, 900)).astype(np.float32)  # 2.5 MB
    handle = put_on(at["a"], a, ttl=600)
    b = daemons["b"]
    expected = save_bytes(a)
    status, headers, body = http(b, f"/v1/tensors/{handle}.npy")
    assert status == 200 and body == expected
    assert int(headers["Content-Length"]) == len(expected)
    for lo, hi in ((0, 9), (100, 200_000), (len(expected) - 5, len(expected) - 1),
                   (1_500_000, 2_400_000)):
        status, headers, body = http(b, f"/v1/tensors/{handle}.npy",
                                     {"Range": f"bytes={lo}-{hi}"})
        assert status == 206 and body == expected[lo:hi + 1], (lo, hi)
        assert headers["Content-Range"] == f"bytes {lo}-{hi}/{len(expected)}"
    status, _, _ = http(b, f"/v1/tensors/{handle}.npy", {"Range": f"bytes={len(expected)}-"})
    assert status == 416
    status, _, body = http(b, f"/v1/tensors/{handle}.npy?index=10:20,::-3&dtype=<f2")
    view = np.ascontiguousarray(a[10:20, ::-3]).astype("<f2")
    assert status == 200 and body == save_bytes(view)
    # The owner's refusals pass back with their status.
    status, _, body = http(b, f"/v1/tensors/{handle}.npy?index=0,0,0")
    assert status == 400 and b"index" in body
    status, _, body = http(b, f"/v1/tensors/{handle[:-5]}0000~a.npy")
    assert status == 404
    # A Range that ends before the file does stops the owner's stream there
    # (CANCELLED, unless the owner had sent it all already; counted once the
    # owner's call is done, just after the reply).
    def counts():
        n = {code: forwarded(b, "HttpNpy", code)
             for code in ("OK", "CANCELLED", "INVALID_ARGUMENT", "NOT_FOUND")}
        return n["OK"] + n["CANCELLED"], n["OK"] >= 3, n["INVALID_ARGUMENT"], n["NOT_FOUND"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and counts() != (7, True, 1, 1):
        time.sleep(0.05)
    assert counts() == (7, True, 1, 1)
    # GET /v1/tensors/{h}: the owner's JSON info, the same through b.
    status, _, body = http(b, f"/v1/tensors/{handle}")
    assert status == 200 and json.loads(body) == json.loads(http(daemons["a"],
                                                                 f"/v1/tensors/{handle}")[2])
    info = json.loads(body)
    assert (info["handle"], info["shape"], info["dtype"], info["nbytes"]) == (
        handle, [700, 900], "<f4", a.nbytes)
    assert http(b, f"/v1/tensors/{handle[:-5]}0000~a")[0] == 404
    assert forwarded(b, "HttpInfo") == 1 and forwarded(b, "HttpInfo", "NOT_FOUND") == 1
    daemons["c"].proc.kill()
    daemons["c"].proc.wait(30)
    for path in ("/v1/tensors/x1~c.npy", "/v1/tensors/x1~c"):
        status, _, body = http(b, path)
        assert status == 503 and b"replica 'c'" in body, path
