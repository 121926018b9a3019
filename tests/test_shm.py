"""The same-host path: --shm-dir tensor files, Map/Allocate/Commit, Unix
sockets; checked with numpy and with the files themselves."""
import io
import os
import signal
import stat
import subprocess
import sys
import time

import grpc
import numpy as np
import pytest

import npystream
from conftest import ROOT, metric_sum, metrics
from npystream.v1 import tensors_pb2 as pb
from npystream.v1 import tensors_pb2_grpc as pb_grpc
from npy_ref import DTYPES, SHAPES, random_array, same_bits, save_bytes


@pytest.fixture
def shm_dir(tmp_path):
    # /dev/shm is the tmpfs a pod's emptyDir {medium: Memory} gives; a fresh
    # folder per test.
    path = f"/dev/shm/npystream-test-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    subprocess.run(["rm", "-rf", path], check=False)


@pytest.fixture
def shm_daemon(make_daemon, shm_dir, tmp_path):
    sock = f"unix://{tmp_path}/npystream.sock"
    d = make_daemon("--shm-dir", shm_dir, "--listen", "127.0.0.1:0", "--listen", sock,
                    "--idle-timeout", "2")
    d.socket = sock
    d.shm_dir = shm_dir
    return d


def tensor_files(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".npy"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_through_map_fetch_and_put(shm_daemon, dtype):
    with npystream.Client(shm_daemon.socket) as c:
        for i, shape in enumerate(SHAPES):
            arr = random_array(dtype, shape, seed=i)
            reference = np.load(io.BytesIO(save_bytes(arr)))
            info = c.put(arr)  # Allocate, write into the file, Commit
            assert info.dtype == arr.dtype and info.shape == shape
            assert info.npy_bytes == len(save_bytes(arr))
            fetched = c.fetch(info.handle)  # a copy out of the file
            assert fetched.flags.writeable and fetched.flags.owndata
            assert same_bits(fetched, reference), (dtype, shape)
            mapped = c.map(info.handle)  # the file itself
            assert not mapped.flags.writeable
            assert same_bits(mapped, reference), (dtype, shape)
            # The file is the .npy numpy would write, and numpy maps it.
            response = pb_grpc.TensorsStub(c._channel).Map(pb.MapRequest(handle=info.handle))
            with open(response.path, "rb") as f:
                assert f.read() == save_bytes(arr), (dtype, shape)
            assert response.data_offset % 64 == 0
            if arr.size:
                assert same_bits(np.load(response.path, mmap_mode="r"), reference)
            c.release(info.handle)
    calls = metrics(shm_daemon)
    # Every put went through Allocate and Commit, every fetch through Map;
    # nothing was streamed.
    assert calls['npystream_rpc_requests_total{code="OK",method="Allocate"}'] == len(SHAPES)
    assert calls['npystream_rpc_requests_total{code="OK",method="Commit"}'] == len(SHAPES)
    assert calls.get('npystream_rpc_requests_total{code="OK",method="Put"}', 0) == 0
    assert calls.get('npystream_rpc_requests_total{code="OK",method="Fetch"}', 0) == 0


def test_streamed_put_is_mapped_and_shm_files_follow_release(shm_daemon):
    arr = np.arange(100_000, dtype=np.float64).reshape(100, 1000)
    with npystream.Client(shm_daemon.target, shm=False) as streaming, \
            npystream.Client(shm_daemon.target) as local:
        streaming.put(arr, name="streamed")  # the plain gRPC Put
        assert len(tensor_files(shm_daemon.shm_dir)) == 1
        mapped = local.map("streamed")
        assert np.array_equal(mapped, arr)
        before = metric_sum(shm_daemon, "npystream_shm_bytes")
        assert before >= arr.nbytes
        local.release("streamed")
        assert tensor_files(shm_daemon.shm_dir) == []
        # The mapping outlives the name; the memory returns when it goes.
        assert np.array_equal(mapped, arr)
        with pytest.raises(npystream.NotFoundError):
            local.map("streamed")
        del mapped
        assert metric_sum(shm_daemon, "npystream_shm_bytes") == 0
        ok = metrics(shm_daemon).get('npystream_map_requests_total{code="OK"}', 0)
        assert ok >= 1


@pytest.mark.parametrize("dtype,shape", [("|u1", (200_003,)), ("<f8", (3, 7, 4099)),
                                         ("<c16", (65_537,))])
def test_copies_split_across_threads_are_exact(shm_daemon, monkeypatch, dtype, shape):
    # Large reads out of a file are split into page-aligned pieces, one thread
    # each, while the payload starts a multiple of 64 bytes (not of a page)
    # into its file: pieces here are 64 KiB, so these odd sizes cross several
    # boundaries, the last piece short.
    from npystream import _shm
    monkeypatch.setattr(_shm, "_PARALLEL_BYTES", 64 << 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    arr = random_array(dtype, shape, seed=7)
    with npystream.Client(shm_daemon.socket) as c:
        info = c.put(arr)  # Allocate, write into the file, Commit
        response = pb_grpc.TensorsStub(c._channel).Map(pb.MapRequest(handle=info.handle))
        with open(response.path, "rb") as f:
            assert f.read() == save_bytes(arr)
        assert same_bits(c.fetch(info.handle), arr)  # 4 threads read the file
        out = np.full_like(arr, 0)
        assert c.fetch(info.handle, out=out) is out  # into a given array
        assert same_bits(out, arr)
        c.release(info.handle)
    assert metrics(shm_daemon).get('npystream_rpc_requests_total{code="OK",method="Fetch"}',
                                   0) == 0


def test_a_file_shorter_than_its_payload_is_an_error_from_any_thread(tmp_path, monkeypatch):
    # Each thread reads its own piece; a piece past the end of the file must
    # fail the read (not leave that part of the array unwritten).
    from npystream import _shm
    monkeypatch.setattr(_shm, "_PARALLEL_BYTES", 64 << 10)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    path = tmp_path / "short.npy"
    data = (np.arange(400_000) % 251).astype(np.uint8)  # 4 threads of 100 KiB
    path.write_bytes(b"h" * 64 + data.tobytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = np.zeros_like(data)
        _shm._parallel_read(fd, whole, 64)
        assert np.array_equal(whole, data)
        for short_by in (1, 200_000):  # the last piece short; two pieces past the end
            dst = np.zeros(len(data) + short_by, np.uint8)
            with pytest.raises(OSError, match="ended"):
                _shm._parallel_read(fd, dst, 64)
    finally:
        os.close(fd)


def test_inference_outputs_are_copied_once_for_map(make_daemon, shm_dir):
    d = make_daemon("--shm-dir", shm_dir, "--model-repository",
                    os.path.join(os.environ.get("NPYSTREAM_BUILD", os.path.join(ROOT, "build")),
                                 "models"))
    x = np.random.default_rng(1).random((2, 1, 28, 28), dtype=np.float32)
    with npystream.Client(d.target) as c:
        outs = c.infer("demo", {"x": x}, fetch=False)
        handle = next(iter(outs.values())).handle
        assert tensor_files(shm_dir) == []  # outputs live in ordinary memory
        streamed = npystream.Client(d.target, shm=False).fetch(handle)
        first = c.map(handle)
        assert same_bits(first, streamed)
        assert len(tensor_files(shm_dir)) == 1
        assert same_bits(c.map(handle), streamed)
        assert len(tensor_files(shm_dir)) == 1  # made once
        c.release(handle)
        assert tensor_files(shm_dir) == []


def test_uncommitted_allocation_returns_its_budget(shm_daemon):
    stub = pb_grpc.TensorsStub(grpc.insecure_channel(shm_daemon.target))
    response = stub.Allocate(pb.AllocateRequest(header=pb.PutHeader(name="abandoned"),
                                                dtype="<f4", shape=[1 << 20]))
    assert response.info.nbytes == 4 << 20
    assert metric_sum(shm_daemon, "npystream_store_bytes") == 4 << 20
    with pytest.raises(grpc.RpcError) as err:  # never served half-written
        stub.Stat(pb.TensorRef(handle="abandoned"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    deadline = time.monotonic() + 10
    while metric_sum(shm_daemon, "npystream_store_bytes") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric_sum(shm_daemon, "npystream_store_bytes") == 0  # --idle-timeout 2
    assert not os.path.exists(response.path)
    with pytest.raises(grpc.RpcError) as err:
        stub.Commit(pb.TensorRef(handle="abandoned"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "expired" in err.value.details()


def test_files_are_0640_and_another_uid_cannot_read_them(shm_daemon):
    if os.geteuid() != 0:
        pytest.skip("switching to another uid needs root")
    with npystream.Client(shm_daemon.target) as c:
        c.put(np.ones(10), name="private")
    (name,) = tensor_files(shm_daemon.shm_dir)
    path = os.path.join(shm_daemon.shm_dir, name)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    probe = ("import sys\n"
             "try:\n"
             "    open(sys.argv[1], 'rb').read()\n"
             "except PermissionError:\n"
             "    sys.exit(13)\n")
    nobody = subprocess.run([sys.executable, "-c", probe, path], user=65534, group=65534,
                            extra_groups=[], check=False)
    assert nobody.returncode == 13
    # A member of the file's group reads it (--shm-group would name that group).
    member = subprocess.run([sys.executable, "-c", probe, path], user=65534,
                            group=os.stat(path).st_gid, extra_groups=[], check=False)
    assert member.returncode == 0


def test_restart_after_sigkill_cleans_stale_files(make_daemon, shm_dir):
    first = make_daemon("--shm-dir", shm_dir)
    with npystream.Client(first.target) as c:
        for i in range(3):
            c.put(np.full(1000, i), name=f"k{i}")
    assert len(tensor_files(shm_dir)) == 3
    first.stop(signal.SIGKILL)
    assert len(tensor_files(shm_dir)) == 3  # nobody removed them
    user_file = os.path.join(shm_dir, "mine.npy")
    np.save(user_file, np.arange(3))
    second = make_daemon("--shm-dir", shm_dir)
    assert tensor_files(shm_dir) == ["mine.npy"]  # only the dead daemon's files went
    assert any("stale_removed=3" in line for line in second.log), "".join(second.log)
    with npystream.Client(second.target) as c:
        with pytest.raises(npystream.NotFoundError):  # handles live in memory
            c.fetch("k0")


def test_unix_socket_with_token_while_tcp_uses_tls(make_daemon, certs, shm_dir, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    sock = f"unix://{tmp_path}/secure.sock"
    d = make_daemon("--tls-cert", certs["server.pem"], "--tls-key", certs["server.key"],
                    "--auth-token-file", str(token), "--listen", "127.0.0.1:0", "--listen", sock,
                    "--shm-dir", shm_dir)
    arr = np.arange(1000, dtype=np.int16)
    with npystream.Client(sock, token="s3cret") as c:  # plaintext: same host
        c.put(arr, name="u")
        assert np.array_equal(c.fetch("u"), arr)
        assert np.array_equal(c.map("u"), arr)
    with npystream.Client(sock, token="s3cret", shm=False) as c:
        assert np.array_equal(c.fetch("u"), arr)  # streamed over the socket
    with npystream.Client(sock, timeout=5) as anonymous:
        with pytest.raises(npystream.UnauthenticatedError):
            anonymous.list()
    with npystream.Client(d.target, token="s3cret", timeout=5) as plain_tcp:
        with pytest.raises(npystream.UnavailableError):  # TCP still wants TLS
            plain_tcp.list()


def test_a_folder_the_client_does_not_see_means_streaming(shm_daemon):
    arr = np.arange(5000, dtype=np.float32)
    with npystream.Client(shm_daemon.target) as c:
        c.put(arr, name="seen")
    # Same path, another file: what a client on another host (or in a
    # container with its own /dev/shm) would find. The device and inode tell.
    response = pb_grpc.TensorsStub(grpc.insecure_channel(shm_daemon.target)).Shm(pb.ShmRequest())
    os.rename(response.marker_path, response.marker_path + ".moved")
    open(response.marker_path, "w").close()
    try:
        with npystream.Client(shm_daemon.target) as c:
            maps_before = metric_sum(shm_daemon, "npystream_map_requests_total")
            assert np.array_equal(c.fetch("seen"), arr)
            other = c.put(arr * 2)
            assert other.handle and np.array_equal(c.fetch(other.handle), arr * 2)
            assert metric_sum(shm_daemon, "npystream_map_requests_total") == maps_before
            with pytest.raises(npystream.FailedPreconditionError, match="shm-dir"):
                c.map("seen")
    finally:
        os.remove(response.marker_path)
        os.rename(response.marker_path + ".moved", response.marker_path)


def test_without_shm_dir_map_names_the_flag(daemon):
    # The probe is answered, empty (not an error the daemon would log).
    response = pb_grpc.TensorsStub(grpc.insecure_channel(daemon.target)).Shm(pb.ShmRequest())
    assert response.dir == "" and response.marker_path == ""
    with daemon.client() as c:
        c.put(np.zeros(3), name="no_shm_here")
        with pytest.raises(npystream.FailedPreconditionError, match="--shm-dir"):
            c.map("no_shm_here")
        assert np.array_equal(c.fetch("no_shm_here"), np.zeros(3))  # streams
        c.release("no_shm_here")


def test_full_shm_folder_is_resource_exhausted_and_nothing_is_lost(make_daemon, tmp_path):
    mount = tmp_path / "small_tmpfs"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        d = make_daemon("--shm-dir", str(mount / "tensors"))
        kept = np.arange(256 * 1024, dtype=np.float32)  # 1 MiB
        with npystream.Client(d.target) as c, npystream.Client(d.target, shm=False) as s:
            c.put(kept, name="kept")
            with pytest.raises(npystream.ResourceExhaustedError, match="is full"):
                c.put(np.zeros(1 << 20, dtype=np.float32))  # 4 MiB: no room
            with pytest.raises(npystream.ResourceExhaustedError, match="is full"):
                s.put(np.zeros(1 << 20, dtype=np.float32), name="streamed_big")
            assert metric_sum(d, "npystream_store_bytes") == kept.nbytes
            assert np.array_equal(c.fetch("kept"), kept)
            assert np.array_equal(s.fetch("kept"), kept)
            assert d.alive()
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def shmem_huge_bytes():
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("ShmemHugePages:"))
    return kib * 1024


def test_a_huge_page_tmpfs_backs_large_tensors_with_2mib_pages(make_daemon, tmp_path):
    mount = tmp_path / "huge_tmpfs"
    mount.mkdir()
    with open("/sys/kernel/mm/transparent_hugepage/shmem_enabled") as f:
        if "[deny]" in f.read():
            pytest.skip("shmem_enabled=deny: this kernel gives no tmpfs huge pages")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,huge=within_size", "tmpfs",
                       str(mount)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        d = make_daemon("--shm-dir", str(mount / "tensors"))
        assert any("shm_dir" in line and "huge_pages=within_size" in line for line in d.log)
        with npystream.Client(d.target) as c:
            for dtype in DTYPES:
                for i, shape in enumerate([(), (0,), (3, 5), (1000, 33)]):
                    arr = random_array(dtype, shape, seed=i)
                    info = c.put(arr)
                    assert same_bits(c.fetch(info.handle), arr) and same_bits(c.map(info.handle), arr)
                    c.release(info.handle)
            before = shmem_huge_bytes()
            big = np.random.default_rng(5).random(1 << 20)  # 8 MiB: four whole 2 MiB pages
            small = np.arange(100, dtype=np.float64)
            c.put(big, name="big")
            c.put(small, name="small")
            # The kernel's count is machine-wide: other tmpfs users may add, not remove.
            assert shmem_huge_bytes() - before >= big.nbytes
            assert same_bits(c.fetch("big"), big) and same_bits(c.map("big"), big)
            # huge=within_size: a small file keeps 4 KiB pages (huge=always would take 2 MiB).
            small_file = next(p for p in (mount / "tensors").iterdir() if "small" in p.name)
            assert small_file.stat().st_blocks * 512 < 64 * 1024
            assert same_bits(c.fetch("small"), small)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
