#!/usr/bin/python3
"""The usual way, as a peer for `make bench`: a Python gRPC server (Debian's
python3-grpcio) holding torch tensors that answers a fetch with
`tensor.cpu().numpy().tobytes()` in chunks under the 4 MiB message limit
(/peer.Usual/ToBytes) or with `np.save` into a BytesIO (/peer.Usual/NpSave).
The first message is a JSON header {"dtype", "shape"}.

usage: usual_server.py  (prints "port N"; tensors are created by /peer.Usual/Make)
"""
import io
import json
import sys
from concurrent import futures

import grpc
import numpy as np
import torch

CHUNK = 1 << 20
TENSORS = {}


def chunks(data):
    view = memoryview(data)
    for i in range(0, len(view), CHUNK):
        yield bytes(view[i:i + CHUNK])


def to_bytes(request, context):
    t = TENSORS[request.decode()]
    arr = t.cpu().numpy()
    yield json.dumps({"dtype": arr.dtype.str, "shape": list(arr.shape)}).encode()
    yield from chunks(arr.tobytes())


def np_save(request, context):
    t = TENSORS[request.decode()]
    buf = io.BytesIO()
    np.save(buf, t.cpu().numpy())
    yield b"{}"
    yield from chunks(buf.getvalue())


def make(request, context):
    name, nbytes = request.decode().split(":")
    TENSORS[name] = torch.arange(int(nbytes) // 4, dtype=torch.float32)
    return b"ok"


MODELS = {}


def infer(request, context):
    """The usual inference server: np.load the input, run the TorchScript
    model, answer with output.cpu().numpy().tobytes() after a JSON header."""
    path, _, npy = request.partition(b"\n")
    model = MODELS.get(path)
    if model is None:
        model = MODELS[path] = torch.jit.load(path.decode()).eval()
    x = torch.from_numpy(np.load(io.BytesIO(npy)))
    with torch.no_grad():
        out = model(x)
    arr = out.cpu().numpy()
    yield json.dumps({"dtype": arr.dtype.str, "shape": list(arr.shape)}).encode()
    yield from chunks(arr.tobytes())


def echo(request, context):
    return request


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16),
                         options=[("grpc.max_receive_message_length", 64 << 20),
                                  ("grpc.max_send_message_length", 64 << 20)])
    handlers = {
        "ToBytes": grpc.unary_stream_rpc_method_handler(to_bytes),
        "NpSave": grpc.unary_stream_rpc_method_handler(np_save),
        "Make": grpc.unary_unary_rpc_method_handler(make),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
        "Infer": grpc.unary_stream_rpc_method_handler(infer),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("peer.Usual", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"port {port}", flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
