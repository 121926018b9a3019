"""Compression on every transport, each decoded by an independent reader and
compared with np.save's bytes: gzip .npy downloads (a chunked body parsed
here), WebSocket permessage-deflate (RFC 7692 frames inflated here, against
the gRPC Subscribe values) and gRPC grpc-encoding: gzip both ways (bytes
counted on a TCP relay between the client and the daemon)."""
import gzip
import socket
import threading
import time
import urllib.parse

import numpy as np
import pytest

from conftest import http
from npy_ref import save_bytes
from ws_rfc import WebSocket


def zero_heavy(shape, seed):
    """ReLU-like float32 values: about three quarters zeros."""
    a = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    return np.maximum(a - 0.7, 0)


def raw_get(address, path, headers):
    """(status line, {header: value}, body bytes as sent) of one GET with
    Connection: close, read to the end of the stream."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as s:
        lines = [f"GET {path} HTTP/1.1", f"Host: {address}", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while True:
            piece = s.recv(1 << 20)
            if not piece:
                break
            data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status, *fields = head.decode().split("\r\n")
    return status, {k.lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}, body


def dechunk(body):
    """The chunks of a Transfer-Encoding: chunked body (RFC 9112 7.1)."""
    chunks = []
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            assert body == b"\r\n", "a trailer section or bytes after the last chunk"
            return chunks
        chunks.append(body[:size])
        assert body[size:size + 2] == b"\r\n"
        body = body[size + 2:]


def test_npy_downloads_are_gzip_streamed_when_accepted(daemon, client):
    a = zero_heavy((8, 512, 512), seed=1)  # 8 MiB: eight 1 MiB body pieces
    handle = client.put(a).handle
    want = save_bytes(a)
    path = f"/v1/tensors/{handle}.npy"
    status, headers, body = raw_get(daemon.http, path, {"Accept-Encoding": "br, gzip;q=0.8"})
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-encoding"] == "gzip" and "content-length" not in headers
    assert headers["transfer-encoding"] == "chunked" and headers["vary"] == "Accept-Encoding"
    chunks = dechunk(body)
    assert len(chunks) >= 8, "the body is compressed piece by piece, not buffered whole"
    packed = b"".join(chunks)
    assert gzip.decompress(packed) == want
    assert len(packed) < len(want) / 2
    # A view is compressed the same way.
    query = urllib.parse.urlencode({"index": "1:3, ::-2", "dtype": "<f2"})
    _, headers, body = raw_get(daemon.http, f"{path}?{query}", {"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    view = np.ascontiguousarray(a[1:3, ::-2]).astype("<f2")
    assert gzip.decompress(b"".join(dechunk(body))) == save_bytes(view)
    # Not asked for, refused by q=0, or a Range: the identity bytes, sized.
    for extra in [{}, {"Accept-Encoding": "gzip;q=0, identity"}]:
        status, headers, body = http(daemon, path, extra)
        assert status == 200 and body == want and "Content-Encoding" not in headers
        assert int(headers["Content-Length"]) == len(want)
    status, headers, body = http(daemon, path, {"Accept-Encoding": "gzip", "Range": "bytes=100-"})
    assert status == 206 and body == want[100:] and "Content-Encoding" not in headers


def test_websocket_frames_are_deflated_when_offered(served):
    import json
    x = np.zeros((2, 1, 28, 28), dtype=np.float32)  # constant maps per channel
    query = urllib.parse.urlencode({"layers": "conv1,fc", "max_hz": 0,
                                    "view.conv1.index": "0", "view.conv1.dtype": "<f2"})
    ws = WebSocket(served.http, f"/v1/models/demo/subscribe?{query}", deflate=True)
    assert ws.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    views = {"conv1": dict(index="0", dtype="<f2")}
    try:
        with served.client() as c, c.subscribe("demo", ["conv1", "fc"], views=views) as sub:
            time.sleep(0.1)
            c.infer("demo", {"x": x})
            want = {}
            for layer, arr in sub:
                want[layer] = arr
                if len(want) == 2:
                    break
            got, raw_bytes = {}, 0
            for _ in range(2):
                op, text = ws.recv()
                assert op == 1
                op, data = ws.recv()
                assert op == 2
                meta = json.loads(text)
                got[meta["layer"]] = data
                raw_bytes += len(text) + len(data)
    finally:
        ws.close()
    for layer, arr in want.items():
        assert got[layer] == save_bytes(arr), layer
    assert ws.wire_bytes < raw_bytes / 4, (ws.wire_bytes, raw_bytes)


class Relay:
    """A TCP relay to `target` that counts the bytes each way."""

    def __init__(self, target):
        host, port = target.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = self.received = 0  # to the daemon, from the daemon
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                a, _ = self.listener.accept()
            except OSError:
                return
            b = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(a, b, "sent"), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a, "received"), daemon=True).start()

    def _pump(self, src, dst, counter):
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                with self.lock:
                    setattr(self, counter, getattr(self, counter) + len(data))
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.mark.parametrize("flags", [[], ["--grpc-compression", "gzip"]])
def test_grpc_gzip_requests_and_replies(make_daemon, flags):
    import npystream
    d = make_daemon(*flags)
    relay = Relay(d.target)
    a = zero_heavy((4, 512, 512), seed=2)  # 4 MiB
    want = save_bytes(a)
    try:
        with npystream.Client(relay.address, compression="gzip") as c:
            info = c.put(a)
            assert relay.sent < len(want) / 2, "the Put went gzip-compressed"
            before = relay.received
            assert c.fetch(info.handle).tobytes() == a.tobytes()
            sub = c.fetch(info.handle, index="1, 10:20", dtype="<f2")
            assert sub.tobytes() == a[1, 10:20].astype("<f2").tobytes()
            fetched = relay.received - before
        if flags:
            assert fetched < len(want) / 2, "replies gzip-compressed"
        else:
            assert fetched > len(want), "replies as they are without --grpc-compression"
        # An uncompressing client reads the same tensor from the gzip daemon.
        with d.client() as plain:
            assert plain.fetch(info.handle).tobytes() == a.tobytes()
    finally:
        relay.close()
    with pytest.raises(npystream.InvalidArgumentError, match="compression"):
        npystream.Client(d.target, compression="br")
