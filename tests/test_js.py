"""The JavaScript package (client/js) against a real daemon: node's test
runner (client/js/test/) on numpy-written files of every dtype, fetches and
views, infer, subscribe and aborts, with numpy's answers in a fixture; then
`npm pack`, the tarball installed into an empty project whose TypeScript
(pinned in tests/js-types) type-checks an example against the declarations."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from conftest import BUILD, ROOT, Daemon
from npy_ref import DTYPES

JS = os.path.join(ROOT, "client", "js")
TYPES = os.path.join(ROOT, "tests", "js-types")
TOKEN = "js-token"
SHAPES = [(2, 3, 4), (), (0, 3)]


def node():
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed (scripts/deps.sh installs it)")
    return path


def values_of(a):
    """Elements in C order as JSON: numbers, 64-bit ints as text, infinities
    and NaN as the text JavaScript's Number() reads."""
    flat = a.reshape(-1)
    if a.dtype.kind == "c":
        flat = np.stack([flat.real, flat.imag], axis=-1).reshape(-1)
    if a.dtype.kind == "f" or a.dtype.kind == "c":
        out = []
        for v in flat.astype(np.float64):
            out.append("nan" if np.isnan(v) else ("Infinity" if v == np.inf else
                                                  "-Infinity" if v == -np.inf else float(v)))
        return out
    if a.dtype.itemsize == 8:
        return [str(int(v)) for v in flat]
    return [int(v) for v in flat]


