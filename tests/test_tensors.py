"""Put/Fetch/Stat/List/Release against a real npystreamd, checked with numpy."""
import concurrent.futures
import io
import os
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

import npystream
from conftest import ROOT, put_raw
from npystream import _wire
from npystream.v1 import tensors_pb2 as pb
from npy_ref import DTYPES, SHAPES, random_array, same_bits, save_bytes


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype_and_shape(client, dtype):
    for i, shape in enumerate(SHAPES):
        arr = random_array(dtype, shape, seed=i)
        info = client.put(arr)
        assert info.dtype == arr.dtype and info.shape == shape
        assert info.npy_bytes == len(save_bytes(arr))
        back = client.fetch(info.handle)
        reference = np.load(io.BytesIO(save_bytes(arr)))
        assert same_bits(back, reference), (dtype, shape)
        raw = io.BytesIO()
        client.fetch_to(info.handle, raw)
        assert raw.getvalue() == save_bytes(arr), (dtype, shape)


def test_inline_npy_decodes_like_np_load_and_bad_bytes_are_refused():
    """Infer replies carry small results as .npy bytes beside their info; the
    client decodes them without np.load's header parse, to the same array."""
    from npystream import Error
    from npystream._assembly import array_from_npy

    def info_of(arr):
        return pb.TensorInfo(dtype=arr.dtype.str, shape=arr.shape, nbytes=arr.nbytes,
                             npy_bytes=len(save_bytes(arr)))

    many_dims = (1,) * 30 + (3,)  # a header past the first 64-byte block
    for dtype in DTYPES:
        for i, shape in enumerate(SHAPES + [many_dims, (100_000,)]):
            arr = random_array(dtype, shape, seed=i)
            got = array_from_npy(save_bytes(arr), info_of(arr))
            assert same_bits(got, np.load(io.BytesIO(save_bytes(arr)))), (dtype, shape)
            assert got.flags.writeable and got.flags.c_contiguous
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    good = save_bytes(arr)
    # A header with another layout (spaces, key order) is still parsed.
    body = "{'shape': (3, 4), 'fortran_order': False, 'descr': '<f4'}"
    other = np.lib.format._wrap_header(body, (1, 0)) + arr.tobytes()
    assert np.array_equal(array_from_npy(other, pb.TensorInfo(
        dtype="<f4", shape=(3, 4), nbytes=48, npy_bytes=len(other))), arr)
    wrong = [
        (good[:-1], info_of(arr), "npy bytes"),  # truncated payload
        (save_bytes(arr.astype(np.int32)), info_of(arr), "disagrees"),  # header says <i4
        (save_bytes(arr.reshape(4, 3)), info_of(arr), "disagrees"),  # header says (4, 3)
        (save_bytes(np.asfortranarray(arr)), info_of(arr), "disagrees"),  # fortran_order
        (b"garbage!" + good[8:], info_of(arr), "malformed"),
    ]
    for npy, info, needle in wrong:
        with pytest.raises(Error, match=needle):
            array_from_npy(npy, info)


def test_non_contiguous_and_fortran_sources(client):
    base = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
    for arr in (base.transpose(2, 0, 1), base[:, ::2, 1:], np.asfortranarray(base)):
        info = client.put(arr)
        raw = io.BytesIO()
        client.fetch_to(info.handle, raw)
        assert raw.getvalue() == save_bytes(arr.copy(order="C"))
        assert np.array_equal(client.fetch(info.handle), arr)


def test_fortran_order_npy_file_is_converted(daemon, client, unique):
    arr = np.asfortranarray(random_array("int16", (3, 4, 5)))
    raw = save_bytes(arr)
    assert b"'fortran_order': True" in raw
    info = put_raw(daemon, raw, name=unique())
    assert tuple(info.shape) == (3, 4, 5)
    assert np.array_equal(client.fetch(info.handle), arr)
    out = io.BytesIO()
    client.fetch_to(info.handle, out)
    assert out.getvalue() == save_bytes(arr.copy(order="C"))


def test_version_2_and_3_inputs(daemon, client, unique):
    arr = random_array("float64", (5, 6))
    for version in ((2, 0), (3, 0)):
        buf = io.BytesIO()
        np.lib.format.write_array(buf, arr, version=version)
        info = put_raw(daemon, buf.getvalue(), name=unique())
        out = io.BytesIO()
        client.fetch_to(info.handle, out)
        assert out.getvalue() == save_bytes(arr)  # numpy.save writes 1.0


