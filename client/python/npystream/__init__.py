"""npystream: fetch tensors resident in npystreamd as NumPy arrays.

    import npystream
    client = npystream.Client("127.0.0.1:50051")
    info = client.put(np.arange(12.0).reshape(3, 4), name="x")
    arr = client.fetch("x")          # bit-identical to np.load(np.save(...))
"""
import os as _os
import pkgutil as _pkgutil

# Generated code (the gRPC stubs npystream.v1 and the native fetch module
# npystream._native) lives in the build folder, never in the sources: in a
# checkout, $NPYSTREAM_BUILD/python/npystream (default: build/ beside the
# sources) joins this package, as does any npystream folder on sys.path.
__path__ = _pkgutil.extend_path(__path__, __name__)
_generated = _os.path.normpath(_os.path.join(
    _os.environ.get("NPYSTREAM_BUILD") or
    _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "..", "..", "..", "build"),
    "python", "npystream"))
if _os.path.isdir(_generated) and _generated not in __path__:
    __path__.append(_generated)

from ._client import Client, Subscription  # noqa: E402
from ._errors import (AlreadyExistsError, Error, FailedPreconditionError,
                      InvalidArgumentError, NotFoundError,
                      ResourceExhaustedError, UnauthenticatedError,
                      UnavailableError)
from ._info import TensorInfo
from ._malloc import tune_malloc

__all__ = [
    "Client", "Subscription", "TensorInfo", "Error", "NotFoundError", "InvalidArgumentError",
    "AlreadyExistsError", "ResourceExhaustedError", "FailedPreconditionError",
    "UnavailableError",
    "UnauthenticatedError", "tune_malloc",
]
