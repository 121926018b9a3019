"""The Open Inference Protocol (KServe v2) as a third party would test it:
Python stubs generated here, at test time, from proto/inference/grpc_service.proto
with Debian's protoc and grpc_python_plugin; requests built by hand; raw
outputs read with np.frombuffer and compared with local TorchScript runs."""
import importlib
import os
import subprocess
import sys

import grpc
import numpy as np
import pytest
import torch
from torch import nn

from conftest import ROOT, Daemon, http, metrics
from make_test_models import make_repository, write

TOKEN = "oip-token"
INT32_MAX = 2**31 - 1


class Identity(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clone()


class Big(nn.Module):
    def forward(self, n: torch.Tensor) -> torch.Tensor:
        return torch.zeros(int(n.item()), dtype=torch.uint8)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    """inference.grpc_service_pb2 / _pb2_grpc, generated now from the .proto."""
    out = tmp_path_factory.mktemp("stubs")
    plugin = subprocess.run(["which", "grpc_python_plugin"], capture_output=True, text=True,
                            check=True).stdout.strip()
    subprocess.run(["protoc", f"-I{ROOT}/proto", f"--python_out={out}", f"--grpc_out={out}",
                    f"--plugin=protoc-gen-grpc={plugin}",
                    f"{ROOT}/proto/inference/grpc_service.proto"], check=True)
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("inference.grpc_service_pb2")
        pb2_grpc = importlib.import_module("inference.grpc_service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return pb2, pb2_grpc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = make_repository(str(tmp_path_factory.mktemp("models")))
    write(r, "identity", Identity())
    write(r, "big", Big())
    return r


@pytest.fixture(scope="module")
def served(repo, tmp_path_factory):
    token = tmp_path_factory.mktemp("auth") / "token"
    token.write_text(TOKEN)
    d = Daemon("--model-repository", repo, "--auth-token-file", str(token))
    yield d
    assert d.alive(), "".join(d.log[-40:])
    assert d.stop() == 0


@pytest.fixture
def stub(served, pb):
    # What tritonclient's gRPC client sets by default.
    channel = grpc.insecure_channel(served.target, options=[
        ("grpc.max_send_message_length", INT32_MAX),
        ("grpc.max_receive_message_length", INT32_MAX)])
    yield pb[1].GRPCInferenceServiceStub(channel), [("authorization", f"Bearer {TOKEN}")]
    channel.close()


@pytest.fixture
def local(repo):
    return lambda name: torch.jit.load(os.path.join(repo, name, "model.pt"))


def infer_request(pb2, model, arrays, datatypes=None, outputs=(), parameters=None, **kwargs):
    req = pb2.ModelInferRequest(model_name=model, **kwargs)
    for name, a in arrays.items():
        req.inputs.add(name=name, datatype=(datatypes or {}).get(name) or DATATYPES[a.dtype.str],
                       shape=list(a.shape))
        req.raw_input_contents.append(np.ascontiguousarray(a).tobytes())
    for o in outputs:
        req.outputs.add(name=o)
    for k, v in (parameters or {}).items():
        setattr(req.parameters[k], PARAM_FIELDS[type(v)], v)
    return req


DATATYPES = {"|b1": "BOOL", "|u1": "UINT8", "<u2": "UINT16", "<u4": "UINT32", "<u8": "UINT64",
             "|i1": "INT8", "<i2": "INT16", "<i4": "INT32", "<i8": "INT64", "<f2": "FP16",
             "<f4": "FP32", "<f8": "FP64"}
PARAM_FIELDS = {bool: "bool_param", int: "int64_param", str: "string_param",
                float: "double_param"}


def outputs_of(pb2, response):
    """{name: ndarray} from raw_output_contents, as a third party reads them."""
    inv = {v: k for k, v in DATATYPES.items()}
    assert len(response.raw_output_contents) == len(response.outputs)
    return {o.name: np.frombuffer(raw, dtype=np.dtype(inv[o.datatype])).reshape(list(o.shape))
            if "npystream_handle" not in o.parameters else None  # kept: a handle, no bytes
            for o, raw in zip(response.outputs, response.raw_output_contents)}


def digits(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 1, 28, 28), dtype=np.float32)


# ---- health and metadata ----

def test_live_ready_and_metadata(stub, pb):
    s, md = stub
    pb2 = pb[0]
    # Probes answer without the token; everything else needs it.
    assert s.ServerLive(pb2.ServerLiveRequest()).live
    assert s.ServerReady(pb2.ServerReadyRequest()).ready
    with pytest.raises(grpc.RpcError) as e:
        s.ServerMetadata(pb2.ServerMetadataRequest())
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    meta = s.ServerMetadata(pb2.ServerMetadataRequest(), metadata=md)
    assert meta.name == "npystreamd" and "npystream_keep" in meta.extensions
    assert s.ModelReady(pb2.ModelReadyRequest(name="demo"), metadata=md).ready
    assert not s.ModelReady(pb2.ModelReadyRequest(name="nope"), metadata=md).ready
    assert not s.ModelReady(pb2.ModelReadyRequest(name="demo", version="7"), metadata=md).ready
    m = s.ModelMetadata(pb2.ModelMetadataRequest(name="demo"), metadata=md)
    assert m.name == "demo" and list(m.versions) == ["1"] and m.platform == "pytorch_libtorch"
    assert [(i.name, i.datatype, list(i.shape)) for i in m.inputs] == [("x", "FP32",
                                                                        [-1, 1, 28, 28])]
    assert [o.name for o in m.outputs] == ["logits"]
    with pytest.raises(grpc.RpcError) as e:
        s.ModelMetadata(pb2.ModelMetadataRequest(name="nope"), metadata=md)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in e.value.details()
    config = s.ModelConfig(pb2.ModelConfigRequest(name="demo"), metadata=md).config
    assert config.max_batch_size == 256 and config.input[0].data_type == pb2.TYPE_FP32
    assert list(config.input[0].dims) == [1, 28, 28]  # batch dimension left out
    assert config.instance_group[0].count == 2


# ---- ModelInfer ----

def test_model_infer_raw_equals_local_torch(stub, pb, local):
    s, md = stub
    pb2 = pb[0]
    x = digits(4)
    # tritonclient's default request parameters are accepted (and ignored).
    req = infer_request(pb2, "demo", {"x": x}, id="req-7",
                        parameters={"sequence_id": 0, "priority": 0, "timeout": 0})
    res = s.ModelInfer(req, metadata=md)
    assert res.model_name == "demo" and res.model_version == "1" and res.id == "req-7"
    got = outputs_of(pb2, res)
    with torch.no_grad():
        ref = local("demo")(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got["logits"], ref, rtol=1e-5, atol=1e-5)
    assert res.outputs[0].datatype == "FP32" and list(res.outputs[0].shape) == [4, 10]


@pytest.mark.parametrize("dtype", ["|b1", "|u1", "|i1", "<i2", "<i4", "<i8", "<f2", "<f4",
                                   "<f8"])
def test_every_datatype_round_trips_bit_exact(stub, pb, dtype):
    s, md = stub
    pb2 = pb[0]
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3, 5)) * 50).astype(np.dtype(dtype))
    res = s.ModelInfer(infer_request(pb2, "identity", {"x": a}), metadata=md)
    got = outputs_of(pb2, res)["output"]
    assert res.outputs[0].datatype == DATATYPES[dtype]
    assert got.dtype == a.dtype and np.array_equal(got, a)


