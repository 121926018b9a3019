"""The plain fetch beside each unix:// listener (P.fetch, proto/wire/socket_fetch.h):
the Python client's fetch over a Unix socket goes through it; a second client
written here from the spec checks the bytes, the error codes and the
connection rules."""
import io
import os
import shutil
import socket
import stat
import struct
import tempfile
import time

import numpy as np
import pytest

import npystream
from conftest import metrics
from npystream.v1 import tensors_pb2 as pb
from npy_ref import DTYPES, SHAPES, random_array, same_bits, save_bytes

OK, INVALID_ARGUMENT, NOT_FOUND, RESOURCE_EXHAUSTED, UNAUTHENTICATED = 0, 3, 5, 8, 16


class SpecClient:
    """The wire format as proto/wire/socket_fetch.h writes it, nothing else."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(path)

    def send(self, handle, authorization=b"", magic=b"NPF1", handle_len=None):
        handle = handle.encode() if isinstance(handle, str) else handle
        length = len(handle) if handle_len is None else handle_len
        self.sock.sendall(magic + struct.pack("<II", len(authorization), length)
                          + authorization + handle)

    def exact(self, n):
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            r = self.sock.recv_into(view[got:], n - got)
            if r == 0:
                raise EOFError(f"closed after {got} of {n} bytes")
            got += r
        return bytes(buf)

    def reply(self):
        """(code, message) for an error; (0, (TensorInfo, .npy bytes)) for OK."""
        magic, code, length = struct.unpack("<4sII", self.exact(12))
        assert magic == b"NPF1"
        body = self.exact(length)
        if code:
            return code, body.decode()
        info = pb.TensorInfo.FromString(body)
        return OK, (info, self.exact(info.npy_bytes))

    def fetch(self, handle, authorization=b""):
        self.send(handle, authorization)
        return self.reply()

    def closed(self):
        """True when the daemon hung up (after any bytes still queued); a reset
        (it closed with our unread request bytes) is a hang-up too."""
        try:
            while self.sock.recv(1 << 20):
                pass
            return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


@pytest.fixture
def unix_daemon(make_daemon, tmp_path):
    sock = tmp_path / "npystream.sock"
    d = make_daemon("--listen", f"unix://{sock}", "--idle-timeout", "2")
    d.socket = f"unix://{sock}"
    d.plain = f"{sock}.fetch"
    return d


def calls(d, method, code="OK"):
    return metrics(d).get(f'npystream_rpc_requests_total{{code="{code}",method="{method}"}}', 0)


def test_the_plain_socket_sits_beside_the_unix_listener(unix_daemon):
    grpc_socket = os.stat(unix_daemon.socket[len("unix://"):])
    plain = os.stat(unix_daemon.plain)
    assert stat.S_ISSOCK(plain.st_mode)
    assert stat.S_IMODE(plain.st_mode) == stat.S_IMODE(grpc_socket.st_mode)  # same access
    assert sorted(os.listdir(os.path.dirname(unix_daemon.plain))) == [
        "npystream.sock", "npystream.sock.fetch"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_fetched_over_the_plain_socket(unix_daemon, dtype):
    with npystream.Client(unix_daemon.socket, shm=False) as c:
        for i, shape in enumerate(SHAPES):
            arr = random_array(dtype, shape, seed=i)
            info = c.put(arr, name=f"t{i}")
            assert same_bits(c.fetch(info.handle), np.load(io.BytesIO(save_bytes(arr))))
            out = np.empty_like(arr)
            assert c.fetch(info.handle, out=out) is out and same_bits(out, arr)
    # Fetched through the plain socket, not the gRPC stream.
    assert calls(unix_daemon, "PlainFetch") == 2 * len(SHAPES)
    assert calls(unix_daemon, "Fetch") == 0


def test_spec_client_gets_the_files_bytes_and_reuses_its_connection(unix_daemon):
    arrays = [np.arange(12.0).reshape(3, 4), np.asfortranarray(np.eye(3, dtype=np.int8)),
              np.zeros((0, 5), np.float32), np.random.default_rng(0).random(3_000_000)]
    with unix_daemon.client() as c:
        for i, arr in enumerate(arrays):
            c.put(arr, name=f"a{i}")
    spec = SpecClient(unix_daemon.plain)
    try:
        for i, arr in enumerate(arrays):  # one connection, request after request
            code, (info, npy) = spec.fetch(f"a{i}")
            # What np.save writes (a Fortran-order array is stored in C order).
            assert code == OK and npy == save_bytes(np.ascontiguousarray(arr))
            assert info.handle == f"a{i}" and info.npy_bytes == len(npy)
            assert list(info.shape) == list(arr.shape)
        code, message = spec.fetch("missing")
        assert code == NOT_FOUND and "missing" in message
        code, (_, npy) = spec.fetch("a0")  # an error leaves the connection usable
        assert npy == save_bytes(arrays[0])
    finally:
        spec.close()


@pytest.mark.parametrize("request_bytes, defect", [
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 'does not start with "NPF1"'),
    (b"NPF1" + struct.pack("<II", 0, 0), "no handle"),
    (b"NPF1" + struct.pack("<II", 0, 5000) + b"x" * 5000, "handle of 5000 bytes"),
    (b"NPF1" + struct.pack("<II", 1 << 31, 1) + b"x", "authorization of 2147483648 bytes"),
], ids=["http2-preface", "no-handle", "long-handle", "long-authorization"])
def test_malformed_requests_get_invalid_argument_then_a_hang_up(unix_daemon, request_bytes,
                                                                defect):
    arr = np.arange(1000, dtype=np.int32)
    with unix_daemon.client() as c:
        c.put(arr, name="kept")
    spec = SpecClient(unix_daemon.plain)
    try:
        spec.sock.sendall(request_bytes)
        code, message = spec.reply()
        assert code == INVALID_ARGUMENT and defect in message
        assert spec.closed()
    finally:
        spec.close()
    with unix_daemon.client() as c:  # the daemon and the tensor are fine
        assert np.array_equal(c.fetch("kept"), arr)
    assert unix_daemon.alive()
    assert calls(unix_daemon, "PlainFetch", "INVALID_ARGUMENT") == 1  # counted


def test_a_request_cut_short_is_dropped_quietly(unix_daemon):
    spec = SpecClient(unix_daemon.plain)
    spec.sock.sendall(b"NPF1" + struct.pack("<II", 0, 100) + b"half")
    spec.sock.shutdown(socket.SHUT_WR)
    assert spec.closed()
    spec.close()
    assert unix_daemon.alive()


def test_token_is_checked_on_the_plain_socket(make_daemon, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    sock = tmp_path / "auth.sock"
    d = make_daemon("--auth-token-file", str(token), "--listen", f"unix://{sock}")
    arr = np.arange(50, dtype=np.uint16)
    with npystream.Client(f"unix://{sock}", token="s3cret", shm=False) as c:
        c.put(arr, name="secret")
        assert np.array_equal(c.fetch("secret"), arr)
    assert calls(d, "PlainFetch") == 1
    spec = SpecClient(f"{sock}.fetch")
    try:
        code, message = spec.fetch("secret")
        assert code == UNAUTHENTICATED and "missing" in message
        code, message = spec.fetch("secret", authorization=b"Bearer wrong")
        assert code == UNAUTHENTICATED and "wrong bearer token" in message
        code, (_, npy) = spec.fetch("secret", authorization=b"Bearer s3cret")
        assert code == OK and npy == save_bytes(arr)
    finally:
        spec.close()
    with npystream.Client(f"unix://{sock}", token="wrong", shm=False) as c:
        with pytest.raises(npystream.UnauthenticatedError):
            c.fetch("secret")


def test_a_client_that_stops_reading_is_cut_off_after_the_idle_timeout(unix_daemon):
    arr = np.random.default_rng(1).random(16 << 20)  # 128 MiB: far more than a socket buffers
    with unix_daemon.client() as c:
        c.put(arr, name="big")
    stalled = SpecClient(unix_daemon.plain)
    stalled.send("big")
    time.sleep(3.5)  # --idle-timeout 2
    deadline = time.monotonic() + 20
    while calls(unix_daemon, "PlainFetch", "UNAVAILABLE") == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert calls(unix_daemon, "PlainFetch", "UNAVAILABLE") == 1
    assert stalled.closed()  # what was queued, then the end: a short stream
    stalled.close()
    with npystream.Client(unix_daemon.socket, shm=False) as c:  # the tensor is intact
        assert np.array_equal(c.fetch("big"), arr)


def test_without_the_plain_socket_the_client_streams_over_grpc(unix_daemon):
    arr = np.arange(4096, dtype=np.float32)
    with unix_daemon.client() as c:
        c.put(arr, name="s")
    os.rename(unix_daemon.plain, unix_daemon.plain + ".gone")  # an older daemon
    try:
        with npystream.Client(unix_daemon.socket, shm=False) as c:
            assert np.array_equal(c.fetch("s"), arr)
            assert np.array_equal(c.fetch("s"), arr)
        assert calls(unix_daemon, "Fetch") == 2 and calls(unix_daemon, "PlainFetch") == 0
    finally:
        os.rename(unix_daemon.plain + ".gone", unix_daemon.plain)


def test_a_kept_connection_survives_nothing_but_is_replaced_after_a_daemon_restart(
        make_daemon, tmp_path):
    sock = f"unix://{tmp_path}/restart.sock"
    first = make_daemon("--listen", sock)
    arr = np.arange(300, dtype=np.int64)
    with npystream.Client(sock, shm=False) as c:
        c.put(arr, name="x")
        assert np.array_equal(c.fetch("x"), arr)  # its connection is now kept
        first.stop()
        second = make_daemon("--listen", sock)  # replaces the stale socket files
        with second.client() as other:  # over TCP
            other.put(arr * 3, name="x")
        assert np.array_equal(c.fetch("x"), arr * 3)  # a new connection, no error
    assert calls(second, "PlainFetch") == 1


def test_shutdown_with_an_open_plain_connection_is_prompt(make_daemon, tmp_path):
    sock = tmp_path / "stop.sock"
    d = make_daemon("--listen", f"unix://{sock}")
    idle = SpecClient(f"{sock}.fetch")  # connected, never sends a request
    start = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - start < 10
    assert idle.closed()
    idle.close()
    assert not os.path.exists(f"{sock}.fetch")


def test_closing_the_client_closes_its_plain_connections(unix_daemon):
    def daemon_fds():
        return len(os.listdir(f"/proc/{unix_daemon.proc.pid}/fd"))

    def settle(want):
        deadline = time.monotonic() + 10
        while daemon_fds() != want and time.monotonic() < deadline:
            time.sleep(0.05)
        return daemon_fds()

    before = daemon_fds()
    c = npystream.Client(unix_daemon.socket, shm=False)
    c.put(np.arange(10), name="c")
    c.fetch("c")
    assert daemon_fds() > before  # its connections: gRPC's and the plain one
    c.close()
    assert settle(before) == before
    assert calls(unix_daemon, "PlainFetch") == 1


def test_a_socket_path_with_no_room_for_dot_fetch_still_serves_over_grpc(make_daemon):
    # sun_path holds 107 bytes: a 104-byte path fits, the same path + ".fetch" does not.
    folder = tempfile.mkdtemp(prefix="npystream-long-")
    try:
        path = os.path.join(folder, "s" * (104 - len(folder) - 1))
        assert len(path) == 104
        d = make_daemon("--listen", f"unix://{path}")
        assert any("plain_fetch_unavailable" in line and ".fetch" in line for line in d.log)
        arr = np.arange(777, dtype=np.int16)
        with npystream.Client(f"unix://{path}", shm=False) as c:
            c.put(arr, name="long")
            assert np.array_equal(c.fetch("long"), arr)
        assert calls(d, "Fetch") == 1 and calls(d, "PlainFetch") == 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
