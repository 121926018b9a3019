"""The dashboard's wire contract on the admin port (GET /v1/models, POST
/v1/models/{m}/infer, the WebSocket subscribe stream, auth), the page's own
JavaScript modules against numpy and torch, and the page itself in Debian's
chromium. References: the gRPC client, numpy's np.save and a local
TorchScript run of the same model."""
import base64
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time

import numpy as np
import pytest
import torch
import websocket

from conftest import BUILD, ROOT, Daemon, http, metric_sum

TOKEN = "dashboard-token"
MODELS = os.path.join(BUILD, "models")
BROWSER = os.path.join(ROOT, "tests", "browser")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    token_file = tmp_path_factory.mktemp("auth") / "token"
    token_file.write_text(TOKEN + "\n")
    d = Daemon("--model-repository", MODELS, "--auth-token-file", str(token_file))
    yield d
    assert d.alive(), "".join(d.log[-40:])
    assert d.stop() == 0


@pytest.fixture
def c(served):
    with served.client(token=TOKEN) as client:
        yield client


@pytest.fixture(scope="module")
def local():
    return torch.jit.load(os.path.join(MODELS, "demo", "model.pt"))


def digits(n, seed=0):
    """Held-out-style inputs: sklearn digits as the demo model expects them."""
    from sklearn.datasets import load_digits
    images = load_digits().images[seed:seed + n] / 16.0
    x = torch.nn.functional.interpolate(torch.tensor(images, dtype=torch.float32).unsqueeze(1),
                                        size=(28, 28), mode="bilinear", align_corners=False)
    return x.numpy()


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def request(served, path, data=None, headers=None, method=None, token=TOKEN):
    return http(served, path, headers=headers, data=data, method=method, token=token)


def ws_url(served, model, query):
    return f"ws://{served.http}/v1/models/{model}/subscribe?{query}"


def open_ws(served, model="demo", query="layers=conv1", token=TOKEN, **kwargs):
    header = [f"Authorization: Bearer {token}"] if token else []
    return websocket.create_connection(ws_url(served, model, query), header=header, timeout=30,
                                       **kwargs)


def recv_pair(ws):
    """One live value: (the JSON text frame, the .npy bytes of the binary frame)."""
    op, text = ws.recv_data()
    assert op == websocket.ABNF.OPCODE_TEXT, op
    op, data = ws.recv_data()
    assert op == websocket.ABNF.OPCODE_BINARY, op
    return json.loads(text), data


def wait_subscribed(served, n=1):
    """The hub has the subscription once a ws handshake returned; give the
    engine a moment anyway so the first Infer sees it."""
    time.sleep(0.05 * n)


# ---- /v1/models and POST .../infer ----

def test_models_json_matches_grpc_listing(served, c):
    status, headers, body = request(served, "/v1/models")
    assert status == 200 and headers["Content-Type"] == "application/json"
    listing = json.loads(body)
    assert listing["errors"] == []
    (demo,) = [m for m in listing["models"] if m["name"] == "demo"]
    grpc = {m.name: m for m in c.list_models().models}["demo"]
    assert demo["inputs"] == [{"name": "x", "dtype": "<f4", "shape": [-1, 1, 28, 28]}]
    assert demo["outputs"] == list(grpc.outputs) == ["logits"]
    assert demo["layers"] == list(grpc.layers)
    assert "conv1" in demo["layers"] and demo["device"] == grpc.device