def test_bf16_and_wide_unsigned_are_widened_exactly(stub, pb):
    s, md = stub
    pb2 = pb[0]
    values = np.array([1.0, -2.5, 3.140625, 1e30], np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    req = pb2.ModelInferRequest(model_name="identity")
    req.inputs.add(name="x", datatype="BF16", shape=[4])
    req.raw_input_contents.append(bf16.tobytes())
    got = outputs_of(pb2, s.ModelInfer(req, metadata=md))["output"]
    assert np.array_equal(got, (bf16.astype(np.uint32) << 16).view(np.float32))
    # LibTorch 1.13 has no uint16/32/64: they reach the model as int32/int64,
    # every value intact, and come back as what the model returns.
    for dtype, out in [("<u2", "INT32"), ("<u4", "INT64"), ("<u8", "INT64")]:
        a = np.array([0, 1, np.iinfo(dtype).max if dtype != "<u8" else 2**63 - 1], dtype)
        res = s.ModelInfer(infer_request(pb2, "identity", {"x": a}), metadata=md)
        assert res.outputs[0].datatype == out
        assert outputs_of(pb2, res)["output"].tolist() == a.tolist()
        req = pb2.ModelInferRequest(model_name="identity")
        t = req.inputs.add(name="x", datatype=DATATYPES[dtype], shape=[3])
        if dtype == "<u8":
            t.contents.uint64_contents.extend(a.tolist())
        else:
            t.contents.uint_contents.extend(a.tolist())
        assert outputs_of(pb2, s.ModelInfer(req, metadata=md))["output"].tolist() == a.tolist()
    with pytest.raises(grpc.RpcError) as e:
        s.ModelInfer(infer_request(pb2, "identity", {"x": np.array([2**63], "<u8")}), metadata=md)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input 'x'" in e.value.details() and "INT64_MAX" in e.value.details()


def test_typed_contents_equal_raw(stub, pb):
    s, md = stub
    pb2 = pb[0]
    x = digits(2, seed=3)
    raw = outputs_of(pb2, s.ModelInfer(infer_request(pb2, "demo", {"x": x}), metadata=md))
    req = pb2.ModelInferRequest(model_name="demo")
    t = req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    t.contents.fp32_contents.extend(x.ravel().tolist())
    typed = outputs_of(pb2, s.ModelInfer(req, metadata=md))
    assert np.array_equal(raw["logits"], typed["logits"])
    req = pb2.ModelInferRequest(model_name="identity")
    t = req.inputs.add(name="x", datatype="INT64", shape=[3])
    t.contents.int64_contents.extend([-(2**40), 0, 2**62])
    got = outputs_of(pb2, s.ModelInfer(req, metadata=md))["output"]
    assert got.tolist() == [-(2**40), 0, 2**62]


@pytest.mark.parametrize("mutate,code,needle", [
    (lambda r: setattr(r, "model_name", "nope"), "NOT_FOUND", "nope"),
    (lambda r: setattr(r, "model_version", "3"), "NOT_FOUND", "version"),
    (lambda r: setattr(r.inputs[0], "datatype", "FP64"), "INVALID_ARGUMENT", "input 'x'"),
    (lambda r: setattr(r.inputs[0], "datatype", "BYTES"), "INVALID_ARGUMENT", "BYTES"),
    (lambda r: setattr(r.inputs[0], "datatype", "FLOAT"), "INVALID_ARGUMENT", "'FLOAT'"),
    (lambda r: r.inputs[0].shape.__setitem__(2, 27), "INVALID_ARGUMENT", "[1, 1, 27, 28]"),
    (lambda r: setattr(r.inputs[0], "name", "y"), "INVALID_ARGUMENT", "no input 'y'"),
    (lambda r: r.raw_input_contents.__setitem__(0, b"\0" * 12), "INVALID_ARGUMENT", "holds 12"),
    (lambda r: r.raw_input_contents.append(b""), "INVALID_ARGUMENT", "2 entries for 1"),
    (lambda r: r.outputs.add(name="nothere"), "INVALID_ARGUMENT", "nothere"),
    (lambda r: r.parameters["npystream_capture"].__setattr__("int64_param", 3),
     "INVALID_ARGUMENT", "npystream_capture"),
])
def test_errors_name_the_defect(stub, pb, mutate, code, needle):
    s, md = stub
    pb2 = pb[0]
    req = infer_request(pb2, "demo", {"x": digits(1)})
    mutate(req)
    with pytest.raises(grpc.RpcError) as e:
        s.ModelInfer(req, metadata=md)
    assert e.value.code() == getattr(grpc.StatusCode, code), e.value.details()
    assert needle in e.value.details()


# ---- npystream's extensions ----

def test_keep_and_capture_extensions(served, stub, pb, local):
    s, md = stub
    pb2 = pb[0]
    x = digits(3, seed=9)
    req = infer_request(pb2, "demo", {"x": x}, parameters={"npystream_capture": "conv1"})
    inline = outputs_of(pb2, s.ModelInfer(req, metadata=md))
    with torch.no_grad():
        ref_conv1 = local("demo").conv1(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(inline["conv1"], ref_conv1, rtol=1e-5, atol=1e-5)
    # Keep logits resident: a handle instead of bytes, fetched as .npy.
    req = infer_request(pb2, "demo", {"x": x}, outputs=["logits", "conv1"],
                        parameters={"npystream_capture": "conv1", "npystream_ttl": 60})
    req.outputs[0].parameters["npystream_keep"].bool_param = True
    res = s.ModelInfer(req, metadata=md)
    assert [o.name for o in res.outputs] == ["logits", "conv1"]
    assert res.raw_output_contents[0] == b""
    handle = res.outputs[0].parameters["npystream_handle"].string_param
    with served.client(token=TOKEN) as c:
        kept = c.fetch(handle)
        assert c.stat(handle).expires_unix_ms > 0
    assert np.array_equal(kept, inline["logits"])
    np.testing.assert_allclose(outputs_of(pb2, res)["conv1"], ref_conv1, rtol=1e-5, atol=1e-5)
    # Requested outputs filter: only conv1.
    req = infer_request(pb2, "demo", {"x": x}, outputs=["conv1"],
                        parameters={"npystream_capture": "conv1"})
    assert [o.name for o in s.ModelInfer(req, metadata=md).outputs] == ["conv1"]


def test_output_over_2gib_is_refused_pointing_at_keep(stub, pb):
    s, md = stub
    pb2 = pb[0]
    n = np.array(2**31 + 16, np.int64)
    with pytest.raises(grpc.RpcError) as e:
        s.ModelInfer(infer_request(pb2, "big", {"n": n}), metadata=md)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "npystream_keep" in e.value.details() and str(2**31 + 16) in e.value.details()
    req = infer_request(pb2, "big", {"n": n}, outputs=["output"])
    req.outputs[0].parameters["npystream_keep"].bool_param = True
    res = s.ModelInfer(req, metadata=md)
    assert list(res.outputs[0].shape) == [2**31 + 16]
    assert res.outputs[0].parameters["npystream_handle"].string_param


# ---- streaming, statistics, repository ----

def test_model_stream_infer_answers_in_order(stub, pb, local):
    s, md = stub
    pb2 = pb[0]
    xs = [digits(1, seed=i) for i in range(3)]
    reqs = [infer_request(pb2, "demo", {"x": x}, id=f"r{i}") for i, x in enumerate(xs)]
    bad = infer_request(pb2, "demo", {"x": xs[0]}, id="bad")
    bad.inputs[0].datatype = "INT8"
    responses = list(s.ModelStreamInfer(iter([reqs[0], bad, reqs[1], reqs[2]]), metadata=md))
    assert [r.infer_response.id for r in responses] == ["r0", "bad", "r1", "r2"]
    assert "input 'x'" in responses[1].error_message
    for r, x in zip([responses[0], responses[2], responses[3]], xs):
        assert r.error_message == ""
        with torch.no_grad():
            ref = local("demo")(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(outputs_of(pb2, r.infer_response)["logits"], ref,
                                   rtol=1e-5, atol=1e-5)


def test_statistics_and_repository(stub, pb, repo):
    s, md = stub
    pb2 = pb[0]
    before = s.ModelStatistics(pb2.ModelStatisticsRequest(name="two"), metadata=md).model_stats[0]
    a = np.ones((5, 3))
    s.ModelInfer(infer_request(pb2, "two", {"a": a, "b": a}), metadata=md)
    stats = s.ModelStatistics(pb2.ModelStatisticsRequest(name="two"), metadata=md).model_stats[0]
    assert stats.inference_count == before.inference_count + 5
    assert stats.execution_count == before.execution_count + 1
    assert stats.inference_stats.success.count == before.inference_stats.success.count + 1
    assert stats.last_inference > 0
    index = s.RepositoryIndex(pb2.RepositoryIndexRequest(), metadata=md)
    states = {m.name: (m.state, m.reason) for m in index.models}
    assert states["demo"] == ("READY", "") and states["broken"][0] == "UNAVAILABLE"
    ready = s.RepositoryIndex(pb2.RepositoryIndexRequest(ready=True), metadata=md)
    assert "broken" not in {m.name for m in ready.models}
    s.RepositoryModelUnload(pb2.RepositoryModelUnloadRequest(model_name="transpose"), metadata=md)
    assert not s.ModelReady(pb2.ModelReadyRequest(name="transpose"), metadata=md).ready
    s.RepositoryModelLoad(pb2.RepositoryModelLoadRequest(model_name="transpose"), metadata=md)
    assert s.ModelReady(pb2.ModelReadyRequest(name="transpose"), metadata=md).ready
    with pytest.raises(grpc.RpcError) as e:
        s.RepositoryModelLoad(pb2.RepositoryModelLoadRequest(model_name="broken"), metadata=md)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "broken" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        s.RepositoryModelUnload(pb2.RepositoryModelUnloadRequest(model_name="nope"), metadata=md)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_metrics_count_protocol_calls(served, stub, pb):
    s, md = stub
    pb2 = pb[0]

    def count():
        return sum(v for k, v in metrics(served).items()
                   if k.startswith("npystream_rpc_requests_total{") and 'method="ModelInfer"' in k)

    before = count()
    for _ in range(3):
        s.ModelInfer(infer_request(pb2, "demo", {"x": digits(1)}), metadata=md)
    assert count() == before + 3


# ---- the same over REST (admin port), as curl would send it ----

def rest(served, path, body=None, headers=None, token=TOKEN, method=None):
    return http(served, path, headers=headers, data=body, method=method, token=token)


def test_rest_health_and_metadata(served):
    import json
    assert rest(served, "/v2/health/live", token=None)[0] == 200
    assert rest(served, "/v2/health/ready", token=None)[0] == 200
    assert rest(served, "/v2", token=None)[0] == 401
    status, _, body = rest(served, "/v2")
    assert status == 200 and json.loads(body)["name"] == "npystreamd"
    status, _, body = rest(served, "/v2/models/demo")
    meta = json.loads(body)
    assert status == 200 and meta["platform"] == "pytorch_libtorch"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 1, 28, 28]}]
    assert rest(served, "/v2/models/demo/ready")[0] == 200
    assert rest(served, "/v2/models/demo/versions/1/ready")[0] == 200
    status, _, body = rest(served, "/v2/models/nope/ready")
    assert status == 404 and "nope" in json.loads(body)["error"]
    assert rest(served, "/v2/models/demo/versions/2")[0] == 404


