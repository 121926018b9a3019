"""npystream: fetch tensors resident in npystreamd as NumPy arrays.

    import npystream
    client = npystream.Client("127.0.0.1:50051")
    info = client.put(np.arange(12.0).reshape(3, 4), name="x")
    arr = client.fetch("x")          # bit-identical to np.load(np.save(...))
"""
from ._client import Client
from ._errors import (AlreadyExistsError, Error, InvalidArgumentError,
                      NotFoundError, ResourceExhaustedError,
                      UnauthenticatedError, UnavailableError)
from ._info import TensorInfo
from ._malloc import tune_malloc

__all__ = [
    "Client", "TensorInfo", "Error", "NotFoundError", "InvalidArgumentError",
    "AlreadyExistsError", "ResourceExhaustedError", "UnavailableError",
    "UnauthenticatedError", "tune_malloc",
]
