"""Transport choice: the grpcio channel every call can use, and the C++ paths
(npystream._native) for the fetches and puts they can serve."""
import os
import threading
from typing import Any, Callable, Optional

import grpc

from . import _wire
from ._assembly import Assembler
from ._errors import from_status
from ._types import Array, Pem, Progress
from ._view import ViewFields
from .v1 import tensors_pb2 as pb

try:  # the C++ fetch path, built with the package when python3-dev is present
    from . import _native  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - grpcio alone still works
    _native = None


def open_channel(target: str, root_certificates: Optional[bytes] = None,
                 private_key: Optional[bytes] = None, certificate_chain: Optional[bytes] = None,
                 gzip: bool = False) -> Any:
    """A grpcio channel with npystream's streaming settings; TLS when
    root_certificates is given, mutual TLS with a client key and chain;
    requests gzip-compressed with `gzip`."""
    compression = grpc.Compression.Gzip if gzip else None
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                             private_key=private_key,
                                             certificate_chain=certificate_chain)
        return grpc.secure_channel(target, creds, options=_wire.CHANNEL_OPTIONS,
                                   compression=compression)
    return grpc.insecure_channel(target, options=_wire.CHANNEL_OPTIONS, compression=compression)


class NativeTransport:
    """Fetches and puts through the C++ client, the GIL released. Fetch: one
    copy from gRPC's slices into the array (none over the plain fetch socket:
    received in place). Put: no thread per call (grpcio
    starts one to read each client-streaming call's requests). Its channel
    opens at the first call. Thread-safe."""

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self._make_client = make_client
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, target: str, token: Optional[str], root_certificates: Pem, private_key: Pem,
               certificate_chain: Pem) -> Optional["NativeTransport"]:
        """A transport, or None where only grpcio can serve: the extension is
        missing, NPYSTREAM_NATIVE=0, or client certificates (mTLS) are used.
        On a unix:// target its fetches take the daemon's plain fetch socket
        (see proto/wire/socket_fetch.h) unless NPYSTREAM_PLAIN_FETCH=0."""
        if (_native is None or private_key is not None or certificate_chain is not None
                or os.environ.get("NPYSTREAM_NATIVE", "1") == "0"):
            return None
        roots = (root_certificates.decode() if isinstance(root_certificates, bytes)
                 else root_certificates)
        plain = os.environ.get("NPYSTREAM_PLAIN_FETCH", "1") != "0"
        return cls(lambda: _native.Client(target, token or None, roots, plain))

    def close(self) -> None:
        """Drops the C++ client: its channel and kept plain fetch connections
        close once no call is using it. A later call connects again."""
        with self._lock:
            self._client = None

    def _connected(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def put(self, name: str, device: str, ttl_seconds: int, npy_header: bytes,
            payload: memoryview) -> Any:
        """Streams a Put of `npy_header` then `payload` (a C-contiguous
        buffer); returns the TensorInfo proto."""
        code, message, info = self._connected().put(name, device, ttl_seconds, npy_header,
                                                     payload)
        if code:
            raise from_status(code, message)
        return pb.TensorInfo.FromString(info)

    def fetch(self, handle: str, chunk_bytes: int, out: Optional[Array], progress: Progress,
              view: ViewFields = ("", "", 0), populate: bool = True) -> Array:
        """Fetches into a new array (or `out`); view: (index, descr, pool).
        An exception raised by `progress` stops the fetch (the call is
        cancelled on the daemon) and propagates. populate: as Assembler's."""
        client = self._connected()
        assembler = Assembler(out, populate=populate)

        def alloc(info_bytes: bytes) -> Any:
            assembler.start(info_bytes)
            return assembler.flat

        code, message, header = client.fetch(handle, int(chunk_bytes), alloc, progress, *view)
        if code:
            raise from_status(code, message)
        assembler.header = bytearray(header)
        return assembler.finish()[1]