def test_http_infer_keeps_outputs_fetchable_and_equal_to_torch(served, c, local):
    x = digits(3, seed=40)
    status, _, body = request(served, "/v1/models/demo/infer?capture=conv1,fc&ttl=60",
                              data=npy_bytes(x), headers={"Content-Type": "application/x-npy"})
    assert status == 200, body
    reply = json.loads(body)
    out = reply["outputs"]["logits"]
    assert out["dtype"] == "<f4" and out["shape"] == [3, 10]
    assert set(reply["activations"]) == {"conv1", "fc"}
    assert reply["activations"]["conv1"]["shape"] == [3, 8, 28, 28]
    with torch.no_grad():
        ref = local(torch.from_numpy(x)).numpy()
        ref_conv1 = local.conv1(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(c.fetch(out["handle"]), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(c.fetch(reply["activations"]["conv1"]["handle"]), ref_conv1,
                               rtol=1e-5, atol=1e-5)
    # Trained: the held-out-style digits are read as what they are.
    from sklearn.datasets import load_digits
    assert ref.argmax(1).tolist() == load_digits().target[40:43].tolist()
    # ...and the kept output is listed with its TTL.
    _, _, listing = request(served, "/v1/tensors")
    row = {t["handle"]: t for t in json.loads(listing)["tensors"]}[out["handle"]]
    assert row["expires_unix_ms"] > 0


@pytest.mark.parametrize("body,code,needle", [
    (b"not an npy file", 400, "magic"),
    (npy_bytes(np.zeros((1, 1, 28, 28), np.float32))[:-8], 400, "payload"),
    (npy_bytes(np.zeros((1, 1, 27, 28), np.float32)), 400, "x"),
])
def test_http_infer_bad_bodies_get_400_naming_the_defect(served, body, code, needle):
    status, _, reply = request(served, "/v1/models/demo/infer", data=body,
                               headers={"Content-Type": "application/x-npy"})
    assert status == code, reply
    assert needle in json.loads(reply)["error"]


def test_http_infer_refusals(served):
    x = npy_bytes(digits(1))
    npy = {"Content-Type": "application/x-npy"}
    status, _, body = request(served, "/v1/models/nope/infer", data=x, headers=npy)
    assert status == 404 and "nope" in json.loads(body)["error"]
    status, headers, body = request(served, "/v1/models/demo/infer")
    assert status == 405 and headers["Allow"] == "POST"
    status, _, body = request(served, "/v1/models/demo/infer", data=x,
                              headers={"Content-Type": "application/json"})
    assert status == 415 and "application/x-npy" in json.loads(body)["error"]
    status, _, body = request(served, "/v1/models/demo/infer?capture=nolayer", data=x,
                              headers=npy)
    assert status == 400 and "nolayer" in json.loads(body)["error"]
    status, _, body = request(served, "/v1/models/demo/infer?ttl=soon", data=x, headers=npy)
    assert status == 400 and "ttl" in json.loads(body)["error"]


# ---- auth ----

def test_token_guards_page_api_and_stream_but_not_probes(served):
    for path in ["/", "/static/app.js", "/v1/models", "/v1/tensors"]:
        assert request(served, path, token=None)[0] == 401, path
        assert request(served, path, token="wrong")[0] == 401, path
        assert request(served, path)[0] == 200, path
    for path in ["/healthz", "/metrics"]:
        assert request(served, path, token=None)[0] == 200, path
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        open_ws(served, token=None)
    assert e.value.status_code == 401
    # The page's way in: ?token= once, then an HttpOnly cookie.
    status, headers, page = request(served, f"/?token={TOKEN}", token=None)
    assert status == 200 and b"/static/app.js" in page
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    jar = cookie.split(";")[0]
    assert request(served, "/v1/models", headers={"Cookie": jar}, token=None)[0] == 200
    assert request(served, "/v1/models", headers={"Cookie": jar + "00"}, token=None)[0] == 401
    ws = websocket.create_connection(ws_url(served, "demo", "layers=conv1"), cookie=jar,
                                     origin=f"http://{served.http}", timeout=10)
    ws.close()
    # Another site's page cannot ride on the cookie.
    with pytest.raises(websocket.WebSocketBadStatusException) as e:
        websocket.create_connection(ws_url(served, "demo", "layers=conv1"), cookie=jar,
                                    origin="http://evil.example", timeout=10)
    assert e.value.status_code == 403


# ---- the WebSocket stream ----

def test_stream_pairs_equal_grpc_subscribe_and_local_torch(served, c, local):
    x = digits(2, seed=7)
    ws = open_ws(served, query="layers=conv1,fc&max_hz=0")
    with c.subscribe("demo", ["conv1", "fc"]) as grpc_sub:
        wait_subscribed(served)
        c.infer("demo", {"x": x})
        pairs = [recv_pair(ws) for _ in range(2)]
        grpc_values = {}
        for layer, arr in grpc_sub:
            grpc_values[layer] = arr
            if len(grpc_values) == 2:
                break
    ws.close()
    with torch.no_grad():
        ref = {"conv1": local.conv1(torch.from_numpy(x)).numpy(),
               "fc": local(torch.from_numpy(x)).numpy()}
    assert sorted(meta["layer"] for meta, _ in pairs) == ["conv1", "fc"]
    for meta, data in pairs:
        layer = meta["layer"]
        # The binary frame is exactly what np.save writes for the gRPC value.
        assert data == npy_bytes(grpc_values[layer]), layer
        arr = np.load(io.BytesIO(data))
        # The text frame describes it.
        assert meta["dtype"] == arr.dtype.str and meta["shape"] == list(arr.shape)
        assert meta["seq"] >= 1 and meta["infer_ms"] > 0
        np.testing.assert_allclose(arr, ref[layer], rtol=1e-5, atol=1e-5)


def test_stream_refusals_name_the_problem(served):
    cases = [("nope", "layers=conv1", 404, "nope"),
             ("demo", "layers=conv1,nolayer", 404, "nolayer"),
             ("demo", "layers=", 400, "layer"),
             ("demo", "layers=conv1&max_hz=-2", 400, "max_hz"),
             ("demo", "layers=conv1&every=0", 400, "every")]
    for model, query, code, needle in cases:
        with pytest.raises(websocket.WebSocketBadStatusException) as e:
            open_ws(served, model=model, query=query)
        assert e.value.status_code == code, (model, query)
        # The same refusal, its JSON body read over plain HTTP.
        status, _, body = request(served, f"/v1/models/{model}/subscribe?{query}")
        assert status == code and needle in json.loads(body)["error"], (model, query, body)
    # A plain GET (no upgrade) is told what to do.
    status, headers, body = request(served, "/v1/models/demo/subscribe?layers=conv1")
    assert status == 426 and headers["Upgrade"] == "websocket"


def received_seqs(ws, seconds):
    seqs = []
    ws.settimeout(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            meta, _ = recv_pair(ws)
        except websocket.WebSocketTimeoutException:
            continue
        seqs.append(meta["seq"])
    return seqs


def test_stream_is_thinned_by_max_hz_and_every(served, c):
    x = digits(1)
    default = open_ws(served, query="layers=conv1")          # at most 10 a second
    slow = open_ws(served, query="layers=conv1&max_hz=4")
    every = open_ws(served, query="layers=conv1&every=5&max_hz=0")
    wait_subscribed(served)
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 1.5:
        c.infer("demo", {"x": x}, fetch=False)
        n += 1
    elapsed = time.monotonic() - start
    got = {name: received_seqs(ws, 0.6) for name, ws in
           [("default", default), ("slow", slow), ("every", every)]}
    for ws in (default, slow, every):
        ws.close()
    assert n > 40, n  # the model ran far faster than the browser rates
    # The newest value is delivered at the rate (+1: the first one is free,
    # +1: a held value sent after the last Infer).
    assert 5 <= len(got["default"]) <= 10 * elapsed + 2, got["default"]
    assert 2 <= len(got["slow"]) <= 4 * elapsed + 2, got["slow"]
    # Held values are the newest: both rate-limited streams end on the last Infer's.
    assert got["slow"][-1] == got["default"][-1] == max(got["every"][-1], got["default"][-1])
    diffs = np.diff(got["every"])
    assert len(got["every"]) >= 3 and (diffs >= 5).all(), got["every"]


def test_stalled_browser_never_slows_infer(served, c):
    x = digits(16)

    def p50(rounds=120):
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            c.infer("demo", {"x": x}, fetch=False)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    # Baseline: a reader that keeps up (same capture and publish work).
    reader = open_ws(served, query="layers=conv1,conv2&max_hz=0")
    stop = threading.Event()

    def drain():
        reader.settimeout(0.2)
        while not stop.is_set():
            try:
                reader.recv_data()
            except websocket.WebSocketTimeoutException:
                pass
            except Exception:  # noqa: BLE001 closed at the end
                return

    t = threading.Thread(target=drain)
    t.start()
    wait_subscribed(served)
    keeping_up = p50()
    stop.set()
    t.join()
    reader.close()

    # A socket that never reads (a frozen tab), with a small receive buffer.
    stalled = open_ws(served, query="layers=conv1,conv2&max_hz=0",
                      sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)])
    wait_subscribed(served)
    dropped_before = metric_sum(served, "npystream_subscribe_dropped_total")
    with_stall = p50()
    dropped = metric_sum(served, "npystream_subscribe_dropped_total") - dropped_before
    stalled.close()
    print(f"infer p50 {keeping_up * 1e3:.2f} ms with a reader keeping up, "
          f"{with_stall * 1e3:.2f} ms with a stalled one; {dropped:.0f} values dropped")
    # The frozen tab cost Infer nothing beyond noise, and its values were
    # dropped (newest kept), not queued.
    assert with_stall < keeping_up * 1.5 + 0.002
    assert dropped > 100
    assert served.alive()


# ---- the page's modules, against numpy and torch ----

NPY_CASES = {
    "f2": np.array([[0.0, -1.5, 65504.0], [6.1e-05, 5.96e-08, 0.3333]], np.float16),
    "f4": np.linspace(-3, 3, 24, dtype=np.float32).reshape(2, 3, 4),
    "f8": np.array([np.pi, -1e300, 5e-324]),
    "i1": np.array([-128, 0, 127], np.int8),
    "u1": np.arange(250, 256, dtype=np.uint8),
    "i2": np.array([-32768, 7, 32767], np.int16),
    "u2": np.array([65535, 1], np.uint16),
    "i4": np.array([-2**31, 2**31 - 1], np.int32),
    "u4": np.array([2**32 - 1], np.uint32),
    "i8": np.array([-2**63, 2**63 - 1, 12345678901234], np.int64),
    "u8": np.array([2**64 - 1, 0], np.uint64),
    "b1": np.array([True, False, True]),
    "c8": np.array([1 + 2j, -3.5 - 0.25j], np.complex64),
    "c16": np.array([1e-200 + 1e200j], np.complex128),
    "scalar": np.float32(2.5),
    "empty": np.zeros((0, 3), np.float32),
    "fortran": np.asfortranarray(np.arange(6, dtype=np.int32).reshape(2, 3)),
    "big_endian": np.array([1.5, -2.0], ">f8"),
}


@pytest.fixture(scope="module")
def node():
    if shutil.which("node") is None:
        pytest.skip("node is not installed (scripts/deps.sh installs it)")
    return shutil.which("node")


def test_page_decodes_every_dtype_like_numpy(node, tmp_path):
    files = {}
    for name, a in NPY_CASES.items():
        files[name] = str(tmp_path / f"{name}.npy")
        np.save(files[name], a)
    src = (np.arange(64, dtype=np.float32).reshape(8, 8) % 7) / 6
    request_path, result_path = tmp_path / "req.json", tmp_path / "res.json"
    request_path.write_text(json.dumps({
        "npy_files": list(files.values()), "upsample": src.ravel().tolist(),
        "encode": {"data": src.ravel().tolist(), "shape": [1, 1, 8, 8]}}))
    subprocess.run([node, os.path.join(BROWSER, "page_modules.mjs"), str(request_path),
                    str(result_path)], check=True, timeout=60)
    result = json.loads(result_path.read_text())
    assert result["errors"] == {}
    for name, a in NPY_CASES.items():
        got = result["decoded"][files[name]]
        a = np.asarray(a)
        assert got["shape"] == list(a.shape), name
        assert got["fortranOrder"] == (a.flags.f_contiguous and not a.flags.c_contiguous), name
        file_order = a.ravel(order="F" if got["fortranOrder"] else "C")
        if a.dtype.kind == "c":
            want = np.stack([file_order.real, file_order.imag], axis=-1).ravel()
        else:
            want = file_order
        if a.dtype.kind in "iu":  # exact, through text (64-bit integers are BigInt)
            assert [int(v) for v in got["values"]] == [int(v) for v in want], name
        else:
            # float16 widened exactly; everything else bit for bit.
            assert np.array_equal(np.array(got["values"], np.float64),
                                  want.astype(np.float64)), name
    # The draw pad's upsampling is torch's bilinear, align_corners=False.
    ref = torch.nn.functional.interpolate(torch.from_numpy(src)[None, None], size=(28, 28),
                                          mode="bilinear", align_corners=False).numpy().ravel()
    np.testing.assert_allclose(result["upsampled"], ref, rtol=0, atol=1e-6)
    # What the pad posts is byte for byte what np.save writes.
    assert base64.b64decode(result["encoded"]) == npy_bytes(src.reshape(1, 1, 8, 8))


# ---- the page in a real browser ----

@pytest.fixture
def chromium(served, node, tmp_path):
    """run(driver, screenshot, *args): the driver's result JSON, after it
    ran Debian's chromium against `served` (skips where it cannot)."""
    if not os.path.exists("/usr/bin/chromium"):
        pytest.skip("Debian chromium is not installed (scripts/deps.sh installs it)")
    if not os.path.isdir(os.path.join(BROWSER, "node_modules", "playwright-core")):
        pytest.skip("playwright-core is not installed (make test runs npm ci in tests/browser)")

    def run(driver, screenshot, *args):
        result_path = tmp_path / "browser.json"
        proc = subprocess.run([node, os.path.join(BROWSER, driver), f"http://{served.http}",
                               TOKEN, screenshot, str(result_path), *args], timeout=240,
                              capture_output=True, text=True)
        result = json.loads(result_path.read_text()) if result_path.exists() else {}
        if proc.returncode == 3:
            pytest.skip(result.get("skip", "chromium could not start"))
        assert proc.returncode == 0, (proc.stdout, proc.stderr, result.get("error"))
        assert result["pageErrors"] == [] and result["console"] == []
        return result

    return run


def test_dashboard_in_chromium(chromium, c):
    screenshot = os.path.join(BUILD, "dashboard.png")
    result = chromium("dashboard.mjs", screenshot)
    assert result["models"] == ["demo", "resnet18"]
    assert "token" not in result["url"]  # the page dropped it from its address
    assert result["cards"] == ["conv1", "conv2", "fc"]
    draws = result["draws"]
    for i, d in enumerate(draws):
        # The class the page shows is the one a Python client gets for the
        # same input tensor.
        x = np.array(d["input"], np.float32).reshape(1, 1, 28, 28)
        expected = int(c.infer("demo", {"x": x})["logits"].argmax())
        assert d["predicted"] == expected and d["shown"] == str(expected), d["drawn"]
        assert not d["heatmapBlank"] and d["errors"] == []
        if i > 0:
            assert d["heatmapChanged"], d["drawn"]
        # The new output is a resident tensor the page listed (it waited for it).
        assert c.stat(d["handle"]).handle == d["handle"]
    # A trained demo model reads the drawn digits (7, 0, 1); allow one miss.
    assert sum(d["predicted"] == d["drawn"] for d in draws) >= 2, draws
    assert os.path.getsize(screenshot) > 10_000



def test_resnet18_layer1_tiles_and_one_channel_in_chromium(chromium, c):
    """The page on a real-size model: layer1 arrives as the default view
    (sample 0, float16, 64 tiles of 56 px), conv1 pooled to 56 px, and a click
    on tile 5 opens layer1[0,5] as float32 at full resolution; every legend
    agrees with a local TorchScript run of the same input."""
    x = np.random.default_rng(18).standard_normal((1, 3, 224, 224), dtype=np.float32)
    stop = threading.Event()

    def feed():  # resnet18 has no draw pad: Infer comes from here
        while not stop.is_set():
            c.infer("resnet18", {"x": x}, fetch=False)
            time.sleep(0.2)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        result = chromium("resnet18.mjs", os.path.join(BUILD, "dashboard_resnet18.png"), "5")
    finally:
        stop.set()
        feeder.join()
    model = torch.jit.load(os.path.join(MODELS, "resnet18", "model.pt"))
    with torch.no_grad():
        conv1 = model.conv1(torch.from_numpy(x))
        layer1 = model.layer1(model.maxpool(model.relu(model.bn1(conv1))))
    conv1, layer1 = conv1[0].numpy(), layer1[0].numpy()
    assert result["extensions"].startswith("permessage-deflate")
    live = result["live"]
    assert live["layer1"]["view"] == {"index": "0", "dtype": "<f2", "pool": 0}
    assert live["layer1"]["dtype"] == "<f2" and live["layer1"]["shape"] == [64, 56, 56]
    assert live["layer1"]["tiles"] == 64
    # float16 of sample 0; the daemon's and this process's LibTorch may order
    # a convolution's sums differently: a float16 ulp of room.
    l1 = layer1.astype(np.float16)
    np.testing.assert_allclose([live["layer1"]["min"], live["layer1"]["max"]],
                               [l1.min(), l1.max()], rtol=2e-3, atol=1e-3)
    assert live["conv1"]["view"]["pool"] == 2 and live["conv1"]["shape"] == [64, 56, 56]
    pooled = conv1.astype(np.float16).reshape(64, 56, 2, 56, 2).mean(axis=(2, 4),
                                                                       dtype=np.float16)
    np.testing.assert_allclose([live["conv1"]["min"], live["conv1"]["max"]],
                               [pooled.min(), pooled.max()], rtol=2e-3, atol=1e-3)
    assert live["fc"]["shape"] == [1000] and live["fc"]["dtype"] == "<f2"
    assert sorted(result["cards"]) == ["conv1", "fc", "layer1", "layer2", "layer3", "layer4"]
    focus = result["focus"]
    assert focus["layer"] == "layer1" and focus["index"] == "0,5"
    assert focus["dtype"] == "<f4" and focus["shape"] == [56, 56]
    assert result["focusTitle"].startswith("layer1[0,5]")
    np.testing.assert_allclose([focus["min"], focus["max"]],
                               [layer1[5].min(), layer1[5].max()], rtol=1e-5, atol=1e-5)

# ---- npystream.plot (matplotlib) ----

def test_plot_grid_matches_torch_and_live_redraws(served, c, local):
    import matplotlib
    matplotlib.use("Agg")
    from npystream import plot
    x = digits(2, seed=3)
    fig = plot.show_activations(c, "demo", ["conv1", "fc"], {"x": x})
    with torch.no_grad():
        conv1 = local.conv1(torch.from_numpy(x)).numpy()
    image = fig.axes[0].images[0].get_array()
    # Sample 0's 8 channels in a 3x3 grid of 28x28 tiles, 1-pixel gaps.
    assert image.shape == (3 * 29 - 1, 3 * 29 - 1)
    np.testing.assert_allclose(image[29:57, 58:86], conv1[0, 5], rtol=1e-5, atol=1e-5)
    assert np.isnan(np.asarray(image, dtype=float)[28, 0])  # the gap
    assert fig.axes[2].images[0].get_array().shape == (2, 10)  # fc: one row per sample
    # live: redrawn from Subscribe as Infers arrive (ours and others').
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            c.infer("demo", {"x": digits(1, seed=int(time.time() * 10) % 100)}, fetch=False)
            time.sleep(0.02)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        live = plot.show_activations(c, "demo", ["conv1"], live=True, max_updates=3, timeout=30)
    finally:
        stop.set()
        feeder.join()
    assert "t=" in live.axes[0].get_title()
    assert live.axes[0].images[0].get_array().shape == (86, 86)