def sample(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool).reshape(shape)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, n, dtype=dt, endpoint=True).reshape(shape)
    a = (rng.standard_normal(n) * 100).astype(dt) if dt.kind == "f" else (
        rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    specials = [np.inf, -np.inf, np.nan, -0.0]
    a[:min(n, 4)] = specials[:min(n, 4)]
    return a.reshape(shape)


def case(a, **extra):
    return {"dtype": a.dtype.str, "shape": list(a.shape), "values": values_of(a), **extra}


def test_js_package_against_the_daemon(tmp_path):
    node_bin = node()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    d = Daemon("--model-repository", os.path.join(BUILD, "models"),
               "--auth-token-file", str(token_file))
    try:
        with d.client(token=TOKEN) as c:
            cases, views = [], []
            for i, dtype in enumerate(DTYPES):
                for j, shape in enumerate(SHAPES):
                    a = sample(dtype, shape, 10 * i + j)
                    path = str(tmp_path / f"{dtype}_{j}.npy")
                    np.save(path, a)
                    handle = c.put(a, ttl=600).handle
                    cases.append(case(a, file=path, handle=handle))
                    if shape == (2, 3, 4):
                        for view in [{"index": "1, ::-2"}, {"index": "..., 1:3", "dtype": "<f8"}]:
                            if "dtype" in view and a.dtype.kind == "c":
                                continue  # complex to float is refused (same_kind)
                            want = np.ascontiguousarray(eval(f"a[{view['index']}]"))
                            want = want.astype(view.get("dtype", want.dtype))
                            views.append(case(want, handle=handle, view=view))
            x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
            np.save(tmp_path / "x.npy", x)
            want = c.infer("demo", {"x": x}, capture=["conv1"])
            big = c.put(np.zeros(64 << 20, np.uint8), ttl=600).handle
            fixture = {
                "base": f"http://{d.http}", "token": TOKEN, "cases": cases, "views": views,
                "big": big, "models": [m.name for m in c.list_models().models],
                "infer": {"input": str(tmp_path / "x.npy"), "logits": case(want["logits"]),
                          "conv1_shape": list(want["conv1"].shape),
                          "conv1_view": case(want["conv1"][0, 1:3].astype("<f2"))}}
        (tmp_path / "fixture.json").write_text(json.dumps(fixture))
        env = {**os.environ, "NPYSTREAM_JS_FIXTURE": str(tmp_path / "fixture.json")}
        proc = subprocess.run([node_bin, "--experimental-websocket", "--test", "test/client.test.js"],
                              cwd=JS, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
        assert "# fail 0" in proc.stdout and "# pass 7" in proc.stdout, proc.stdout[-2000:]
    finally:
        assert d.stop() == 0


def test_the_decoder_suite_in_chromium(tmp_path):
    """client/js/test/decoder_suite.js, which node's runner runs above, in
    Debian's chromium on the same numpy-written files."""
    node_bin = node()
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed (scripts/deps.sh installs it)")
    if not os.path.isdir(os.path.join(ROOT, "tests", "browser", "node_modules", "playwright-core")):
        pytest.skip("playwright-core is not installed (make test runs npm ci in tests/browser)")
    cases = []
    for i, dtype in enumerate(DTYPES):
        for j, shape in enumerate(SHAPES):
            a = sample(dtype, shape, 10 * i + j)
            path = str(tmp_path / f"{dtype}_{j}.npy")
            np.save(path, a)
            cases.append(case(a, file=path))
    (tmp_path / "fixture.json").write_text(json.dumps({"cases": cases}))
    result_path = tmp_path / "decoder.json"
    proc = subprocess.run([node_bin, os.path.join(ROOT, "tests", "browser", "decoder.mjs"),
                           str(tmp_path / "fixture.json"), str(result_path)],
                          capture_output=True, text=True, timeout=180)
    result = json.loads(result_path.read_text()) if result_path.exists() else {}
    if proc.returncode == 3:
        pytest.skip(result.get("skip", "chromium could not start"))
    assert proc.returncode == 0, (proc.stderr, result.get("error"))
    assert "Chrome/" in result["userAgent"] and result["checked"] == len(cases) == 3 * len(DTYPES)
    assert result["pageErrors"] == [] and result["console"] == []


def test_npm_pack_installs_and_type_checks(tmp_path):
    node()
    if not os.path.isdir(os.path.join(TYPES, "node_modules", "typescript")):
        pytest.skip("typescript is not installed (make test runs npm ci in tests/js-types)")
    packed = subprocess.run(["npm", "pack", "--pack-destination", str(tmp_path), "--json"],
                            cwd=JS, capture_output=True, text=True, check=True, timeout=120)
    info = json.loads(packed.stdout)[0]
    files = {f["path"] for f in info["files"]}
    assert {"package.json", "src/index.js", "src/index.d.ts", "src/npy.js",
            "src/client.js"} <= files, files
    assert not any(f.startswith("test/") for f in files)
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(os.path.join(TYPES, "example.ts"), project)
    shutil.copy(os.path.join(TYPES, "tsconfig.json"), project)
    (project / "package.json").write_text(json.dumps({"name": "example", "private": True,
                                                      "type": "module"}))
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--offline",
                    str(tmp_path / info["filename"])], cwd=project, check=True,
                   capture_output=True, timeout=120)
    assert not os.path.exists(project / "node_modules" / "npystream" / "node_modules")
    tsc = os.path.join(TYPES, "node_modules", "typescript", "bin", "tsc")
    ok = subprocess.run([shutil.which("node"), tsc, "--noEmit", "-p", str(project)],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # The declarations are checked, not ignored: a wrong call fails.
    (project / "wrong.ts").write_text(
        "import { Client } from 'npystream';\nnew Client(42).fetch(7);\n")
    bad = subprocess.run([shutil.which("node"), tsc, "--noEmit", "-p", str(project)],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "wrong.ts" in bad.stdout, bad.stdout


def test_example_page_plots_a_layer_in_chromium(tmp_path):
    import functools
    import http.server
    import threading
    import time
    node_bin = node()
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed (scripts/deps.sh installs it)")
    if not os.path.isdir(os.path.join(ROOT, "tests", "browser", "node_modules", "playwright-core")):
        pytest.skip("playwright-core is not installed (make test runs npm ci in tests/browser)")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=ROOT)
    static = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=static.serve_forever, daemon=True).start()
    page_origin = f"http://127.0.0.1:{static.server_address[1]}"
    d = Daemon("--model-repository", os.path.join(BUILD, "models"),
               "--http-allow-origin", page_origin)
    stop = threading.Event()
    x = np.random.default_rng(3).random((1, 1, 28, 28), dtype=np.float32)

    def feed():
        with d.client() as c:
            while not stop.is_set():
                c.infer("demo", {"x": x}, fetch=False, ttl=5)
                time.sleep(0.1)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        import websocket
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://{d.http}/v1/models/demo/subscribe?layers=fc",
                                        origin="http://elsewhere.example", timeout=10)
        assert refused.value.status_code == 403  # only the named origin is let in
        url = (f"{page_origin}/examples/js-dashboard/"
               f"?daemon=http://{d.http}&model=demo&layer=conv1")
        result_path = tmp_path / "example.json"
        proc = subprocess.run([node_bin, os.path.join(ROOT, "tests", "browser", "example.mjs"),
                               url, str(result_path)], capture_output=True, text=True, timeout=120)
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        if proc.returncode == 3:
            pytest.skip(result.get("skip", "chromium could not start"))
        assert proc.returncode == 0, (proc.stderr, result.get("error"))
        assert result["pageErrors"] == [] and result["console"] == []
        with d.client() as c:
            conv1 = c.infer("demo", {"x": x}, capture=["conv1"])["conv1"][0, 0].astype("<f2")
        assert result["canvas"] == [28, 28]
        # "#seq <f2 [28×28] min…max", the range of numpy's float16 view.
        text = result["status"].split()
        assert text[1] == "<f2" and text[2] == "[28×28]", result["status"]
        lo, hi = (float(v) for v in text[3].split("…"))
        assert abs(lo - float(conv1.min())) < 1e-3 and abs(hi - float(conv1.max())) < 1e-3
    finally:
        stop.set()
        feeder.join()
        static.shutdown()
        assert d.stop() == 0


