"""Client: the Python API of npystream."""
import os
import threading
from typing import (Any, BinaryIO, Dict, Iterable, Iterator, List, Mapping, Optional,
                    Tuple, Union)

import grpc
import numpy as np
import numpy.typing as npt

from . import _shm
from ._errors import (Error, FailedPreconditionError, InvalidArgumentError, UnavailableError,
                      dropped_before_answer, from_rpc_error)
from ._info import TensorInfo
from ._assembly import Assembler, NpyWriter, array_from_npy, open_output
from ._malloc import tune_malloc
from ._transport import NativeTransport, open_channel
from ._requests import INFERENCE_METHODS as _INFERENCE, TENSORS_METHODS as _SERVICE
from ._routing import Routes
from ._requests import PutStream, fetch_request, infer_request, storable, subscribe_request
from ._types import Array, Index, InferInput, Progress, Views
from ._view import is_whole, view_fields

from .v1 import inference_pb2 as ipb
from .v1 import inference_pb2_grpc as ipb_grpc
from .v1 import tensors_pb2 as pb
from .v1 import tensors_pb2_grpc as pb_grpc

# Puts below this size take the C++ path (when there is one); larger ones
# stream through grpcio, which is as fast there and reports progress per MiB.
_NATIVE_PUT_MAX_BYTES = 64 << 20