def test_rest_infer_json_and_binary_equal_torch(served, local):
    import json
    x = digits(2, seed=11)
    with torch.no_grad():
        ref = local("demo")(torch.from_numpy(x)).numpy()
        ref_conv1 = local("demo").conv1(torch.from_numpy(x)).numpy()
    # JSON in, JSON out (tritonclient's parameters included).
    doc = {"id": "j1", "parameters": {"sequence_id": 0, "priority": 0},
           "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                       "data": x.tolist()}]}
    status, _, body = rest(served, "/v2/models/demo/infer", json.dumps(doc).encode(),
                           {"Content-Type": "application/json"})
    assert status == 200, body
    reply = json.loads(body)
    assert reply["id"] == "j1" and reply["model_version"] == "1"
    (out,) = reply["outputs"]
    assert out["name"] == "logits" and out["datatype"] == "FP32" and out["shape"] == [2, 10]
    np.testing.assert_allclose(np.array(out["data"], np.float32).reshape(2, 10), ref,
                               rtol=1e-5, atol=1e-5)
    # The binary-data extension both ways, plus capture.
    head = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": True}},
                    {"name": "conv1", "parameters": {"binary_data": True}}],
        "parameters": {"npystream_capture": "conv1"}}).encode()
    status, headers, body = rest(served, "/v2/models/demo/infer", head + x.tobytes(),
                                 {"Inference-Header-Content-Length": str(len(head)),
                                  "Content-Type": "application/octet-stream"})
    assert status == 200, body
    n = int(headers["Inference-Header-Content-Length"])
    reply = json.loads(body[:n])
    offset, got = n, {}
    for o in reply["outputs"]:
        size = o["parameters"]["binary_data_size"]
        got[o["name"]] = np.frombuffer(body[offset:offset + size], np.float32).reshape(o["shape"])
        offset += size
    assert offset == len(body)
    np.testing.assert_allclose(got["logits"], ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got["conv1"], ref_conv1, rtol=1e-5, atol=1e-5)
    # Keep: a handle the npystream client fetches.
    doc["outputs"] = [{"name": "logits", "parameters": {"npystream_keep": True}}]
    status, _, body = rest(served, "/v2/models/demo/infer", json.dumps(doc).encode())
    handle = json.loads(body)["outputs"][0]["parameters"]["npystream_handle"]
    with served.client(token=TOKEN) as c:
        np.testing.assert_allclose(c.fetch(handle), ref, rtol=1e-5, atol=1e-5)