@pytest.mark.parametrize("mutate,needle", [
    (lambda b: b"XNUMPY" + b[6:], "bad magic"),
    (lambda b: b[:6] + b"\x09\x00" + b[8:], "unsupported format version 9.0"),
    (lambda b: b[:40], "inside the .npy header"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"extra", "longer than its header"),
    (lambda b: b.replace(b"'<f4'", b"'>f4'"), "big-endian descr '>f4'"),
    (lambda b: b.replace(b"'<f4'", b"'<U4'"), "unsupported dtype descr '<U4'"),
    (lambda b: b.replace(b"(3, 4)", b"(3,-4)"), "dimension 1 is negative"),
    (lambda b: b.replace(b"(3, 4)", b"(3, x)"), "not an integer"),
])
def test_malformed_npy_is_invalid_argument(daemon, client, mutate, needle):
    before = {t.handle for t in client.list()}
    good = save_bytes(np.arange(12, dtype="<f4").reshape(3, 4))
    with pytest.raises(grpc.RpcError) as err:
        put_raw(daemon, mutate(good))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in err.value.details()
    assert {t.handle for t in client.list()} == before


def test_error_codes(client, unique):
    with pytest.raises(npystream.NotFoundError) as err:
        client.fetch("no-such-handle")
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    assert "no-such-handle" in str(err.value)
    with pytest.raises(npystream.NotFoundError):
        client.stat("no-such-handle")
    with pytest.raises(npystream.NotFoundError):
        client.release("no-such-handle")
    name = unique()
    client.put(np.zeros(3), name=name)
    with pytest.raises(npystream.AlreadyExistsError):
        client.put(np.ones(3), name=name)
    assert np.array_equal(client.fetch(name), np.zeros(3))  # untouched
    with pytest.raises(npystream.InvalidArgumentError) as err:
        client.put(np.zeros(3), device="cuda:7")
    assert "cuda:7" in str(err.value)
    with pytest.raises(npystream.InvalidArgumentError):
        client.put(np.zeros(3), name="has space")
    with pytest.raises(npystream.InvalidArgumentError):
        client.put(np.array(["a", "b"], dtype=object))
    assert all(isinstance(e, type) and issubclass(e, npystream.Error) for e in (
        npystream.NotFoundError, npystream.InvalidArgumentError))


def test_budget_is_resource_exhausted_and_keeps_other_tensors(make_daemon):
    d = make_daemon("--store-budget", "1MiB")
    with d.client() as c:
        keep = np.arange(100_000, dtype=np.float32)  # 400 KB
        c.put(keep, name="keep")
        with pytest.raises(npystream.ResourceExhaustedError) as err:
            c.put(np.zeros(200_000, dtype=np.float32))  # 800 KB more
        assert "store budget exceeded" in str(err.value)
        assert np.array_equal(c.fetch("keep"), keep)
        c.release("keep")
        c.put(np.zeros(200_000, dtype=np.float32))  # fits now


def test_stat_list_release_and_ttl(client, unique):
    name = unique()
    arr = random_array("complex64", (7, 3))
    info = client.put(arr, name=name, ttl=1)
    stat = client.stat(name)
    assert stat.handle == name and stat.name == name
    assert stat.dtype == np.dtype("<c8") and stat.shape == (7, 3)
    assert stat.nbytes == arr.nbytes and stat.device == "cpu"
    assert stat.expires_unix_ms == stat.created_unix_ms + 1000
    assert name in {t.handle for t in client.list()}
    time.sleep(1.3)
    with pytest.raises(npystream.NotFoundError):
        client.fetch(name)
    other = client.put(arr)
    assert other.expires_unix_ms == 0
    assert client.release(other.handle) is True
    assert other.handle not in {t.handle for t in client.list()}


def test_cancel_mid_fetch_then_server_still_serves(daemon, client, unique):
    name = unique()
    arr = np.arange(16 << 20, dtype=np.float32)  # 64 MiB
    client.put(arr, name=name)
    channel = grpc.insecure_channel(daemon.target)
    fetch = channel.unary_stream("/npystream.v1.Tensors/Fetch",
                                 request_serializer=pb.FetchRequest.SerializeToString,
                                 response_deserializer=None)
    for _ in range(3):
        call = fetch(pb.FetchRequest(handle=name))
        next(call)
        call.cancel()
    channel.close()
    assert np.array_equal(client.fetch(name), arr)


def test_client_process_killed_mid_fetch(daemon, client, unique):
    name = unique()
    client.put(np.ones(64 << 20, dtype=np.uint8), name=name)
    code = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); import npystream\n"
        "c = npystream.Client(sys.argv[2])\n"
        "c.fetch(sys.argv[3], progress=lambda d, t: os._exit(0) if d > (8 << 20) else None)\n")
    for _ in range(3):
        subprocess.run([sys.executable, "-c", code,
                        os.path.join(os.path.dirname(npystream.__file__), ".."),
                        daemon.target, name], check=True, timeout=60)
    assert daemon.alive()
    assert client.fetch(name).sum() == 64 << 20
    client.release(name)


