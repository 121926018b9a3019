"""Malformed input through the real API: every defect gets INVALID_ARGUMENT
(or the HTTP status) naming it, and nothing already stored changes."""
import io
import json
import socket
import struct
import time
import urllib.request

import grpc
import numpy as np
import pytest

from npy_ref import save_bytes
from conftest import put_raw

F4_3 = b"\0" * 12  # the payload of a float32 array of shape (3,)


def npy(header, payload=b"", version=(1, 0)):
    """A .npy with `header` as its dict text, padded the way numpy pads."""
    h = header.encode("latin1")
    h += b" " * ((64 - (10 + len(h) + 1) % 64) % 64) + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack("<H", len(h)) + h + payload


def f4_3(dict_text):
    return npy(dict_text, F4_3)


CASES = {
    "truncated_inside_header": (b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{'descr'",
                                "ended after 18 bytes, inside the .npy header"),
    "shape_product_overflows_int64": (
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }"),
        "shape overflows"),
    "ndim_1000": (npy("{'descr': '<f4', 'fortran_order': False, 'shape': (" + "1, " * 1000 + "), }"),
                  "ndim exceeds 32"),
    "header_of_1_mib": (b"\x93NUMPY\x02\x00" + struct.pack("<I", 1 << 20) + b"{" +
                        b" " * ((1 << 20) - 2) + b"\n",
                        "header of 1048588 bytes exceeds the limit of 65536 bytes"),
    "nul_in_dict": (f4_3("{'descr': '<f4',\x00 'fortran_order': False, 'shape': (3,), }"),
                    "expected a quoted string for key at offset 16"),
    "control_character_in_dict": (
        f4_3("{'descr': '<f4',\x07 'fortran_order': False, 'shape': (3,), }"),
        "expected a quoted string for key at offset 16"),
    "non_ascii_key": (f4_3("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'caf\xe9': 1, }"),
                      "unsupported character in key"),
    "python_expression_injection": (
        f4_3("{'descr': __import__('os').system('touch /tmp/npystream-pwned'), "
             "'fortran_order': False, 'shape': (3,), }"),
        "expected a quoted string for 'descr' value"),
    "descr_object": (npy("{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", b"\0" * 24),
                     "unsupported dtype descr '|O'"),
    "descr_void": (npy("{'descr': '|V8', 'fortran_order': False, 'shape': (3,), }", b"\0" * 24),
                   "unsupported dtype descr '|V8'"),
    "extra_key": (f4_3("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1, }"),
                  "unexpected key 'extra'"),
    "missing_key": (f4_3("{'descr': '<f4', 'shape': (3,), }"), "missing key 'fortran_order'"),
    "data_longer_than_shape": (
        npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", b"\0" * 16),
        "longer than its header declares: expected 12 bytes"),
    "wrong_magic": (b"\x93NUMPZ" + f4_3("{'descr': '<f4', 'fortran_order': False, "
                                        "'shape': (3,), }")[6:], "bad magic"),
}

REFERENCES = {
    "f4": np.arange(12, dtype="<f4").reshape(3, 4),
    "u8": np.arange(7, dtype=np.uint64) * (1 << 60),
    "b1": np.array([True, False, True]),
    "f2": np.linspace(-1, 1, 9, dtype=np.float16),
}


@pytest.fixture(scope="module")
def references(daemon):
    """Tensors stored before any malformed input; they must come back intact."""
    handles = {}
    with daemon.client() as c:
        for key, arr in REFERENCES.items():
            handles[key] = c.put(arr).handle
    return handles


def assert_references_intact(daemon, references):
    with daemon.client() as c:
        for key, handle in references.items():
            out = io.BytesIO()
            c.fetch_to(handle, out)
            assert out.getvalue() == save_bytes(REFERENCES[key]), key


@pytest.mark.parametrize("part", [13, 4096])  # split at odd and at page boundaries
@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_npy_gets_a_precise_error(daemon, references, case, part):
    data, needle = CASES[case]
    with daemon.client() as c:
        before = {t.handle for t in c.list()}
        with pytest.raises(grpc.RpcError) as err:
            put_raw(daemon, data, part=part if len(data) < (1 << 16) else 1 << 20)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        assert needle in err.value.details()
        assert {t.handle for t in c.list()} == before
    assert_references_intact(daemon, references)


def http_exchange(address, request):
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return reply
            reply += chunk


def test_http_refusals_name_the_defect(daemon):
    huge = http_exchange(daemon.http, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " +
                         b"a" * 100_000 + b"\r\n\r\n")
    assert huge.startswith(b"HTTP/1.1 431 ") and b"request headers exceed 8192 bytes" in huge
    garbage = http_exchange(daemon.http, b"GARBAGE\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ") and b"malformed HTTP request" in garbage
    brew = http_exchange(daemon.http, b"BREW /healthz HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
    assert brew.startswith(b"HTTP/1.1 405 ") and b"/healthz takes GET, not BREW" in brew
    assert b"\r\nAllow: GET\r\n" in brew


def test_half_open_connections_do_not_block_healthz(daemon):
    host, port = daemon.http.rsplit(":", 1)
    idle = []
    try:
        for _ in range(300):  # slowloris: request lines that never finish
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"GET /hea")
            idle.append(s)
        start = time.monotonic()
        with urllib.request.urlopen(f"http://{daemon.http}/healthz", timeout=5) as r:
            assert r.status == 200
        assert time.monotonic() - start < 2
    finally:
        for s in idle:
            s.close()


def test_injection_ran_nothing():
    import os
    assert not os.path.exists("/tmp/npystream-pwned")


def test_stored_tensors_survive_every_malformed_input(daemon, references):
    assert_references_intact(daemon, references)


def test_a_path_that_is_not_utf8_gets_a_404_found_by_fuzzing(daemon, references):
    """admin_socket_fuzz found that a request path with bytes that are not
    UTF-8, echoed in the 404's JSON, made the JSON library throw and aborted
    the daemon. The bad bytes now come back as U+FFFD and the daemon goes on."""
    for method, path in ((b"GET", b"/v2/models/\xff\xfe"), (b"POST", b"/v1/models/\xc3(/infer"),
                         (b"POST", b"/v2/models/\xc3(/infer"), (b"GET", b"/v1/tensors/\xff.npy"),
                         (b"GET", b"/nope\x80")):
        reply = http_exchange(daemon.http, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1] in (b"400", b"404"), reply[:200]
        assert "\ufffd" in json.loads(body)["error"], body
    with urllib.request.urlopen(f"http://{daemon.http}/healthz", timeout=5) as r:
        assert r.status == 200
    assert_references_intact(daemon, references)
