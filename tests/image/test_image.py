"""make image-test: the container image, run here with podman as root,
proved from outside the container (health, gRPC health, a client round trip
against numpy and a local TorchScript run of the image's own model, metrics,
a graceful stop, non-root with a read-only root filesystem)."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import grpc
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "client", "python"))
import npystream  # noqa: E402

IMAGE = os.environ.get("NPYSTREAM_IMAGE", "npystream:dev")
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]


def podman(*args, check=True, **kwargs):
    return subprocess.run(PODMAN + list(args), capture_output=True, text=True, check=check,
                          **kwargs)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def containers_conf():
    if "CONTAINERS_CONF" not in os.environ:
        f = tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False)
        f.write("[containers]\ndefault_ulimits = []\n")
        f.close()
        os.environ["CONTAINERS_CONF"] = f.name
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"{IMAGE} is not built: run `make image` first")


@pytest.fixture(scope="module")
def container():
    grpc_port, http_port = free_port(), free_port()
    name = f"npystream-test-{os.getpid()}"
    podman("run", "-d", "--name", name, "--network=host", "--read-only",
           "-e", f"NPYSTREAM_LISTEN=127.0.0.1:{grpc_port}",
           "-e", f"NPYSTREAM_HTTP_LISTEN=127.0.0.1:{http_port}",
           "-e", "NPYSTREAM_DRAIN_TIMEOUT=10", IMAGE)
    c = {"name": name, "grpc": f"127.0.0.1:{grpc_port}", "http": f"127.0.0.1:{http_port}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{c['http']}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.3)
    else:
        logs = podman("logs", name, check=False)
        podman("rm", "-f", name, check=False)
        pytest.fail("container did not become ready:\n" + logs.stdout + logs.stderr)
    yield c
    podman("rm", "-f", name, check=False)


def get(c, path):
    with urllib.request.urlopen(f"http://{c['http']}{path}", timeout=10) as r:
        return r.status, r.read()


def test_every_shared_library_is_in_the_image():
    r = podman("run", "--rm", "--entrypoint", "bash", IMAGE, "-c",
               "ldd /usr/local/bin/npystreamd /usr/local/bin/npystream")
    assert "not found" not in r.stdout, r.stdout
    packages = podman("run", "--rm", "--entrypoint", "cat", IMAGE,
                      "/usr/share/npystream/runtime-packages.txt").stdout.split()
    assert "libtorch1.13" in packages and "libgrpc++1.51" in packages
    # Nothing of the build stage came along.
    r = podman("run", "--rm", "--entrypoint", "bash", IMAGE, "-c",
               "command -v g++ cmake python3 curl || true")
    assert r.stdout.strip() == "", r.stdout


def test_health_readiness_and_grpc_health(container):
    assert get(container, "/healthz")[0] == 200
    assert get(container, "/readyz")[0] == 200
    with grpc.insecure_channel(container["grpc"]) as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        assert check(b"", timeout=10) == b"\x08\x01"  # status: SERVING
    assert podman("healthcheck", "run", container["name"], check=False).returncode == 0


def test_client_round_trip_equals_numpy_and_local_torch(container, tmp_path):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    arr = rng.standard_normal((64, 33)).astype(np.float32)
    x = rng.random((4, 1, 28, 28), dtype=np.float32)
    with npystream.Client(container["grpc"]) as c:
        info = c.put(arr, name="in_container")
        assert np.array_equal(c.fetch(info.handle), arr)
        logits = c.infer("demo", {"x": x})["logits"]
    # The image's own demo model, run here by torch.
    cid = podman("create", IMAGE).stdout.strip()
    try:
        podman("cp", f"{cid}:/models/demo/model.pt", str(tmp_path / "model.pt"))
    finally:
        podman("rm", cid, check=False)
    model = torch.jit.load(str(tmp_path / "model.pt")).eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert (logits.argmax(1) == expected.argmax(1)).all()


def test_models_run_on_openblas_not_the_reference_blas(container):
    # Debian's LibTorch calls whichever libblas.so.3 is installed; the image
    # must carry OpenBLAS (serial), which the daemon reports at start.
    blas = [json.loads(line) for line in podman("logs", container["name"]).stderr.splitlines()
            if line.startswith("{") and '"event":"blas"' in line.replace(" ", "")]
    assert len(blas) == 1, blas
    assert blas[0]["openblas"].startswith("OpenBLAS") and blas[0]["threading"] == "serial", blas
    packages = podman("run", "--rm", "--entrypoint", "cat", IMAGE,
                      "/usr/share/npystream/runtime-packages.txt").stdout.split()
    assert "libopenblas0-serial" in packages, packages


def test_metrics_scrape(container):
    status, body = get(container, "/metrics")
    text = body.decode()
    assert status == 200
    assert re.search(r'^npystream_rpc_requests_total\{code="OK",method="Put"\} [1-9]', text, re.M)
    assert "npystream_store_bytes" in text


def test_runs_as_non_root_on_a_read_only_root(container):
    inspect = json.loads(podman("inspect", container["name"]).stdout)[0]
    assert inspect["Config"]["User"] == "65532:65532"
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert podman("exec", container["name"], "id", "-u").stdout.strip() == "65532"
    r = podman("exec", container["name"], "bash", "-c", "touch /usr/local/bin/x", check=False)
    assert r.returncode != 0 and "Read-only file system" in r.stderr
    labels = inspect["Config"]["Labels"]
    assert labels["org.opencontainers.image.title"] == "npystream"
    assert labels["org.opencontainers.image.revision"]


def test_stop_drains_and_exits_zero(container):
    # The last test: stops the module's container.
    start = time.monotonic()
    podman("stop", "-t", "20", container["name"])
    took = time.monotonic() - start
    state = json.loads(podman("inspect", container["name"]).stdout)[0]["State"]
    assert state["ExitCode"] == 0, state
    assert took < 20, f"stop took {took:.1f} s: SIGKILL after the grace period, not a drain"
    events = []
    for line in podman("logs", container["name"]).stderr.splitlines():
        if line.startswith("{"):
            events.append(json.loads(line)["event"])
    assert {"listening", "signal", "draining", "stopped"} <= set(events), events


def test_deb_installs_on_plain_debian_and_runs(tmp_path):
    """The .deb cpack made in the image's build stage, installed with apt in a
    container from the local debian:12 base: Debian resolves its runtime
    dependencies, and the daemon, tool, unit and config land in place."""
    build_image = IMAGE.split(":")[0] + "-build:" + IMAGE.split(":")[1]
    cid = podman("create", build_image, "true").stdout.strip()
    try:
        listing = podman("run", "--rm", "--entrypoint", "bash", build_image, "-c",
                         "ls /build/*.deb").stdout.split()
        assert len(listing) == 1, listing
        podman("cp", f"{cid}:{listing[0]}", str(tmp_path / "npystream.deb"))
    finally:
        podman("rm", cid, check=False)
    script = ("set -e; apt-get update -qq; "
              "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "
              "/deb/npystream.deb > /dev/null; "
              "dpkg -s npystream | grep '^Depends:'; "
              "npystreamd --config /etc/npystream/npystreamd.json --check-config; "
              "test -f /lib/systemd/system/npystreamd.service; "
              "(npystream --help 2>&1 || true) | grep -q '^usage: npystream'; echo installed-ok")
    r = podman("run", "--rm", "--network=host", "-v", f"{tmp_path}:/deb:ro",
               "docker.io/library/debian:12", "bash", "-c", script, check=False, timeout=600)
    assert r.returncode == 0 and "installed-ok" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    depends = next(line for line in r.stdout.splitlines() if line.startswith("Depends:"))
    assert "libtorch1.13" in depends and "libgrpc++1.51" in depends, depends
    assert "libopenblas0-serial" in depends, depends
    assert "config ok" in r.stdout
