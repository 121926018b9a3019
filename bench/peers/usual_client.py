"""The usual client: join the chunks, then np.frombuffer(...).reshape(...)
(or np.load for the np.save variant)."""
import io
import json

import grpc
import numpy as np

OPTIONS = [("grpc.max_receive_message_length", 64 << 20)]


class UsualClient:
    def __init__(self, target):
        self.channel = grpc.insecure_channel(target, options=OPTIONS)
        self._tobytes = self.channel.unary_stream("/peer.Usual/ToBytes")
        self._npsave = self.channel.unary_stream("/peer.Usual/NpSave")
        self.make = self.channel.unary_unary("/peer.Usual/Make")
        self._infer = self.channel.unary_stream("/peer.Usual/Infer")

    def fetch_tobytes(self, name):
        parts = list(self._tobytes(name.encode()))
        header = json.loads(parts[0])
        data = b"".join(parts[1:])
        return np.frombuffer(data, dtype=header["dtype"]).reshape(header["shape"])

    def fetch_npsave(self, name):
        parts = list(self._npsave(name.encode()))
        return np.load(io.BytesIO(b"".join(parts[1:])))

    def infer(self, model_path, x):
        buf = io.BytesIO()
        np.save(buf, x)
        parts = list(self._infer(model_path.encode() + b"\n" + buf.getvalue()))
        header = json.loads(parts[0])
        return np.frombuffer(b"".join(parts[1:]), dtype=header["dtype"]).reshape(header["shape"])