def test_rest_errors(served):
    import json
    cases = [
        ("/v2/models/demo/infer", b"{", 400, "not a JSON object"),
        ("/v2/models/nope/infer", b'{"inputs": []}', 404, "nope"),
        ("/v2/models/demo/infer",
         b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 28, 28], "data": [1]}]}',
         400, "data holds 1 values"),
        ("/v2/models/demo/infer",
         b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1, 2, 2], '
         b'"data": [1, 2, 3, 4]}]}', 400, "input 'x': shape [1, 1, 2, 2]"),
        # oip_rest_fuzz's finding, through the live port: a boolean in numeric
        # data made the JSON library throw out of the parser (it would have
        # aborted the daemon); now a 400 naming it.
        ("/v2/models/demo/infer",
         b'{"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [true]}]}',
         400, "data holds a boolean (true) for UINT8"),
        # binary_data_size held to the shape (the other oip_rest_fuzz finding).
        ("/v2/models/demo/infer",
         b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 3], '
         b'"parameters": {"binary_data_size": 24}}]}', 400, "binary_data_size"),
    ]
    for path, body, code, needle in cases:
        status, _, reply = rest(served, path, body)
        assert status == code and needle in json.loads(reply)["error"], (path, reply)
    status, headers, _ = rest(served, "/v2/models/demo/infer")
    assert status == 405 and headers["Allow"] == "POST"


