"""Views (FetchRequest.view, SubscribeRequest.views, GET ...npy?index=&dtype=
&pool=) against numpy: random index expressions, casts and pools over every
dtype, through the native client, grpcio and HTTP (with and without Range),
the refusals, and Subscribe views against the whole value viewed by numpy."""
import io
import os
import urllib.parse

import numpy as np
import pytest

import npystream
from conftest import http, metric_sum, put_raw
from npy_ref import DTYPES, random_array, save_bytes

# The arrays are random bits: casts and means of their NaNs and infinities warn.
pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

FLOATS = {"float16", "float32", "float64"}
# Shapes the random views run over: 0-d, empty axes, one to four axes.
VIEW_SHAPES = [(), (0,), (7,), (5, 0), (4, 6), (3, 5, 8), (2, 3, 4, 5), (1, 9, 10)]


def random_index(rng, shape):
    """A random numpy basic index for `shape`: ints, slices (negative steps,
    out-of-range and empty bounds) and at most one Ellipsis."""
    items = []
    ellipsis = rng.random() < 0.3
    n = int(rng.integers(0, len(shape) + 1))
    axes = list(shape)
    if ellipsis:
        # ... stands for some axes in the middle: index the rest from both ends.
        k = int(rng.integers(0, n + 1))
        picked = axes[:k] + axes[len(axes) - (n - k):] if n > k else axes[:k]
        at = k
    else:
        picked = axes[:n]
        at = None
    for size in picked:
        if size > 0 and rng.random() < 0.3:
            items.append(int(rng.integers(-size, size)))
            continue
        def bound():
            return None if rng.random() < 0.3 else int(rng.integers(-size - 2, size + 3))
        step = [None, 1, 2, 3, -1, -2, -3][int(rng.integers(0, 7))]
        items.append(slice(bound(), bound(), step))
    if ellipsis:
        items.insert(at, Ellipsis)
    return tuple(items)


def reference(a, index, dtype):
    """The spec's np.ascontiguousarray(a[index]).astype(dtype), keeping a 0-d
    result 0-d (ascontiguousarray would make it (1,))."""
    return np.array(a[index], order="C").astype(dtype, casting="same_kind")