def test_subscribe_reconnects_and_fetch_works_after_a_daemon_restart(tmp_path):
    """The package's subscribe reopens by itself when the daemon comes back
    on the same port, and the next values and fetches are the new daemon's."""
    import queue
    import socket
    import threading
    node_bin = node()
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    with socket.socket() as s:  # a port for both daemons
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    flags = ("--model-repository", os.path.join(BUILD, "models"), "--auth-token-file",
             str(token_file), "--http-listen", f"127.0.0.1:{port}")
    d = Daemon(*flags)
    proc = subprocess.Popen([node_bin, "--experimental-websocket",
                             os.path.join(ROOT, "tests", "js", "reconnect.mjs"),
                             f"http://127.0.0.1:{port}", TOKEN, "demo", "fc"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    events = queue.Queue()
    threading.Thread(target=lambda: [events.put(json.loads(line)) for line in proc.stdout],
                     daemon=True).start()

    def wait_for(kind, timeout=20):
        while True:
            e = events.get(timeout=timeout)
            if e["event"] == kind:
                return e
            assert e["event"] != "error", e

    x = np.random.default_rng(5).random((1, 1, 28, 28), dtype=np.float32)
    try:
        assert wait_for("open")["opens"] == 1
        with d.client(token=TOKEN) as c:
            first = c.infer("demo", {"x": x}, capture=["fc"])["fc"]
        got = wait_for("value")
        assert got["opens"] == 1 and np.array_equal(np.array(got["values"], np.float32),
                                                    first.reshape(-1))
        assert d.stop() == 0
        d = Daemon(*flags)  # the same port: the package's backoff finds it
        assert wait_for("open")["opens"] == 2
        x2 = x[:, :, ::-1].copy()
        with d.client(token=TOKEN) as c:
            second = c.infer("demo", {"x": x2}, capture=["fc"])["fc"]
            handle = c.put(np.arange(6, dtype=np.int16).reshape(2, 3), ttl=60).handle
        got = wait_for("value")
        assert got["opens"] == 2 and np.array_equal(np.array(got["values"], np.float32),
                                                    second.reshape(-1))
        proc.stdin.write(f"fetch {handle}\n")
        proc.stdin.flush()
        fetched = wait_for("fetched")
        assert fetched["shape"] == [2, 3] and fetched["values"] == list(range(6))
    finally:
        proc.stdin.close()
        proc.wait(30)
        assert d.stop() == 0