def test_sixteen_parallel_fetches_of_64_mib(client, unique):
    name = unique()
    arr = random_array("float32", (16 << 20,), seed=7)
    client.put(arr, name=name)
    expected = arr.tobytes()

    def one(_):
        return client.fetch(name).tobytes() == expected

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        assert all(pool.map(one, range(16)))
    client.release(name)


def test_tensor_over_2_gib_round_trips(daemon, unique):
    name = unique()
    n = (5 << 30) // 2  # 2.5 GiB of uint8
    arr = np.empty(n, dtype=np.uint8)
    arr[::4096] = np.arange(n // 4096 + (n % 4096 > 0), dtype=np.uint64).astype(np.uint8)
    arr[1::4096] = 0xA5
    arr[-1] = 0x5A
    with daemon.client() as c:
        info = c.put(arr, name=name)
        assert info.nbytes == n
        back = c.fetch(name)
        assert back.shape == (n,)
        assert np.array_equal(back, arr)
        del back
        c.release(name)


FAULTS = r"""
import resource
import npystream
npystream.Client("127.0.0.1:1")  # tunes malloc on construction; connects lazily
src = b"x" * (64 << 10)
total = 0
for r in range(10):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [bytearray(src) for _ in range(256)]  # what gRPC's receive buffers do
    del blocks
    if r:
        total += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(npystream.tune_malloc(), total)
"""


def test_client_tunes_malloc_so_receive_buffers_are_not_faulted_in_again():
    def run(**env):
        full = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        full.update(env, PYTHONPATH=os.path.join(ROOT, "client", "python"))
        out = subprocess.run([sys.executable, "-c", FAULTS], env=full, capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0] == "True", int(out[1])

    tuned, tuned_faults = run()
    untuned, untuned_faults = run(NPYSTREAM_TUNE_MALLOC="0")
    assert tuned and not untuned
    assert untuned_faults > 9 * 1000  # 16 MiB given back and faulted in, every round
    assert tuned_faults * 10 < untuned_faults


def test_fetch_into_an_existing_array(client, unique):
    name = unique()
    arr = np.random.default_rng(4).standard_normal((257, 1031)).astype(np.float32)
    client.put(arr, name=name)
    out = np.full(arr.shape, np.nan, dtype=np.float32)
    got = client.fetch(name, out=out, chunk_bytes=100_000)
    assert got is out and save_bytes(out) == save_bytes(arr)
    for bad in (np.empty((257, 1030), np.float32), np.empty(arr.shape, np.float64),
                np.empty((1031, 257), np.float32).T, np.empty(arr.shape, np.float32)[::1, ::1][:, :],
                "not an array"):
        if isinstance(bad, np.ndarray) and bad.flags.c_contiguous and bad.shape == arr.shape \
                and bad.dtype == arr.dtype:
            bad.flags.writeable = False
        with pytest.raises(npystream.InvalidArgumentError) as err:
            client.fetch(name, out=bad)
        assert "out= must be" in str(err.value)
    assert np.array_equal(client.fetch(name), arr)  # the client and server carry on


def test_fresh_fetch_arrays_are_faulted_in_off_the_receiving_thread():
    import resource
    from npystream._malloc import populate_async

    def write_faults(populate):
        arr = np.empty(64 << 20, dtype=np.uint8)
        if populate:
            thread = populate_async(arr)
            if thread is None:
                pytest.skip("madvise is not available")
            thread.join()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        arr[:] = 1
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    import ctypes
    import mmap
    scratch = mmap.mmap(-1, 4096)
    madvise = ctypes.CDLL(None).madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    address = ctypes.addressof(ctypes.c_char.from_buffer(scratch))
    if madvise(address, 4096, 23) != 0:  # MADV_POPULATE_WRITE
        pytest.skip("the kernel lacks MADV_POPULATE_WRITE (Linux < 5.14)")
    plain = write_faults(False)
    populated = write_faults(True)
    assert plain >= 8  # a fresh array's pages are faulted in by its first writes
    assert populated * 4 <= plain, (populated, plain)


@pytest.fixture
def native_and_plain(daemon, monkeypatch):
    """Two clients of one daemon: one with the C++ path (npystream._native),
    one grpcio-only (NPYSTREAM_NATIVE=0)."""
    if os.environ.get("NPYSTREAM_SANITIZE"):
        pytest.skip("a sanitized build has no native module (its runtime cannot load into python)")
    native = daemon.client()
    monkeypatch.setenv("NPYSTREAM_NATIVE", "0")
    plain = daemon.client()
    monkeypatch.delenv("NPYSTREAM_NATIVE")
    try:
        assert native._native is not None, "npystream._native was not built (python3-dev?)"
        assert plain._native is None
        yield native, plain
    finally:
        native.close()
        plain.close()


def test_native_and_grpcio_fetch_paths_agree_with_numpy(native_and_plain, unique):
    """Client.fetch takes the C++ path (npystream._native) by default; the
    grpcio path remains for timeouts and mTLS. Both must give numpy's bytes,
    the same progress reports and the same errors."""
    native, plain = native_and_plain
    for dtype in DTYPES:
        for shape in SHAPES:
            arr = random_array(dtype, shape, seed=len(shape))
            name = unique()
            native.put(arr, name=name)
            for c in (native, plain):
                got = c.fetch(name, chunk_bytes=4096 + 7)
                assert save_bytes(got) == save_bytes(arr), (dtype, shape)
            native.release(name)
    big = np.arange(3 << 20, dtype=np.float64)  # 24 MiB: many messages
    name = unique()
    native.put(big, name=name)
    for c in (native, plain):
        seen = []
        got = c.fetch(name, progress=lambda done, total: seen.append((done, total)))
        assert np.array_equal(got, big)
        total = big.nbytes + 128
        assert seen[-1] == (total, total) and all(t == total for _, t in seen)
        assert len(seen) >= 4 and [d for d, _ in seen] == sorted(d for d, _ in seen)
    out = np.empty_like(big)
    assert native.fetch(name, out=out) is out and np.array_equal(out, big)
    for c in (native, plain):
        with pytest.raises(npystream.NotFoundError) as err:
            c.fetch("no-such-tensor")
        assert "no-such-tensor" in str(err.value)
        with pytest.raises(npystream.InvalidArgumentError):
            c.fetch(name, out=np.empty(3))


def test_native_and_grpcio_put_paths_agree_with_numpy(native_and_plain, unique):
    """Client.put takes the C++ path under 64 MiB (no grpcio thread per call)
    and grpcio above it and with timeouts: the same bytes stored, the same
    options honoured, the same errors."""
    native, plain = native_and_plain
    calls = []
    real_put = native._native.put
    native._native.put = lambda *a: calls.append(len(a[4])) or real_put(*a)
    for dtype in DTYPES:
        for shape in SHAPES + [(3, 5)]:
            arr = random_array(dtype, shape, seed=len(shape))
            src = np.asfortranarray(arr) if len(shape) == 2 else arr
            for c in (native, plain):
                name = unique()
                seen = []
                info = c.put(src, name=name, ttl=600,
                             progress=lambda d, t: seen.append((d, t)))
                assert info.handle == name and info.expires_unix_ms > info.created_unix_ms
                assert seen[-1] == (info.npy_bytes, info.npy_bytes)
                raw = io.BytesIO()
                c.fetch_to(name, raw)
                assert raw.getvalue() == save_bytes(arr), (dtype, shape)
                c.release(name)
    assert len(calls) == len(DTYPES) * (len(SHAPES) + 1)  # every small put went native
    for c in (native, plain):
        taken = unique()
        c.put(np.zeros(3), name=taken)
        with pytest.raises(npystream.AlreadyExistsError) as err:
            c.put(np.ones(3), name=taken)
        assert taken in str(err.value)
        assert np.array_equal(c.fetch(taken), np.zeros(3))  # the first one is kept
        with pytest.raises(npystream.InvalidArgumentError) as err:
            c.put(np.zeros(3), device="tpu:0")
        assert "tpu:0" in str(err.value)
    # 64 MiB and over: grpcio, with progress per MiB.
    big = np.arange(8 << 20, dtype=np.float64)
    seen = []
    before = len(calls)
    info = native.put(big, progress=lambda d, t: seen.append(d))
    assert len(calls) == before and len(seen) >= 64
    assert np.array_equal(native.fetch(info.handle), big)
    native.release(info.handle)


def test_one_client_shared_by_threads_from_its_first_call(daemon, unique):
    """The first fetch makes the native channel; eight threads race to it."""
    name = unique()
    arr = np.arange(100_000, dtype=np.float32).reshape(100, 1000)
    with daemon.client() as seed:
        seed.put(arr, name=name)
    shared = daemon.client()
    results, errors = [], []

    def work():
        try:
            for _ in range(5):
                results.append(np.array_equal(shared.fetch(name), arr))
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    shared.close()
    assert not errors, errors
    assert results == [True] * 40
