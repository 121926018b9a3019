"""The request messages both clients (npystream.Client and
npystream.aio.Client) send: built in one place so the two cannot drift."""
import io
from typing import Any, Iterable, Iterator, Mapping, Optional

import numpy as np
import numpy.typing as npt

from . import _wire
from ._assembly import npy_bytes
from ._errors import InvalidArgumentError
from ._info import TensorInfo
from ._types import Array, InferInput, Progress, Views
from ._view import ViewFields, is_whole, view_fields
from .v1 import inference_pb2 as ipb
from .v1 import tensors_pb2 as pb

TENSORS_METHODS = "/npystream.v1.Tensors/"  # + "Fetch", "Put", ...: raw method paths
INFERENCE_METHODS = "/npystream.v1.Inference/"
_npy_format: Any = np.lib.format  # (numpy ships these untyped)
PUT_CHUNK = 1 << 20  # data bytes per PutRequest on the grpcio path


def fetch_request(handle: str, chunk_bytes: int, view: ViewFields) -> Any:
    """A FetchRequest; `view` is view_fields(...) of the caller's keywords."""
    request = pb.FetchRequest(handle=handle, chunk_bytes=chunk_bytes)
    if not is_whole(view):
        request.view.CopyFrom(pb.TensorView(index=view[0], dtype=view[1], pool=view[2]))
    return request


def storable(array: npt.ArrayLike) -> Array:
    """`array` as an ndarray the daemon can store (little-endian);
    InvalidArgumentError for object and structured dtypes."""
    arr = np.asarray(array)
    if arr.dtype.hasobject or arr.dtype.fields is not None:
        raise InvalidArgumentError(f"dtype {arr.dtype} cannot be stored")
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return arr


class PutStream:
    """One Put of a storable, C-contiguous `arr` (made so here): the
    PutHeader, the .npy header bytes and the payload as a memoryview."""

    def __init__(self, arr: Array, name: Optional[str], device: Optional[str],
                 ttl: Optional[float]) -> None:
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)
        header = io.BytesIO()
        _npy_format.write_array_header_1_0(header, _npy_format.header_data_from_array_1_0(arr))
        self.npy_header = header.getvalue()
        self.head = pb.PutHeader(name=name or "", device=device or "", ttl_seconds=int(ttl or 0))
        self.payload = (arr.reshape(-1).view(np.uint8).data if arr.size
                        else memoryview(b""))
        self.total = len(self.npy_header) + self.payload.nbytes

    def messages(self, progress: Progress = None) -> Iterator[bytes]:
        """The raw PutRequest messages, calling progress(done, total)."""
        yield pb.PutRequest(header=self.head).SerializeToString()
        yield _wire.put_data(self.npy_header)
        done = len(self.npy_header)
        if progress and not self.payload.nbytes:
            progress(done, self.total)  # a zero-size array: the header is all
        for i in range(0, self.payload.nbytes, PUT_CHUNK):
            piece = self.payload[i:i + PUT_CHUNK]
            yield _wire.put_data(piece)
            done += piece.nbytes
            if progress:
                progress(done, self.total)


def infer_request(model: str, inputs: Mapping[str, InferInput], outputs: Optional[Iterable[str]],
                  capture: Optional[Iterable[str]], fetch: bool, ttl: Optional[float],
                  inline_max_bytes: int) -> Any:
    """An InferRequest: ndarrays inline as .npy, str/TensorInfo as handles."""
    request = ipb.InferRequest(model=model, outputs=list(outputs or []),
                               capture=list(capture or []), ttl_seconds=int(ttl or 0),
                               inline_max_bytes=int(inline_max_bytes) if fetch else 0)
    for name, value in inputs.items():
        item = request.inputs.add(name=name)
        if isinstance(value, TensorInfo):
            item.handle = value.handle
        elif isinstance(value, str):
            item.handle = value
        else:
            item.npy = npy_bytes(value)
    return request


def subscribe_request(model: str, layers: Iterable[str], views: Views) -> Any:
    """A SubscribeRequest; views: {layer: dict(index=, dtype=, pool=)}."""
    request = ipb.SubscribeRequest(model=model, layers=list(layers))
    for layer, view in (views or {}).items():
        index, descr, pool = view_fields(**view)
        request.views[layer].CopyFrom(pb.TensorView(index=index, dtype=descr, pool=pool))
    return request
