"""Distribution as a new user meets it: the Python client installed with pip
into a fresh virtual environment (its CLI against a daemon), and
`cmake --install` (binaries, the C++ client as a CMake package used by a
separate project, the systemd unit)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import BUILD, ROOT


def clean_env():
    """The environment without this checkout on the Python path: what a user
    of the installed package has."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NPYSTREAM_BUILD")}
    env["PYTHONNOUSERSITE"] = "1"
    return env


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(root)],
                   check=True)
    # Debian's setuptools and wheel; no index: nothing is downloaded.
    work = tmp_path_factory.mktemp("pip-src")
    src = work / "checkout"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        "build", "build-*", "node_modules", ".git", "__pycache__", "results"))
    r = subprocess.run([str(root / "bin" / "pip"), "install", "--no-build-isolation", "--no-index",
                        str(src / "client" / "python")], capture_output=True, text=True,
                       env=clean_env())
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return root


def test_pip_install_gives_the_package_and_its_cli(venv, daemon, tmp_path):
    py = str(venv / "bin" / "python")
    where = subprocess.run([py, "-c", "import npystream, npystream._native, npystream.v1.tensors_pb2 "
                            "as m; print(npystream.__file__); print(m.__file__)"],
                           capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(line.startswith(str(venv)) for line in where.stdout.split()), where.stdout
    arr = np.arange(24, dtype=np.int32).reshape(4, 6)
    np.save(tmp_path / "in.npy", arr)
    cli = str(venv / "bin" / "npystream")
    put = subprocess.run([cli, "--target", daemon.target, "put", str(tmp_path / "in.npy"),
                          "--name", f"venv_{os.getpid()}"], capture_output=True, text=True,
                         env=clean_env())
    assert put.returncode == 0, put.stderr
    out = tmp_path / "out.npy"
    fetch = subprocess.run([cli, "--target", daemon.target, "fetch", f"venv_{os.getpid()}",
                            "-o", str(out)], capture_output=True, text=True, env=clean_env())
    assert fetch.returncode == 0, fetch.stderr
    assert out.read_bytes() == (tmp_path / "in.npy").read_bytes()
    subprocess.run([cli, "--target", daemon.target, "rm", f"venv_{os.getpid()}"], check=True,
                   env=clean_env(), capture_output=True)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp("prefix")
    r = subprocess.run(["cmake", "--install", BUILD, "--prefix", str(prefix)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return prefix


def test_cmake_install_lays_out_binaries_library_and_unit(installed):
    for path in ("bin/npystreamd", "bin/npystream", "lib/libnpystream_client.a",
                 "lib/cmake/npystream/npystreamConfig.cmake",
                 "include/npystream/client/cpp/npystream_client.h",
                 "include/npystream/npystream/v1/tensors.grpc.pb.h",
                 "lib/systemd/system/npystreamd.service", "etc/npystream/npystreamd.json"):
        assert (installed / path).exists(), path
    r = subprocess.run([str(installed / "bin" / "npystreamd"), "--config",
                        str(installed / "etc/npystream/npystreamd.json"), "--check-config"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_systemd_unit_is_hardened_and_valid(installed):
    unit = (installed / "lib/systemd/system/npystreamd.service").read_text()
    for line in ("DynamicUser=yes", "ProtectSystem=strict", "NoNewPrivileges=yes",
                 "ExecReload=/bin/kill -HUP $MAINPID", "KillSignal=SIGTERM",
                 "bin/npystreamd --config /etc/npystream/npystreamd.json"):
        assert line in unit, line
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "verify",
                            str(installed / "lib/systemd/system/npystreamd.service")],
                           capture_output=True, text=True)
        # verify also checks that ExecStart exists: the unit names the
        # configured prefix, not this temporary one.
        problems = [l for l in r.stderr.splitlines()
                    if "npystreamd.service" in l and "is not executable" not in l]
        assert not problems, r.stderr


def test_find_package_from_a_separate_project(installed, daemon, tmp_path):
    if os.environ.get("NPYSTREAM_SANITIZE"):
        pytest.skip("the installed libraries are instrumented; a plain project cannot link them")
    build = tmp_path / "example"
    r = subprocess.run(["cmake", "-S", os.path.join(ROOT, "examples", "cpp_client"), "-B",
                        str(build), "-G", "Ninja", f"-DCMAKE_PREFIX_PATH={installed}"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    run = subprocess.run([str(build / "npystream_example"), daemon.target],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "from_example |i1 shape[0]=3 round trip ok" in run.stdout
    with daemon.client() as c:
        assert np.array_equal(c.fetch("from_example"), np.array([1, 2, 3], dtype=np.int8))
        c.release("from_example")
