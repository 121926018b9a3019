"""npystream.Error and its subclasses, one per gRPC code callers act on."""
from typing import Any, Optional

import grpc


class Error(Exception):
    """Any failure of an npystream call. `code` is the grpc.StatusCode."""

    code: Any = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: Optional[Any] = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The status text: "CODE: details"."""
        return str(self.args[0])


class NotFoundError(Error):
    code = grpc.StatusCode.NOT_FOUND


class InvalidArgumentError(Error):
    code = grpc.StatusCode.INVALID_ARGUMENT


class AlreadyExistsError(Error):
    code = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhaustedError(Error):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPreconditionError(Error):
    code = grpc.StatusCode.FAILED_PRECONDITION


class UnavailableError(Error):
    code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(Error):
    code = grpc.StatusCode.UNAUTHENTICATED


_BY_CODE = {cls.code: cls for cls in (
    NotFoundError, InvalidArgumentError, AlreadyExistsError,
    ResourceExhaustedError, FailedPreconditionError, UnavailableError,
    UnauthenticatedError)}


def from_rpc_error(err: Any) -> Error:
    """Converts a grpc.RpcError into the matching npystream.Error."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, Error)
    return cls(f"{code.name}: {details}", code)


def from_status(code: int, message: str) -> Error:
    """The npystream.Error for a numeric gRPC status code (the native path)."""
    status = next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    cls = _BY_CODE.get(status, Error)
    return cls(f"{status.name}: {message}", status)


# What gRPC reports when the connection it kept turned out dead (the daemon
# restarted) before the call was answered. Not "Connection refused" or
# "failed to connect" (nothing is listening: fail at once) and never a
# daemon's own UNAVAILABLE ("draining"): such a call goes nowhere, so an
# idempotent one is sent once more, on the reconnected channel.
_DROPPED = ("Broken pipe", "Connection reset", "Socket closed", "Stream removed", "GOAWAY")


def dropped_before_answer(code: Any, details: Optional[str]) -> bool:
    """True for a call lost with its connection before the daemon answered."""
    return code == grpc.StatusCode.UNAVAILABLE and any(d in (details or "") for d in _DROPPED)
