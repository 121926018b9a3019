"""Replicas as one service, the routing half (#28): three daemons a, b, c on
Unix sockets with --peer-address mapping each id to its socket. A client
that first reaches b sends calls on a's handles ("...~a") straight to a
(Topology tells it how), and falls back to b when the owner is gone.
Daemons relaying for clients that cannot route is not built yet: b answers
FAILED_PRECONDITION naming the owner, as before."""
import asyncio
import io
import time

import grpc
import numpy as np
import pytest

import npystream
from npystream import aio
from npystream.v1 import tensors_pb2 as pb
from npystream.v1 import tensors_pb2_grpc as pb_grpc
from conftest import metrics
from npy_ref import save_bytes

FETCHES_OK = 'npystream_rpc_requests_total{code="OK",method="Fetch"}'


@pytest.fixture
def replicas(make_daemon, tmp_path):
    template = f"unix://{tmp_path}/{{replica}}.sock"
    daemons = {r: make_daemon("--replica-id", r, "--peer-address", template,
                              "--listen", template.replace("{replica}", r))
               for r in "abc"}
    return template, daemons


def topology(target):
    with grpc.insecure_channel(target) as channel:
        return pb_grpc.TensorsStub(channel).Topology(pb.TopologyRequest(), timeout=10)


def test_topology_names_the_replica_and_the_template(replicas, make_daemon):
    template, daemons = replicas
    answer = topology(template.replace("{replica}", "b"))
    assert (answer.replica, answer.peer_address) == ("b", template)
    alone = make_daemon("--replica-id", "solo")
    answer = topology(alone.target)
    assert (answer.replica, answer.peer_address) == ("solo", "")


def test_calls_on_a_handle_go_to_its_owner(replicas, tmp_path):
    template, daemons = replicas
    at = {r: template.replace("{replica}", r) for r in "abc"}
    a = np.random.default_rng(7).standard_normal((64, 100)).astype(np.float32)
    with npystream.Client(at["a"]) as owner:
        handle = owner.put(a, ttl=600).handle
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
        with pytest.raises(npystream.FailedPreconditionError, match="'a'"):
            plain.fetch(handle)
    with npystream.Client(at["b"]) as c:
        assert c.release(handle) is True
    with npystream.Client(at["a"]) as owner:
        with pytest.raises(npystream.NotFoundError):
            owner.stat(handle)


def test_an_owner_that_is_gone_falls_back_to_the_first_target(replicas):
    template, daemons = replicas
    at = {r: template.replace("{replica}", r) for r in "abc"}
    with npystream.Client(at["c"]) as owner:
        handle = owner.put(np.arange(10.0), ttl=600).handle
    with npystream.Client(at["b"]) as c:
        assert c.stat(handle).nbytes == 80
        daemons["c"].proc.kill()
        daemons["c"].proc.wait(30)
        start = time.monotonic()
        # c cannot be reached: b answers, which names the owner (no relay yet).
        with pytest.raises(npystream.FailedPreconditionError, match="'c'"):
            c.fetch(handle)
        assert time.monotonic() - start < 3
        assert c._routes.open_count == 0  # the dead replica's connection was dropped
