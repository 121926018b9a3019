"""Array assembly: raw FetchResponse messages into one ndarray, and arrays
into .npy bytes."""
import io
import os
from typing import Any, BinaryIO, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import _wire
from ._errors import Error, InvalidArgumentError
from ._info import TensorInfo
from ._malloc import populate_async
from ._types import Array, Progress
from ._wire import BytesLike
from .v1 import tensors_pb2 as pb

# Fresh arrays this large are faulted in on a helper thread while data arrives.
_POPULATE_MIN_BYTES = 8 << 20
_npy_format: Any = np.lib.format  # (numpy ships these untyped)


class Assembler:
    """Builds one ndarray from raw FetchResponse messages: the first carries
    the info, then data fields are copied once into a preallocated array."""

    def __init__(self, out: Optional[Array] = None, populate: bool = True) -> None:
        # populate: fault a large array's pages in on a helper thread. Its
        # one long madvise holds the process's mmap lock, which can stall
        # any thread's page faults or mmap for the whole time: fine for a
        # blocking call, not for an event loop.
        self.populate = populate
        self.out = out
        self.info: Any = None  # the TensorInfo proto, once received
        self.arr: Optional[Array] = None
        self.flat: Any = None  # the array's bytes (uint8, 1-D)
        self.header = bytearray()
        self.header_len = 0
        self.pos = 0
        self.total = 0

    @property
    def complete(self) -> bool:
        return self.info is not None and self.pos == self.total

    def start(self, info_bytes: bytes) -> None:
        """Reads the tensor's info and allocates (or checks `out` as) the array."""
        self.info = pb.TensorInfo.FromString(info_bytes)
        shape, dtype = tuple(self.info.shape), np.dtype(self.info.dtype)
        if self.out is None:
            self.arr = np.empty(shape, dtype=dtype)
            if self.populate and self.arr.nbytes >= _POPULATE_MIN_BYTES:
                populate_async(self.arr)
        elif (not isinstance(self.out, np.ndarray) or self.out.shape != shape
              or self.out.dtype != dtype or not self.out.flags.c_contiguous
              or not self.out.flags.writeable):
            got = (f"{self.out.dtype} {self.out.shape}" if isinstance(self.out, np.ndarray)
                   else type(self.out).__name__)
            raise InvalidArgumentError(
                f"out= must be a writeable C-contiguous {dtype} array of shape {shape}, "
                f"got {got}")
        else:
            self.arr = self.out
        self.flat = self.arr.reshape(-1).view(np.uint8)
        self.header_len = self.info.npy_bytes - self.info.nbytes
        self.total = self.info.npy_bytes

    def feed(self, raw: BytesLike) -> bool:
        """Takes one serialized FetchResponse; True (for callers that report
        progress per message)."""
        info_bytes, start, length = _wire.split_fetch_response(raw)
        if info_bytes is not None:
            self.start(info_bytes)
        elif self.info is None:
            raise Error("the server sent data before the tensor's info")
        data = memoryview(raw)[start:start + length]
        if self.pos < self.header_len:
            take = min(self.header_len - self.pos, length)
            self.header += data[:take]
            data = data[take:]
            self.pos += take
        n = data.nbytes
        if n:
            off = self.pos - self.header_len
            if off + n > self.flat.nbytes:
                raise Error("the server sent more bytes than the tensor holds")
            self.flat[off:off + n] = np.frombuffer(data, dtype=np.uint8)
            self.pos += n
        return True

    def finish(self) -> Tuple[TensorInfo, Array]:
        """The TensorInfo and the filled array; Error when the header the
        server sent disagrees with the info."""
        if self.arr is None:
            raise Error("the server sent no tensor info")
        check_header(bytes(self.header), self.arr)
        return TensorInfo.from_proto(self.info), self.arr


class NpyWriter:
    """Writes the .npy bytes of raw FetchResponse messages to a binary file
    as they arrive (nothing assembled), calling progress(done, total)."""

    def __init__(self, f: BinaryIO, progress: Progress = None) -> None:
        self.f = f
        self.progress = progress
        self.info: Any = None
        self.done = 0

    def feed(self, raw: BytesLike) -> None:
        info_bytes, start, length = _wire.split_fetch_response(raw)
        if info_bytes is not None:
            self.info = pb.TensorInfo.FromString(info_bytes)
        self.f.write(memoryview(raw)[start:start + length])
        self.done += length
        if self.progress and self.info is not None:
            self.progress(self.done, self.info.npy_bytes)

    def finish(self, handle: str) -> TensorInfo:
        """The TensorInfo of what was written; Error when the stream ended short."""
        if self.info is None or self.done != self.info.npy_bytes:
            raise Error(f"fetch of {handle!r} ended after {self.done} bytes")
        return TensorInfo.from_proto(self.info)


def open_output(path_or_file: Union[str, "os.PathLike[str]", BinaryIO]) -> Tuple[BinaryIO, bool]:
    """(the binary file to write, whether the caller opened it here and must
    close it): a path is opened for writing, a file object used as it is."""
    if isinstance(path_or_file, (str, os.PathLike)):
        return open(path_or_file, "wb"), True
    return path_or_file, False


def npy_bytes(array: npt.ArrayLike) -> bytes:
    """The .npy bytes np.save writes for `array`."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def array_from_npy(npy: BytesLike, info: Any) -> Array:
    """The ndarray in `npy`, the .npy bytes the server sent inline with
    `info` (a TensorInfo proto): equal to np.load, without its header parse."""
    arr = np.empty(tuple(info.shape), dtype=np.dtype(info.dtype))
    header_len = info.npy_bytes - info.nbytes
    if len(npy) != info.npy_bytes or arr.nbytes != info.nbytes or header_len <= 0:
        raise Error(f"the server sent {len(npy)} .npy bytes for a tensor of {info.npy_bytes} "
                    f"({info.dtype} {tuple(info.shape)}, {info.nbytes} bytes of data)")
    check_header(bytes(memoryview(npy)[:header_len]), arr)
    if arr.nbytes:
        arr.reshape(-1).view(np.uint8)[:] = np.frombuffer(npy, np.uint8, offset=header_len)
    return arr


def _header_of(arr: Array) -> bytes:
    """The header np.save writes for the C-order `arr`."""
    buf = io.BytesIO()
    _npy_format._write_array_header(  # what np.save calls
        buf, {"descr": _npy_format.dtype_to_descr(arr.dtype), "fortran_order": False,
              "shape": arr.shape})
    return buf.getvalue()


def check_header(header: bytes, arr: Array) -> None:
    """The header the server sent must describe the array we built."""
    # The server writes what np.save does: compare bytes (~3 us) before
    # parsing (~60 us), which any other valid header still gets.
    if header == _header_of(arr):
        return
    f = io.BytesIO(header)
    try:
        version = _npy_format.read_magic(f)
        shape, fortran, dtype = _npy_format._read_array_header(f, version)
    except Exception as err:  # numpy raises ValueError and others
        raise Error(f"the server sent a malformed .npy header: {err}") from None
    if tuple(shape) != arr.shape or dtype != arr.dtype or fortran:
        raise Error(f"the .npy header ({dtype}, {shape}) disagrees with the "
                    f"tensor info ({arr.dtype}, {arr.shape})")