def test_rest_every_datatype_json_and_binary(served):
    import json
    inv = {v: k for k, v in DATATYPES.items()}
    for dtype in ["|b1", "|u1", "|i1", "<i2", "<i4", "<i8", "<u2", "<u4", "<u8", "<f2", "<f4",
                  "<f8"]:
        a = np.array([0, 1, 100, 7], np.dtype(dtype)) if dtype != "|b1" else np.array(
            [True, False, True, True])
        name = DATATYPES[dtype]
        binary_only = dtype == "<f2"  # FP16 has no JSON form
        inputs = [{"name": "x", "datatype": name, "shape": [4]}]
        if binary_only:
            inputs[0]["parameters"] = {"binary_data_size": a.nbytes}
            head = json.dumps({"inputs": inputs,
                               "parameters": {"binary_data_output": True}}).encode()
            status, headers, body = rest(served, "/v2/models/identity/infer",
                                         head + a.tobytes(),
                                         {"Inference-Header-Content-Length": str(len(head))})
            n = int(headers["Inference-Header-Content-Length"])
            out = json.loads(body[:n])["outputs"][0]
            got = np.frombuffer(body[n:], np.dtype(inv[out["datatype"]]))
        else:
            inputs[0]["data"] = a.tolist()
            status, _, body = rest(served, "/v2/models/identity/infer",
                                   json.dumps({"inputs": inputs}).encode())
            assert status == 200, (dtype, body)
            out = json.loads(body)["outputs"][0]
            got = np.array(out["data"])
        assert status == 200, (dtype, body)
        assert got.tolist() == a.tolist(), (dtype, out)
