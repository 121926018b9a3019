"""Client: the Python API of npystream."""
import io
import os

import grpc
import numpy as np

from . import _wire
from ._errors import Error, InvalidArgumentError, from_rpc_error
from ._info import TensorInfo
from .v1 import tensors_pb2 as pb
from .v1 import tensors_pb2_grpc as pb_grpc

_PUT_CHUNK = 1 << 20
_SERVICE = "/npystream.v1.Tensors/"


class Client:
    """A connection to one npystreamd. Thread-safe; reuse it.

    target: "host:port". token: sent as `authorization: Bearer <token>`
    (default: $NPYSTREAM_TOKEN). root_certificates: PEM bytes to use TLS.
    """

    def __init__(self, target="127.0.0.1:50051", *, token=None,
                 root_certificates=None, timeout=None):
        options = [("grpc.max_receive_message_length", 64 << 20),
                   ("grpc.max_send_message_length", 64 << 20)]
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(target, creds, options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        token = token if token is not None else os.environ.get("NPYSTREAM_TOKEN")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self._stub = pb_grpc.TensorsStub(self._channel)
        # Raw methods: bytes in and out, framed by _wire.
        self._fetch_raw = self._channel.unary_stream(
            _SERVICE + "Fetch", request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=None)
        self._put_raw = self._channel.stream_unary(
            _SERVICE + "Put", request_serializer=None,
            response_deserializer=pb.TensorInfo.FromString)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- tensors ---------------------------------------------------------

    def put(self, array, name=None, device=None, ttl=None, progress=None):
        """Stores `array` on the server; returns its TensorInfo.

        name: becomes the handle (AlreadyExistsError if taken). device:
        "auto", "cpu" or "cuda:N". ttl: seconds until it expires.
        progress: optional callable(done_bytes, total_bytes).
        """
        arr = np.asarray(array)
        if arr.dtype.hasobject or arr.dtype.fields is not None:
            raise InvalidArgumentError(f"dtype {arr.dtype} cannot be stored")
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            header, np.lib.format.header_data_from_array_1_0(arr))
        head = pb.PutHeader(name=name or "", device=device or "",
                            ttl_seconds=int(ttl or 0))
        payload = memoryview(arr.reshape(-1).view(np.uint8)) if arr.size else memoryview(b"")
        total = len(header.getvalue()) + payload.nbytes

        def requests():
            yield pb.PutRequest(header=head).SerializeToString()
            yield _wire.put_data(header.getvalue())
            done = len(header.getvalue())
            for i in range(0, payload.nbytes, _PUT_CHUNK):
                piece = payload[i:i + _PUT_CHUNK]
                yield _wire.put_data(piece)
                done += piece.nbytes
                if progress:
                    progress(done, total)

        info = self._call(self._put_raw, requests())
        return TensorInfo.from_proto(info)

    def fetch(self, handle, progress=None, chunk_bytes=0):
        """Returns the tensor as an ndarray, equal to np.load of its .npy.

        The payload is copied once, from each received message into one
        preallocated array. progress: optional callable(done, total).
        """
        arr, flat, header = None, None, bytearray()
        info = None
        pos = 0
        header_len = 0
        try:
            call = self._fetch_raw(pb.FetchRequest(handle=handle, chunk_bytes=chunk_bytes),
                                   metadata=self._metadata, timeout=self._timeout)
            for raw in call:
                info_bytes, start, length = _wire.split_fetch_response(raw)
                if info_bytes is not None:
                    info = pb.TensorInfo.FromString(info_bytes)
                    arr = np.empty(tuple(info.shape), dtype=np.dtype(info.dtype))
                    flat = arr.reshape(-1).view(np.uint8)
                    header_len = info.npy_bytes - info.nbytes
                elif info is None:
                    raise Error("the server sent data before the tensor's info")
                data = memoryview(raw)[start:start + length]
                if pos < header_len:
                    take = min(header_len - pos, length)
                    header += data[:take]
                    data = data[take:]
                    pos += take
                n = data.nbytes
                if n:
                    off = pos - header_len
                    if off + n > flat.nbytes:
                        raise Error("the server sent more bytes than the tensor holds")
                    flat[off:off + n] = np.frombuffer(data, dtype=np.uint8)
                    pos += n
                if progress:
                    progress(pos, info.npy_bytes)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        if info is None or pos != info.npy_bytes:
            raise Error(f"fetch of {handle!r} ended after {pos} bytes")
        _check_header(bytes(header), arr)
        return arr

    def fetch_to(self, handle, path_or_file, progress=None, chunk_bytes=0):
        """Writes the tensor's .npy bytes to a path or binary file object as
        they arrive (nothing is assembled in memory); returns its TensorInfo."""
        own = isinstance(path_or_file, (str, os.PathLike))
        f = open(path_or_file, "wb") if own else path_or_file
        info, done = None, 0
        try:
            call = self._fetch_raw(pb.FetchRequest(handle=handle, chunk_bytes=chunk_bytes),
                                   metadata=self._metadata, timeout=self._timeout)
            for raw in call:
                info_bytes, start, length = _wire.split_fetch_response(raw)
                if info_bytes is not None:
                    info = pb.TensorInfo.FromString(info_bytes)
                f.write(memoryview(raw)[start:start + length])
                done += length
                if progress and info is not None:
                    progress(done, info.npy_bytes)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        finally:
            if own:
                f.close()
        if info is None or done != info.npy_bytes:
            raise Error(f"fetch of {handle!r} ended after {done} bytes")
        return TensorInfo.from_proto(info)

    def stat(self, handle):
        """TensorInfo of `handle`; NotFoundError when unknown."""
        return TensorInfo.from_proto(self._call(self._stub.Stat, pb.TensorRef(handle=handle)))

    def list(self):
        """TensorInfo of every stored tensor, oldest first."""
        return [TensorInfo.from_proto(t)
                for t in self._call(self._stub.List, pb.ListRequest()).tensors]

    def release(self, handle):
        """Drops `handle`; True once released. NotFoundError when unknown."""
        return self._call(self._stub.Release, pb.TensorRef(handle=handle)).released

    # -- internals -------------------------------------------------------

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None


def _check_header(header, arr):
    """The header the server sent must describe the array we built."""
    f = io.BytesIO(header)
    try:
        version = np.lib.format.read_magic(f)
        shape, fortran, dtype = np.lib.format._read_array_header(f, version)
    except Exception as err:  # numpy raises ValueError and others
        raise Error(f"the server sent a malformed .npy header: {err}") from None
    if tuple(shape) != arr.shape or dtype != arr.dtype or fortran:
        raise Error(f"the .npy header ({dtype}, {shape}) disagrees with the "
                    f"tensor info ({arr.dtype}, {arr.shape})")