def pool_reference(v, n):
    """Mean over n x n blocks of the last two axes (cropped), in float64."""
    h, w = v.shape[-2] // n * n, v.shape[-1] // n * n
    v = v[..., :h, :w].astype(np.float64)
    blocks = v.reshape(v.shape[:-2] + (h // n, n, w // n, n))
    return blocks.mean(axis=(-3, -1))


def assert_pooled(got, ref64, dtype):
    """got equals the float64 reference rounded to dtype within 1 ulp."""
    want = ref64.astype(dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    g, w = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(g) & np.isnan(w)
    same = (g == w) | both_nan
    ulp = np.abs(np.spacing(want.astype(dtype))).astype(np.float64)
    close = np.abs(g - w) <= ulp
    assert np.all(same | close), (got, want)


def index_text(index):
    return npystream._view.index_text(index)


def http_view(daemon, handle, index="", dtype="", pool=0, headers=None):
    query = urllib.parse.urlencode({"index": index, "dtype": dtype, "pool": pool})
    return http(daemon, f"/v1/tensors/{handle}.npy?{query}", headers)


@pytest.fixture(scope="module")
def grpcio(daemon):
    with daemon.client(timeout=60) as c:  # a timeout keeps the pure-grpcio path
        yield c


@pytest.fixture(scope="module")
def stored(daemon):
    """Every dtype at every VIEW_SHAPE, half of the 2+-axis ones put as
    Fortran-order .npy files: {(dtype, shape): (handle, array)}."""
    out = {}
    with daemon.client() as c:
        for i, dtype in enumerate(DTYPES):
            for j, shape in enumerate(VIEW_SHAPES):
                a = random_array(dtype, shape, seed=100 * i + j)
                name = f"view_{dtype}_{j}_{os.getpid()}"
                raw = save_bytes(np.asfortranarray(a))
                if (i + j) % 2 and b"'fortran_order': True" in raw:
                    info = put_raw(daemon, raw, name=name)
                else:
                    info = c.put(a, name=name)
                out[(dtype, shape)] = (info.handle, a)
    return out


def test_a_thousand_random_views_are_byte_identical_to_numpy(daemon, client, grpcio, stored):
    rng = np.random.default_rng(2027)
    checked = {"native": 0, "grpcio": 0, "http": 0, "range": 0, "pooled": 0, "cast": 0,
               "empty": 0, "zero_d": 0, "refused_cast": 0}
    saved_before = metric_sum(daemon, "npystream_view_bytes_saved_total")
    keys = sorted(stored, key=str)
    for round_ in range(1200):
        dtype, shape = keys[int(rng.integers(0, len(keys)))]
        handle, a = stored[(dtype, shape)]
        index = random_index(rng, shape)
        target = dtype if rng.random() < 0.5 else DTYPES[int(rng.integers(0, len(DTYPES)))]
        text = index_text(index) if rng.random() < 0.5 else index
        what = f"round {round_}: {dtype}{shape}[{index_text(index)}] -> {target}"
        if not np.can_cast(dtype, target, "same_kind"):
            with pytest.raises(npystream.InvalidArgumentError, match="view dtype") as e:
                client.fetch(handle, index=text, dtype=target)
            assert f"cannot cast {dtype} to {target}" in str(e.value), what
            checked["refused_cast"] += 1
            continue
        want = reference(a, index, target)
        want_npy = save_bytes(want)
        path = ["native", "grpcio", "http"][round_ % 3]
        if path == "native":
            got = client.fetch(handle, index=text, dtype=target)
            assert got.dtype == want.dtype and got.shape == want.shape, what
            assert got.tobytes() == want.tobytes(), what
        elif path == "grpcio":
            buf = io.BytesIO()
            info = grpcio.fetch_to(handle, buf, index=text, dtype=target)
            assert buf.getvalue() == want_npy, what
            assert info.handle == handle and info.npy_bytes == len(want_npy), what
            assert tuple(info.shape) == want.shape and info.nbytes == want.nbytes, what
        else:
            status, headers, body = http_view(daemon, handle, index_text(index),
                                              np.dtype(target).str)
            assert status == 200 and body == want_npy, what
            assert int(headers["Content-Length"]) == len(want_npy), what
            if len(want_npy) > 1 and round_ % 2:
                lo = int(rng.integers(0, len(want_npy)))
                hi = int(rng.integers(lo, len(want_npy)))
                status, headers, body = http_view(daemon, handle, index_text(index),
                                                  np.dtype(target).str,
                                                  headers={"Range": f"bytes={lo}-{hi}"})
                assert status == 206 and body == want_npy[lo:hi + 1], what
                assert headers["Content-Range"] == f"bytes {lo}-{hi}/{len(want_npy)}", what
                assert int(headers["Content-Length"]) == hi - lo + 1, what
                checked["range"] += 1
        checked[path] += 1
        checked["cast"] += target != dtype
        checked["empty"] += want.size == 0
        checked["zero_d"] += want.ndim == 0
        # A pool on the same view when it applies.
        n = int(rng.integers(2, 4))
        if target in FLOATS and want.ndim >= 2 and min(want.shape[-2:]) >= n:
            got = (grpcio if round_ % 2 else client).fetch(handle, index=text, dtype=target,
                                                           pool=n)
            assert_pooled(got, pool_reference(want, n), target)
            checked["pooled"] += 1
    assert sum(checked[p] for p in ("native", "grpcio", "http")) + checked["refused_cast"] == 1200
    for key, least in [("native", 200), ("grpcio", 200), ("http", 200), ("range", 50),
                       ("pooled", 50), ("cast", 200), ("empty", 20), ("zero_d", 10),
                       ("refused_cast", 50)]:
        assert checked[key] >= least, checked
    # The stored tensors are untouched and the saved bytes were counted.
    for handle, a in stored.values():
        back = client.fetch(handle)
        assert back.tobytes() == a.tobytes() and back.shape == a.shape
    assert metric_sum(daemon, "npystream_view_bytes_saved_total") > saved_before


def test_keywords_np_s_and_text_mean_the_same(client, stored):
    handle, a = stored[("float32", (3, 5, 8))]
    for index in [np.s_[0, 2:8], np.s_[..., ::-2], np.s_[-1], np.s_[1:, ..., 3],
                  np.s_[:0], np.s_[::-1, 1, -3:]]:
        want = reference(a, index, "float32")
        assert client.fetch(handle, index=index).tobytes() == want.tobytes()
        assert client.fetch(handle, index=index_text(index)).tobytes() == want.tobytes()
    got = client.fetch(handle, index=" 0 , 2 : 8 ", dtype=np.float16)
    assert got.dtype == np.float16 and got.tobytes() == a[0, 2:8].astype(np.float16).tobytes()


def test_out_must_match_the_view(client, grpcio, stored):
    handle, a = stored[("float64", (4, 6))]
    for c in (client, grpcio):
        out = np.empty((2, 3), np.float32)
        back = c.fetch(handle, index="1:3, ::2", dtype="<f4", out=out)
        assert back is out and out.tobytes() == a[1:3, ::2].astype(np.float32).tobytes()
        with pytest.raises(npystream.InvalidArgumentError):
            c.fetch(handle, index="1:3", dtype="<f4", out=out)  # (2, 6) into (2, 3)
        with pytest.raises(npystream.InvalidArgumentError):
            c.fetch(handle, index="1:3, ::2", out=out)  # float64 into float32


REFUSALS = [
    ("int16", (3, 5, 8), dict(index="0, 12"), "12 is out of range for axis 1 of size 5"),
    ("int16", (3, 5, 8), dict(index="-4"), "-4 is out of range for axis 0 of size 3"),
    ("int16", (3, 5, 8), dict(index="::0"), "step"),
    ("int16", (3, 5, 8), dict(index="0, 0, 0, 0"), "too many indices"),
    ("int16", (3, 5, 8), dict(index="..., 0, ..."), "..."),
    ("int16", (3, 5, 8), dict(index="0:1:2:3"), "view index"),
    ("int16", (3, 5, 8), dict(index="a"), "view index"),
    ("int16", (3, 5, 8), dict(dtype="<f9"), "view dtype"),
    ("float32", (3, 5, 8), dict(dtype="<i4"), "view dtype"),
    ("complex64", (4, 6), dict(dtype="<f4"), "view dtype"),
    ("int16", (3, 5, 8), dict(pool=2), "pool"),
    ("float32", (7,), dict(pool=2), "pool"),
    ("float32", (3, 5, 8), dict(pool=6), "pool"),
    ("float32", (3, 5, 8), dict(index="0", pool=9), "pool"),
]


@pytest.mark.parametrize("dtype,shape,view,needle", REFUSALS)
def test_bad_views_are_invalid_argument_naming_the_defect(daemon, client, grpcio, stored, dtype,
                                                          shape, view, needle):
    handle, a = stored[(dtype, shape)]
    for c in (client, grpcio):
        with pytest.raises(npystream.InvalidArgumentError) as e:
            c.fetch(handle, **view)
        assert needle in str(e.value), e.value
    status, _, body = http_view(daemon, handle, view.get("index", ""), view.get("dtype", ""),
                                view.get("pool", 0))
    assert status == 400 and needle in body.decode(), body
    assert client.fetch(handle).tobytes() == a.tobytes()  # never changed


def test_an_unknown_handle_with_a_view_is_not_found(client, daemon):
    with pytest.raises(npystream.NotFoundError):
        client.fetch("no-such-tensor", index="0")
    assert http_view(daemon, "no-such-tensor", "0")[0] == 404


# ---- Subscribe views ----

def first_values(subscription, n):
    """{layer: ndarray} of the first values of n different layers."""
    values = {}
    for layer, arr in subscription:
        values[layer] = arr
        if len(values) == n:
            return values


def test_subscribe_views_equal_the_whole_value_viewed_by_numpy(served):
    import time
    x = np.random.default_rng(5).random((2, 1, 28, 28), dtype=np.float32)
    views = {"conv1": dict(index=np.s_[1, 2:8], dtype=np.float16, pool=2)}
    with served.client() as c:
        with c.subscribe("demo", ["conv1", "fc"], views=views) as viewed, \
                c.subscribe("demo", ["conv1", "fc"]) as whole:
            time.sleep(0.1)
            c.infer("demo", {"x": x})
            got, full = first_values(viewed, 2), first_values(whole, 2)
        assert got["fc"].tobytes() == full["fc"].tobytes()  # not in the map: whole
        conv = np.array(full["conv1"][1, 2:8], order="C").astype(np.float16)
        assert got["conv1"].shape == (6, conv.shape[1] // 2, conv.shape[2] // 2)
        assert_pooled(got["conv1"], pool_reference(conv, 2), np.float16)
        # The same view of a fetched tensor agrees with the subscribed one.
        info = c.put(full["conv1"])
        fetched = c.fetch(info.handle, index="1, 2:8", dtype="<f2", pool=2)
        assert fetched.tobytes() == got["conv1"].tobytes()
        bad = {"conv1": dict(index="9")}
        with pytest.raises(npystream.InvalidArgumentError, match="out of range"):
            with c.subscribe("demo", ["conv1"], views=bad) as sub:
                c.infer("demo", {"x": x})
                next(iter(sub))


def test_websocket_views_equal_grpc_subscribe_views(served):
    import json
    import time
    import websocket
    x = np.random.default_rng(6).random((2, 1, 28, 28), dtype=np.float32)
    query = urllib.parse.urlencode({"layers": "conv1,fc", "max_hz": 0,
                                    "view.conv1.index": "0, 1:5", "view.conv1.dtype": "<f2",
                                    "view.conv1.pool": 2, "view.fc.index": "..., ::-1"})
    ws = websocket.create_connection(f"ws://{served.http}/v1/models/demo/subscribe?{query}",
                                     timeout=30)
    views = {"conv1": dict(index="0, 1:5", dtype="<f2", pool=2), "fc": dict(index="..., ::-1")}
    with served.client() as c, c.subscribe("demo", ["conv1", "fc"], views=views) as sub:
        time.sleep(0.1)
        c.infer("demo", {"x": x})
        grpc_values = first_values(sub, 2)
        frames = {}
        for _ in range(2):
            op, text = ws.recv_data()
            assert op == websocket.ABNF.OPCODE_TEXT
            op, data = ws.recv_data()
            assert op == websocket.ABNF.OPCODE_BINARY
            meta = json.loads(text)
            frames[meta["layer"]] = (meta, data)
        ws.close()
        for layer, (meta, data) in frames.items():
            want = grpc_values[layer]
            assert data == save_bytes(want), layer  # np.save of the gRPC view, byte for byte
            assert meta["dtype"] == want.dtype.str and meta["shape"] == list(want.shape)
        assert frames["conv1"][0]["dtype"] == "<f2"
        # A bad view is refused before the upgrade, naming the layer and defect;
        # one that does not fit the values closes the stream naming it.
        for bad, needle in [({"view.conv1.index": "::0"}, "step"),
                            ({"view.conv1.dtype": "<q9"}, "view dtype"),
                            ({"view.conv1.pool": "x"}, "view pool")]:
            q = urllib.parse.urlencode({"layers": "conv1", **bad})
            with pytest.raises(websocket.WebSocketBadStatusException) as e:
                websocket.create_connection(f"ws://{served.http}/v1/models/demo/subscribe?{q}",
                                            timeout=30)
            assert e.value.status_code == 400
            # The same refusal, its JSON body read over plain HTTP.
            status, _, body = http(served, f"/v1/models/demo/subscribe?{q}")
            error = json.loads(body)["error"]
            assert status == 400 and needle in error and "conv1" in error, error
        q = urllib.parse.urlencode({"layers": "conv1", "view.conv1.index": "0, 99"})
        ws = websocket.create_connection(f"ws://{served.http}/v1/models/demo/subscribe?{q}",
                                         timeout=30)
        time.sleep(0.1)
        c.infer("demo", {"x": x})
        op, reason = ws.recv_data(control_frame=True)
        assert op == websocket.ABNF.OPCODE_CLOSE
        assert int.from_bytes(reason[:2], "big") == 1008 and b"99 is out of range" in reason
        ws.close()