class Client:
    """A connection to one npystreamd. Thread-safe; reuse it.

    target: "host:port" or "unix:///path/to.sock". token: sent as
    `authorization: Bearer <token>` (default: $NPYSTREAM_TOKEN).
    root_certificates: PEM bytes of the CA to trust (enables TLS);
    private_key/certificate_chain: PEM bytes of a client certificate for
    mutual TLS. timeout: seconds per call (default none). shm: when the
    daemon's --shm-dir is visible to this process (same host or pod), fetch
    and put go through its files instead of the stream; False turns that off.
    compression: "gzip" sends every request gzip-compressed (grpcio only:
    no C++ or shm path) and accepts gzip replies (a daemon started with
    --grpc-compression=gzip sends them); None (default) sends them as they are.
    route: when the daemon reports replicas (Topology: --peer-address), a
    call on another replica's handle ("...~R": fetch, fetch_to, map, stat,
    release) goes straight to R (one connection per replica, at most 64
    kept), back to this target when R cannot be reached; put and infer stay
    here. False: every call goes to this target.
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, timeout: Optional[float] = None,
                 shm: bool = True, compression: Optional[str] = None, route: bool = True) -> None:
        tune_malloc()  # see _malloc.py: large fetches at 2-3x the speed
        if compression not in (None, "gzip"):
            raise InvalidArgumentError(f"compression={compression!r}: use None or 'gzip'")
        self._channel = open_channel(target, root_certificates, private_key, certificate_chain,
                                     gzip=compression == "gzip")
        token = token if token is not None else os.environ.get("NPYSTREAM_TOKEN")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        # Fetches and puts without a timeout take the C++ path when it can
        # serve them.
        self._native = None if compression else NativeTransport.create(
            target, token, root_certificates, private_key, certificate_chain)
        self._timeout = timeout
        # Guards the pending releases: the class is used from many threads.
        self._lock = threading.Lock()
        self._pending: List[Any] = []  # Release futures from infer(fetch=True)
        self._shm_wanted = shm and not compression
        self._folder: Union[_shm.SharedFolder, None, bool] = None  # the daemon's shm folder, once checked (False: not usable)
        self._stub = pb_grpc.TensorsStub(self._channel)
        # Raw methods: bytes in and out, framed by _wire.
        self._fetch_raw = self._channel.unary_stream(
            _SERVICE + "Fetch", request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=None)
        self._put_raw = self._channel.stream_unary(
            _SERVICE + "Put", request_serializer=None,
            response_deserializer=pb.TensorInfo.FromString)
        self._inference = ipb_grpc.InferenceStub(self._channel)
        self._subscribe_raw = self._channel.unary_stream(
            _INFERENCE + "Subscribe", request_serializer=ipb.SubscribeRequest.SerializeToString,
            response_deserializer=None)

        def peer(address: str) -> "Client":
            return Client(address, token=token, root_certificates=root_certificates,
                          private_key=private_key, certificate_chain=certificate_chain,
                          timeout=timeout, shm=shm, compression=compression, route=False)

        self._routes: Optional[Routes["Client"]] = (
            Routes(peer, lambda c: c.close()) if route else None)

    def close(self) -> None:
        """Waits for outstanding releases, then closes the channels (grpcio's
        and the C++ client's, with its kept connections)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            try:
                f.result(timeout=10)
            except Exception:  # the server may be gone; nothing to undo
                pass
        self._channel.close()
        if self._native is not None:
            self._native.close()
        for peer in self._routes.take_all() if self._routes is not None else []:
            peer.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tensors ---------------------------------------------------------

    def put(self, array: npt.ArrayLike, name: Optional[str] = None, device: Optional[str] = None,
            ttl: Optional[float] = None, progress: Progress = None) -> TensorInfo:
        """Stores `array` on the server; returns its TensorInfo.

        name: becomes the handle (AlreadyExistsError if taken). device:
        "auto", "cpu" or "cuda:N". ttl: seconds until it expires.
        progress: optional callable(done_bytes, total_bytes).
        """
        arr = storable(array)
        if device in (None, "", "auto", "cpu") and self._shared_folder() is not None:
            info = self._put_shared(arr, name, device, ttl)
            if info is not None:
                if progress:
                    progress(info.npy_bytes, info.npy_bytes)
                return info
        put = PutStream(arr, name, device, ttl)
        if (self._native is not None and self._timeout is None
                and put.payload.nbytes < _NATIVE_PUT_MAX_BYTES):
            info = self._native.put(name or "", device or "", int(ttl or 0), put.npy_header,
                                    put.payload)
            if progress:
                progress(put.total, put.total)
            return TensorInfo.from_proto(info)
        info = self._call(self._put_raw, put.messages(progress))
        return TensorInfo.from_proto(info)

    def fetch(self, handle: str, progress: Progress = None, chunk_bytes: int = 0,
              out: Optional[Array] = None, *, index: Index = None, dtype: npt.DTypeLike = None,
              pool: Optional[int] = None) -> Array:
        """Returns the tensor as an ndarray, equal to np.load of its .npy.

        The payload is copied once, from each received message into one
        preallocated array. progress: optional callable(done, total).
        out: an existing writeable C-contiguous ndarray of the tensor's dtype
        and shape to fill (and return) instead of a new one, for repeated
        fetches of a live tensor; InvalidArgumentError when it does not fit.

        index, dtype, pool: a view computed by the daemon where the tensor
        lives, so only its bytes move: index is numpy basic indexing
        (np.s_[0, 2:8], or the same as text "0, 2:8"), dtype a numpy dtype to
        cast to (same_kind), pool N averages N x N blocks of the last two axes
        (float dtypes). The result equals
        np.ascontiguousarray(a[index]).astype(dtype) (pooled: the reshape-mean
        reference within 1 ulp); out= must match the view.
        """
        peer = self._owner(handle)
        if peer is not None:
            try:
                return peer.fetch(handle, progress, chunk_bytes, out, index=index, dtype=dtype,
                                  pool=pool)
            except UnavailableError:
                self._unreachable(handle)
        view = view_fields(index, dtype, pool)
        if is_whole(view) and self._shared_folder() is not None:
            arr = self._fetch_shared(handle, out)
            if arr is not None:
                if progress:
                    progress(arr.nbytes, arr.nbytes)
                return arr
        if self._native is not None and self._timeout is None:
            if is_whole(view):
                return self._native.fetch(handle, chunk_bytes, out, progress)
            return self._native.fetch(handle, chunk_bytes, out, progress, view)
        call: Any = None
        for attempt in (1, 2):
            assembler = Assembler(out)
            got = False
            try:
                call = self._fetch_raw(fetch_request(handle, chunk_bytes, view),
                                       metadata=self._metadata, timeout=self._timeout)
                for raw in call:
                    got = True
                    if assembler.feed(raw) and progress:
                        progress(assembler.pos, assembler.total)
                break
            except grpc.RpcError as err:
                if attempt == 1 and not got and dropped_before_answer(err.code(), err.details()):
                    continue
                raise from_rpc_error(err) from None
            except Error:
                call.cancel()
                raise
        if not assembler.complete:
            raise Error(f"fetch of {handle!r} ended after {assembler.pos} bytes")
        return assembler.finish()[1]

    def fetch_to(self, handle: str, path_or_file: Union[str, "os.PathLike[str]", BinaryIO],
                 progress: Progress = None, chunk_bytes: int = 0, *, index: Index = None,
                 dtype: npt.DTypeLike = None, pool: Optional[int] = None) -> TensorInfo:
        """Writes the tensor's .npy bytes (or a view's: index, dtype, pool as
        for fetch) to a path or binary file object as they arrive (nothing is
        assembled in memory); returns the TensorInfo of what was written."""
        peer = self._owner(handle)
        if peer is not None:
            try:
                return peer.fetch_to(handle, path_or_file, progress, chunk_bytes, index=index,
                                     dtype=dtype, pool=pool)
            except UnavailableError:
                self._unreachable(handle)
        f, own = open_output(path_or_file)
        writer = NpyWriter(f, progress)
        try:
            for attempt in (1, 2):
                got = False
                try:
                    call = self._fetch_raw(fetch_request(handle, chunk_bytes,
                                                         view_fields(index, dtype, pool)),
                                           metadata=self._metadata, timeout=self._timeout)
                    for raw in call:
                        got = True
                        writer.feed(raw)
                    break
                except grpc.RpcError as err:
                    if attempt == 1 and not got and dropped_before_answer(err.code(),
                                                                          err.details()):
                        continue
                    raise from_rpc_error(err) from None
        finally:
            if own:
                f.close()
        return writer.finish(handle)

    def map(self, handle: str) -> Array:
        """A read-only ndarray over the tensor's file in the daemon's
        --shm-dir: no copy, O(1) at any size. It stays valid after the
        tensor is released (the file's memory returns when the array goes).
        FailedPreconditionError when the daemon has no --shm-dir or this
        process does not see it (another host)."""
        peer = self._owner(handle)
        if peer is not None:
            try:
                return peer.map(handle)
            except UnavailableError:
                self._unreachable(handle)
        if self._shared_folder() is None:
            raise FailedPreconditionError(
                "FAILED_PRECONDITION: map needs the daemon's --shm-dir visible to this process "
                "(same host or pod); use fetch")
        response = self._call(self._stub.Map, pb.MapRequest(handle=handle), idempotent=True)
        try:
            return _shm.map_file(response)
        except OSError as err:
            raise FailedPreconditionError(
                f"FAILED_PRECONDITION: cannot map {response.path}: {err.strerror}") from None

    def stat(self, handle: str) -> TensorInfo:
        """TensorInfo of `handle`; NotFoundError when unknown."""
        peer = self._owner(handle)
        if peer is not None:
            try:
                return peer.stat(handle)
            except UnavailableError:
                self._unreachable(handle)
        return TensorInfo.from_proto(self._call(self._stub.Stat, pb.TensorRef(handle=handle), idempotent=True))

    def list(self) -> List[TensorInfo]:
        """TensorInfo of every stored tensor, oldest first."""
        return [TensorInfo.from_proto(t)
                for t in self._call(self._stub.List, pb.ListRequest(), idempotent=True).tensors]

    def release(self, handle: str) -> bool:
        """Drops `handle`; True once released. NotFoundError when unknown."""
        peer = self._owner(handle)
        if peer is not None:
            try:
                return peer.release(handle)
            except UnavailableError:
                self._unreachable(handle)
        return bool(self._call(self._stub.Release, pb.TensorRef(handle=handle)).released)

    # -- inference -------------------------------------------------------

    def list_models(self) -> Any:
        """ListModelsResponse: .models (name, device, inputs, outputs,
        layers, ...) and .errors (models that failed to load)."""
        return self._call(self._inference.ListModels, ipb.ListModelsRequest(), idempotent=True)

    def reload(self) -> Any:
        """Re-reads the server's model repository; returns list_models()."""
        return self._call(self._inference.Reload, ipb.ReloadRequest())

    def infer(self, model: str, inputs: Mapping[str, InferInput],
              outputs: Optional[Iterable[str]] = None, capture: Optional[Iterable[str]] = None,
              fetch: bool = True, ttl: Optional[float] = None,
              inline_max_bytes: int = 1 << 20) -> Dict[str, Any]:
        """Runs `model` on the server.

        inputs: {name: ndarray, handle str or TensorInfo} (ndarrays travel
        inline as .npy; handles are already resident). outputs: names to keep
        (default all). capture: layer names whose activations to return.
        Returns {name: ndarray} of outputs then activations; with
        fetch=False, {name: TensorInfo} whose handles stay on the server
        (release them, or pass ttl). With fetch=True, results of at most
        inline_max_bytes come back in the Infer reply itself (one round trip)
        and larger ones are fetched, then released on the server.
        """
        request = infer_request(model, inputs, outputs, capture, fetch, ttl, inline_max_bytes)
        response = self._call(self._inference.Infer, request)
        protos = list(response.outputs) + list(response.activations)
        infos = [TensorInfo.from_proto(t) for t in protos]
        if not fetch:
            return {t.name: t for t in infos}
        inline = list(response.output_npy) + list(response.activation_npy)
        result: Dict[str, Any] = {}
        stored = [t for t, npy in zip(infos, inline) if not npy]
        try:
            for t, proto, npy in zip(infos, protos, inline):
                result[t.name] = array_from_npy(npy, proto) if npy else self.fetch(t.handle)
        finally:
            # The caller does not wait a round trip for these; close() does.
            releases = [self._stub.Release.future(pb.TensorRef(handle=t.handle),
                                                  metadata=self._metadata) for t in stored]
            with self._lock:
                self._pending = [f for f in self._pending if not f.done()] + releases
        return result

    def subscribe(self, model: str, layers: Iterable[str],
                  views: Views = None) -> "Subscription":
        """Returns an iterator of (layer, ndarray): one each time an Infer
        on `model` produces one of `layers`; a slow reader gets only the
        newest value per layer. views: {layer: dict(index=..., dtype=...,
        pool=...)} sends those layers as views (see fetch). `.cancel()` (any
        thread) or leaving a `with` block ends it."""
        call = self._subscribe_raw(subscribe_request(model, layers, views),
                                   metadata=self._metadata)
        return Subscription(call)

    # -- internals -------------------------------------------------------

    def _owner(self, handle: str) -> Optional["Client"]:
        """The client of the replica that owns `handle` when routing sends
        it elsewhere, else None. The first call asks this daemon's Topology."""
        routes = self._routes
        if routes is None:
            return None
        if not routes.known:
            try:
                answer = self._call(self._stub.Topology, pb.TopologyRequest(), idempotent=True)
                routes.learn(answer.replica, answer.peer_address)
            except UnavailableError:
                return None  # ask again next time
            except Error:  # an older daemon (UNIMPLEMENTED): no replicas
                routes.learn("", "")
        return routes.peer_for(handle)

    def _unreachable(self, handle: str) -> None:
        """The owner could not be reached: this target serves the call."""
        if self._routes is not None:
            self._routes.forget(handle)

    def _shared_folder(self) -> Optional[_shm.SharedFolder]:
        """The daemon's shm folder when this process sees it, else None.
        Asked once per client."""
        if not self._shm_wanted:
            return None
        with self._lock:
            folder = self._folder
        if folder is None:
            try:
                folder = _shm.SharedFolder.check(self._call(self._stub.Shm, pb.ShmRequest(), idempotent=True))
            except Error:  # no --shm-dir, or an older daemon
                folder = None
            folder = folder or False
            with self._lock:
                self._folder = folder
        return folder if isinstance(folder, _shm.SharedFolder) else None

    def _give_up_shm(self, why: str) -> None:
        _shm._log.debug("npystream: same-host path off for this client: %s", why)
        with self._lock:
            self._folder = False

    def _fetch_shared(self, handle: str, out: Optional[Array]) -> Optional[Array]:
        """fetch through the shm file; None when the file cannot be opened
        (then the caller streams)."""
        response = self._call(self._stub.Map, pb.MapRequest(handle=handle), idempotent=True)
        if out is not None:
            if (out.dtype != np.dtype(response.info.dtype) or out.shape != tuple(response.info.shape)
                    or not out.flags.c_contiguous or not out.flags.writeable):
                raise InvalidArgumentError(
                    f"INVALID_ARGUMENT: out is {out.dtype}{out.shape}; the tensor is "
                    f"{response.info.dtype}{tuple(response.info.shape)} (a writeable C-contiguous "
                    "array is needed)")
        try:
            return _shm.copy_from_file(response, out)
        except OSError as err:
            self._give_up_shm(f"cannot open {response.path}: {err.strerror}")
            return None

    def _put_shared(self, arr: Array, name: Optional[str], device: Optional[str],
                    ttl: Optional[float]) -> Optional[TensorInfo]:
        """put through Allocate and Commit; None when the daemon places the
        tensor elsewhere (a GPU) or the file cannot be opened."""
        request = pb.AllocateRequest(
            header=pb.PutHeader(name=name or "", device=device or "", ttl_seconds=int(ttl or 0)),
            dtype=arr.dtype.str, shape=list(arr.shape))
        try:
            response = self._call(self._stub.Allocate, request)
        except FailedPreconditionError:  # the tensor would live on a GPU: stream it
            return None
        try:
            _shm.write_into_file(response, arr)
        except OSError as err:
            self._call(self._stub.Release, pb.TensorRef(handle=response.info.handle))
            self._give_up_shm(f"cannot write {response.path}: {err.strerror}")
            return None
        return TensorInfo.from_proto(
            self._call(self._stub.Commit, pb.TensorRef(handle=response.info.handle)))

    def _call(self, method: Any, request: Any, idempotent: bool = False) -> Any:
        """One unary call; an idempotent one lost with a dead connection
        (dropped_before_answer) is sent once more."""
        for attempt in (1, 2):
            try:
                return method(request, metadata=self._metadata, timeout=self._timeout)
            except grpc.RpcError as err:
                if idempotent and attempt == 1 and dropped_before_answer(err.code(),
                                                                         err.details()):
                    continue
                raise from_rpc_error(err) from None
        raise AssertionError("unreachable")


class Subscription:
    """What Client.subscribe returns."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[Tuple[str, Array]]:
        assembler = Assembler()
        try:
            for raw in self._call:
                assembler.feed(raw)
                if assembler.complete:
                    info, arr = assembler.finish()
                    assembler = Assembler()
                    yield info.name, arr
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(err) from None

    def cancel(self) -> None:
        """Ends the subscription (from any thread)."""
        self._call.cancel()

    close = cancel

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cancel()
