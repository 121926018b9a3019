"""Fixtures: a real npystreamd on a free loopback port, and clients for it."""
import json
import os
import urllib.error
import urllib.request
import re
import subprocess
import sys
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("NPYSTREAM_BUILD", os.path.join(ROOT, "build"))
DAEMON = os.path.join(BUILD, "bin", "npystreamd")
# How much slower a daemon built by `make test SANITIZE=...` is: waits for
# it scale by this (TSan's ~5-15x, ASan's ~2-3x).
SLOWDOWN = {"": 1, "thread": 10}.get(os.environ.get("NPYSTREAM_SANITIZE", ""), 3)
sys.path.insert(0, os.path.join(ROOT, "client", "python"))

import grpc  # noqa: E402

import npystream  # noqa: E402
from npystream import _wire  # noqa: E402
from npystream.v1 import tensors_pb2 as pb  # noqa: E402


class Daemon:
    """One npystreamd process; its stderr log is kept in `self.log`."""

    def __init__(self, *flags, env=None):
        self.log = []
        self._ready = threading.Event()
        self.target = None
        self.http = None
        full_env = dict(os.environ)
        full_env.update(env or {})
        args = [DAEMON, "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
                "--store-budget", "8GiB", *flags]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, env=full_env)
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or self.target is None:
            self.stop()
            raise RuntimeError("npystreamd did not start:\n" + "".join(self.log))

    def _read_log(self):
        for line in self.proc.stderr:
            self.log.append(line)
            if line.startswith("{"):  # --log-format json
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "listening":
                    self.target, self.http = record["grpc"], record.get("http")
                    self._ready.set()
                continue
            m = re.search(r" listening grpc=(\S+)", line)
            if m:
                self.target = m.group(1)
                h = re.search(r" http=(\S+)", line)
                self.http = h.group(1) if h else None
                self._ready.set()
        self._ready.set()

    def client(self, **kwargs):
        return npystream.Client(self.target, **kwargs)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, sig=None):
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(10)  # the log up to the last line the daemon wrote
        return self.proc.returncode


def http(daemon, path, headers=None, context=None, scheme="http", data=None, method=None,
         token=None, timeout=60):
    """One request to `daemon`'s admin port: (status, headers, body), error
    statuses included. `token` adds a bearer header unless one is given."""
    h = dict(headers or {})
    if token is not None:
        h.setdefault("Authorization", f"Bearer {token}")
    req = urllib.request.Request(f"{scheme}://{daemon.http}{path}", data=data, headers=h,
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def metrics(daemon):
    """{sample with labels: value} from /metrics."""
    status, _, body = http(daemon, "/metrics")
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, value = line.rsplit(" ", 1)
        out[key] = float(value)
    return out


def metric_sum(daemon, name):
    """The sum of every sample of metric `name`, whatever its labels."""
    return sum(v for k, v in metrics(daemon).items() if k == name or k.startswith(name + "{"))


def assert_json_log(lines):
    """Every line is one JSON object with ts, level and event (a log shipper's
    view); returns the records."""
    records = []
    for line in lines:
        assert line.endswith("\n"), repr(line)
        record = json.loads(line)  # raises on any malformed line
        assert isinstance(record, dict), line
        assert {"ts", "level", "event"} <= record.keys(), line
        records.append(record)
    return records


@pytest.fixture(scope="session")
def daemon():
    # The shared daemon logs JSON at debug level (a line per call): every line
    # it writes during the whole suite must parse.
    d = Daemon("--log-format", "json", "--log-level", "debug")
    yield d
    assert d.alive(), "npystreamd died during the tests:\n" + "".join(d.log[-50:])
    assert d.stop() == 0
    records = assert_json_log(d.log)
    events = {r["event"] for r in records}
    assert {"devices", "listening", "rpc", "draining", "stopped"} <= events, events


@pytest.fixture(scope="module")
def served():
    """A daemon on build/models (demo and resnet18), one per test module;
    modules that need other flags define their own."""
    d = Daemon("--model-repository", os.path.join(BUILD, "models"))
    yield d
    assert d.stop() == 0


@pytest.fixture
def client(daemon):
    with daemon.client() as c:
        yield c


@pytest.fixture
def make_daemon():
    """Starts extra daemons with their own flags; stops them after the test."""
    started = []

    def make(*flags, **kwargs):
        d = Daemon(*flags, **kwargs)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
    # Under `make test SANITIZE=...` a report stops the daemon: show it.
    for d in started:
        first = next((i for i, line in enumerate(d.log) if "Sanitizer" in line), None)
        assert first is None, ("a sanitizer report in npystreamd's log:\n"
                               + "".join(d.log[first:first + 80]))


@pytest.fixture
def unique():
    """A fresh tensor name per call."""
    counter = iter(range(1_000_000))
    prefix = f"t{int(time.time() * 1000) % 100000}"
    return lambda: f"{prefix}_{next(counter)}_{os.getpid()}"


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """A CA, a server certificate for 127.0.0.1/localhost and a client one."""
    d = tmp_path_factory.mktemp("certs")

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "2", "-subj", "/CN=npystream test CA")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for who in ("server", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}.key", "-out", f"{who}.csr",
            "-subj", f"/CN={who}")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.pem", "-days", "2", "-extfile", "san.cnf")
    return {k: str(d / k) for k in ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")}


def put_raw(daemon, npy_bytes, name="", part=1000):
    """Streams arbitrary bytes as a Put, the way any client could."""
    channel = grpc.insecure_channel(daemon.target)
    put = channel.stream_unary("/npystream.v1.Tensors/Put", request_serializer=None,
                               response_deserializer=pb.TensorInfo.FromString)

    def requests():
        yield pb.PutRequest(header=pb.PutHeader(name=name)).SerializeToString()
        for i in range(0, len(npy_bytes), part):
            yield _wire.put_data(npy_bytes[i:i + part])

    try:
        return put(requests())
    finally:
        channel.close()
