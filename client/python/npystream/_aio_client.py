"""npystream.aio.Client: the client's calls as coroutines, on grpc.aio."""
import asyncio
import os
import threading
from typing import (Any, AsyncIterator, BinaryIO, Dict, Iterable, Iterator, List, Mapping,
                    Optional, Tuple, Union)

import grpc
import numpy.typing as npt

from . import _wire
from ._assembly import Assembler, NpyWriter, array_from_npy, open_output
from ._errors import (Error, InvalidArgumentError, UnavailableError, dropped_before_answer,
                      from_rpc_error)
from ._info import TensorInfo
from ._malloc import tune_malloc
from ._routing import Routes
from ._transport import NativeTransport
from ._requests import INFERENCE_METHODS as _INFERENCE, TENSORS_METHODS as _SERVICE
from ._requests import PutStream, fetch_request, infer_request, storable, subscribe_request
from ._types import Array, Index, InferInput, Progress, Views
from ._view import ViewFields, is_whole, view_fields
from .v1 import inference_pb2 as ipb
from .v1 import tensors_pb2 as pb


class Client:
    """A connection to one npystreamd for asyncio code. Use it from one
    event loop; `async with` (or `await close()`) closes it.

    Arguments as for npystream.Client. route: calls on another replica's
    handle (fetch, fetch_to, stat, release) go straight to it, as
    npystream.Client's route= (a single daemon: nothing to route).
    fetch takes the C++ path (npystream._native, as the sync client does)
    on a worker thread, the GIL released while bytes move; every other call,
    and fetch without the C++ path (or with timeout or compression), is a
    grpc.aio call whose messages are copied on a worker thread. Either way
    the loop stays responsive during a large fetch, and cancelling the
    awaiting task cancels the call on the daemon (its pin on the tensor goes
    with it; the C++ path notices within 4 MiB). Errors are the
    npystream.Error subclasses.
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, token: Optional[str] = None,
                 root_certificates: Optional[bytes] = None, private_key: Optional[bytes] = None,
                 certificate_chain: Optional[bytes] = None, route: bool = True,
                 timeout: Optional[float] = None, compression: Optional[str] = None) -> None:
        tune_malloc()
        if compression not in (None, "gzip"):
            raise InvalidArgumentError(f"compression={compression!r}: use None or 'gzip'")
        gzip = grpc.Compression.Gzip if compression else None
        if root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates,
                                                 private_key=private_key,
                                                 certificate_chain=certificate_chain)
            self._channel = grpc.aio.secure_channel(target, creds, options=_wire.CHANNEL_OPTIONS,
                                                    compression=gzip)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=_wire.CHANNEL_OPTIONS,
                                                      compression=gzip)
        token = token if token is not None else os.environ.get("NPYSTREAM_TOKEN")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout = timeout
        self.route = route
        self._native = None if compression or timeout is not None else NativeTransport.create(
            target, token, root_certificates, private_key, certificate_chain)
        self._fetch_raw = self._channel.unary_stream(
            _SERVICE + "Fetch", request_serializer=pb.FetchRequest.SerializeToString,
            response_deserializer=None)
        self._put_raw = self._channel.stream_unary(
            _SERVICE + "Put", request_serializer=None,
            response_deserializer=pb.TensorInfo.FromString)
        self._subscribe_raw = self._channel.unary_stream(
            _INFERENCE + "Subscribe", request_serializer=ipb.SubscribeRequest.SerializeToString,
            response_deserializer=None)

        def unary(service: str, name: str, request_type: Any, reply_type: Any) -> Any:
            return self._channel.unary_unary(service + name,
                                             request_serializer=request_type.SerializeToString,
                                             response_deserializer=reply_type.FromString)

        self._stat = unary(_SERVICE, "Stat", pb.TensorRef, pb.TensorInfo)
        self._list = unary(_SERVICE, "List", pb.ListRequest, pb.ListResponse)
        self._release = unary(_SERVICE, "Release", pb.TensorRef, pb.ReleaseResponse)
        self._infer = unary(_INFERENCE, "Infer", ipb.InferRequest, ipb.InferResponse)
        self._models = unary(_INFERENCE, "ListModels", ipb.ListModelsRequest,
                             ipb.ListModelsResponse)
        self._reload = unary(_INFERENCE, "Reload", ipb.ReloadRequest, ipb.ListModelsResponse)
        self._topology = unary(_SERVICE, "Topology", pb.TopologyRequest, pb.TopologyResponse)
        self._closing: List["asyncio.Task[None]"] = []

        def peer(address: str) -> "Client":
            return Client(address, token=token, root_certificates=root_certificates,
                          private_key=private_key, certificate_chain=certificate_chain,
                          route=False, timeout=timeout, compression=compression)

        def close_later(c: "Client") -> None:
            self._closing.append(asyncio.get_running_loop().create_task(c.close()))

        self._routes: Optional[Routes["Client"]] = Routes(peer, close_later) if route else None

    async def close(self) -> None:
        """Closes the channels; calls still running are cancelled."""
        await self._channel.close()
        if self._native is not None:
            self._native.close()
        if self._routes is not None:
            await asyncio.gather(*(c.close() for c in self._routes.take_all()), *self._closing)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _owner(self, handle: str) -> Optional["Client"]:
        """The client of the replica that owns `handle` when routing sends
        it elsewhere, else None (see npystream.Client)."""
        routes = self._routes
        if routes is None:
            return None
        if not routes.known:
            try:
                answer = await self._call(self._topology, pb.TopologyRequest(), idempotent=True)
                routes.learn(answer.replica, answer.peer_address)
            except UnavailableError:
                return None
            except Error:  # an older daemon: no replicas
                routes.learn("", "")
        return routes.peer_for(handle)

    def _unreachable(self, handle: str) -> None:
        if self._routes is not None:
            self._routes.forget(handle)

    async def _call(self, method: Any, request: Any, idempotent: bool = False) -> Any:
        """One unary call; an idempotent one lost with a dead connection is
        sent once more (see Client._call)."""
        for attempt in (1, 2):
            try:
                return await method(request, metadata=self._metadata, timeout=self._timeout)
            except grpc.RpcError as err:
                if idempotent and attempt == 1 and dropped_before_answer(err.code(),
                                                                         err.details()):
                    continue
                raise from_rpc_error(err) from None
        raise AssertionError("unreachable")

    # -- tensors ---------------------------------------------------------

    async def put(self, array: npt.ArrayLike, name: Optional[str] = None,
                  device: Optional[str] = None, ttl: Optional[float] = None,
                  progress: Progress = None) -> TensorInfo:
        """Stores `array`; returns its TensorInfo (see npystream.Client.put)."""
        put = PutStream(storable(array), name, device, ttl)
        info = await self._call(self._put_raw, _aiter(put.messages(progress)))
        return TensorInfo.from_proto(info)

    async def fetch(self, handle: str, progress: Progress = None, out: Optional[Array] = None, *,
                    index: Index = None, dtype: npt.DTypeLike = None, pool: Optional[int] = None,
                    chunk_bytes: int = 0) -> Array:
        """The tensor (or a view of it: index, dtype, pool) as an ndarray,
        equal to np.load of its .npy; out= an array to fill (see
        npystream.Client.fetch)."""
        peer = await self._owner(handle)
        if peer is not None:
            try:
                return await peer.fetch(handle, progress, out, index=index, dtype=dtype,
                                        pool=pool, chunk_bytes=chunk_bytes)
            except UnavailableError:
                self._unreachable(handle)
        view = view_fields(index, dtype, pool)
        if self._native is not None:
            return await self._native_fetch(handle, progress, out, view, chunk_bytes)
        call = self._fetch_raw(fetch_request(handle, chunk_bytes, view_fields(index, dtype, pool)),
                               metadata=self._metadata, timeout=self._timeout)
        assembler = Assembler(out, populate=False)  # see Assembler: keeps the loop free
        try:
            async for raw in call:
                await _feed(assembler, raw)
                if progress:
                    progress(assembler.pos, assembler.total)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        except BaseException:  # a refused out=, or the task was cancelled
            call.cancel()
            raise
        if not assembler.complete:
            raise Error(f"fetch of {handle!r} ended after {assembler.pos} bytes")
        return assembler.finish()[1]

    async def _native_fetch(self, handle: str, progress: Progress, out: Optional[Array],
                            view: ViewFields, chunk_bytes: int) -> Array:
        """fetch over the C++ path on a worker thread. Its progress hook
        (every 4 MiB) hands the caller's progress to the loop and, once the
        task is cancelled, raises: that stops the C++ call."""
        assert self._native is not None
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()

        def hook(done: int, total: int) -> None:
            if cancelled.is_set():
                raise _Stopped()
            if progress is not None:
                loop.call_soon_threadsafe(progress, done, total)

        native = self._native
        work = asyncio.to_thread(native.fetch, handle, chunk_bytes, out, hook,
                                 view if not is_whole(view) else ("", "", 0), False)
        try:
            return await work
        except BaseException:
            cancelled.set()
            raise

    async def fetch_to(self, handle: str, path_or_file: Union[str, "os.PathLike[str]", BinaryIO],
                       progress: Progress = None, *, index: Index = None,
                       dtype: npt.DTypeLike = None, pool: Optional[int] = None,
                       chunk_bytes: int = 0) -> TensorInfo:
        """Writes the .npy bytes (or a view's) to a path or binary file as
        they arrive; returns the TensorInfo of what was written."""
        peer = await self._owner(handle)
        if peer is not None:
            try:
                return await peer.fetch_to(handle, path_or_file, progress, index=index,
                                           dtype=dtype, pool=pool, chunk_bytes=chunk_bytes)
            except UnavailableError:
                self._unreachable(handle)
        f, own = open_output(path_or_file)
        writer = NpyWriter(f, progress)
        call = self._fetch_raw(fetch_request(handle, chunk_bytes, view_fields(index, dtype, pool)),
                               metadata=self._metadata, timeout=self._timeout)
        try:
            async for raw in call:
                writer.feed(raw)
                await asyncio.sleep(0)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        except BaseException:
            call.cancel()
            raise
        finally:
            if own:
                f.close()
        return writer.finish(handle)

    async def stat(self, handle: str) -> TensorInfo:
        """TensorInfo of `handle`; NotFoundError when unknown."""
        peer = await self._owner(handle)
        if peer is not None:
            try:
                return await peer.stat(handle)
            except UnavailableError:
                self._unreachable(handle)
        return TensorInfo.from_proto(await self._call(self._stat, pb.TensorRef(handle=handle), idempotent=True))

    async def list(self) -> List[TensorInfo]:
        """TensorInfo of every stored tensor, oldest first."""
        reply = await self._call(self._list, pb.ListRequest(), idempotent=True)
        return [TensorInfo.from_proto(t) for t in reply.tensors]

    async def release(self, handle: str) -> bool:
        """Drops `handle`; True once released. NotFoundError when unknown."""
        peer = await self._owner(handle)
        if peer is not None:
            try:
                return await peer.release(handle)
            except UnavailableError:
                self._unreachable(handle)
        return bool((await self._call(self._release, pb.TensorRef(handle=handle))).released)

    # -- inference -------------------------------------------------------

    async def models(self) -> Any:
        """ListModelsResponse: .models and .errors (see Client.list_models)."""
        return await self._call(self._models, ipb.ListModelsRequest(), idempotent=True)

    list_models = models  # the sync client's name

    async def reload(self) -> Any:
        """Re-reads the server's model repository; returns models()."""
        return await self._call(self._reload, ipb.ReloadRequest())

    async def infer(self, model: str, inputs: Mapping[str, InferInput],
                    outputs: Optional[Iterable[str]] = None,
                    capture: Optional[Iterable[str]] = None, fetch: bool = True,
                    ttl: Optional[float] = None, inline_max_bytes: int = 1 << 20) -> Dict[str, Any]:
        """Runs `model`; {name: ndarray}, or {name: TensorInfo} with
        fetch=False (see npystream.Client.infer). Results over
        inline_max_bytes are fetched, then released."""
        request = infer_request(model, inputs, outputs, capture, fetch, ttl, inline_max_bytes)
        response = await self._call(self._infer, request)
        protos = list(response.outputs) + list(response.activations)
        infos = [TensorInfo.from_proto(t) for t in protos]
        if not fetch:
            return {t.name: t for t in infos}
        inline = list(response.output_npy) + list(response.activation_npy)
        result: Dict[str, Any] = {}
        try:
            for t, proto, npy in zip(infos, protos, inline):
                result[t.name] = array_from_npy(npy, proto) if npy else await self.fetch(t.handle)
        finally:
            stored = [t.handle for t, npy in zip(infos, inline) if not npy]
            await asyncio.gather(*(self._release(pb.TensorRef(handle=h), metadata=self._metadata)
                                   for h in stored), return_exceptions=True)
        return result

    def subscribe(self, model: str, layers: Iterable[str],
                  views: Views = None) -> "Subscription":
        """An async iterator of (layer, ndarray), one each time an Infer on
        `model` produces one of `layers`; a slow reader gets only the newest
        value per layer. views as for npystream.Client.subscribe. cancel()
        or leaving `async with` ends it."""
        call = self._subscribe_raw(subscribe_request(model, layers, views),
                                   metadata=self._metadata)
        return Subscription(call)


class Subscription:
    """What aio.Client.subscribe returns."""

    def __init__(self, call: Any) -> None:
        self._call = call

    async def __aiter__(self) -> AsyncIterator[Tuple[str, Array]]:
        assembler = Assembler(populate=False)
        try:
            async for raw in self._call:
                await _feed(assembler, raw)
                if assembler.complete:
                    info, arr = assembler.finish()
                    assembler = Assembler(populate=False)
                    yield info.name, arr
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:
                raise from_rpc_error(err) from None

    def cancel(self) -> None:
        """Ends the subscription."""
        self._call.cancel()

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cancel()


_THREAD_COPY_MIN = 256 << 10


class _Stopped(Exception):
    """Raised in the C++ fetch's progress hook to stop a cancelled fetch."""


async def _feed(assembler: Assembler, raw: bytes) -> None:
    """Copies one message into the array: a large one on a worker thread
    (the copy and the page faults of a fresh array stay off the loop; numpy
    releases the GIL while it copies), a small one here, then yields, since
    reading an already buffered message does not."""
    if len(raw) >= _THREAD_COPY_MIN:
        await asyncio.to_thread(assembler.feed, raw)
    else:
        assembler.feed(raw)
        await asyncio.sleep(0)


async def _aiter(messages: Iterator[bytes]) -> AsyncIterator[bytes]:
    """A sync iterator of requests as the async one grpc.aio reads
    (each message is built when gRPC asks for the next)."""
    for m in messages:
        yield m
