"""Transport choice: the grpcio channel every call can use, and the C++ fetch
path (npystream._native) for the fetches it can serve."""
import os
import threading

import grpc

from . import _wire
from ._assembly import Assembler
from ._errors import from_status

try:  # the C++ fetch path, built with the package when python3-dev is present
    from . import _native
except ImportError:  # pragma: no cover - grpcio alone still works
    _native = None


def open_channel(target, root_certificates=None, private_key=None, certificate_chain=None):
    """A grpcio channel with npystream's streaming settings; TLS when
    root_certificates is given, mutual TLS with a client key and chain."""
    if root_certificates is not None:
        creds = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                             private_key=private_key,
                                             certificate_chain=certificate_chain)
        return grpc.secure_channel(target, creds, options=_wire.CHANNEL_OPTIONS)
    return grpc.insecure_channel(target, options=_wire.CHANNEL_OPTIONS)


class NativeFetcher:
    """Fetches through the C++ client: one copy from gRPC's slices into the
    array, the GIL released. Its channel opens at the first fetch. Thread-safe."""

    def __init__(self, make_client):
        self._make_client = make_client
        self._client = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, target, token, root_certificates, private_key, certificate_chain):
        """A fetcher, or None where only grpcio can serve: the extension is
        missing, NPYSTREAM_NATIVE=0, or client certificates (mTLS) are used."""
        if (_native is None or private_key is not None or certificate_chain is not None
                or os.environ.get("NPYSTREAM_NATIVE", "1") == "0"):
            return None
        roots = (root_certificates.decode() if isinstance(root_certificates, bytes)
                 else root_certificates)
        return cls(lambda: _native.Client(target, token or None, roots))

    def fetch(self, handle, chunk_bytes, out, progress):
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            client = self._client
        assembler = Assembler(out)

        def alloc(info_bytes):
            assembler.start(info_bytes)
            return assembler.flat

        code, message, header = client.fetch(handle, int(chunk_bytes), alloc, progress)
        if code:
            raise from_status(code, message)
        assembler.header = bytearray(header)
        return assembler.finish()[1]
