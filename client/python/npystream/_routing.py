"""Routing calls on a handle straight to the replica that owns it (both
clients). Server-chosen handles end in "~R", R the owner's replica id; the
daemon a client first reaches says in Topology how replicas are reached
(--peer-address, "{replica}" standing for an id). A client keeps one
connection per replica it routed to, opened on first use, at most
MAX_REPLICAS, the least recently used closed first."""
import collections
import threading
from typing import Any, Callable, Generic, List, Optional, Tuple, TypeVar

MAX_REPLICAS = 64

C = TypeVar("C")


def owner_of(handle: str) -> Optional[str]:
    """The replica id a handle names ("x~a" -> "a"), or None."""
    _, sep, replica = handle.rpartition("~")
    return replica if sep and replica else None


def peer_target(template: str, replica: str) -> str:
    """The address of `replica` by the --peer-address template."""
    return template.replace("{replica}", replica)


class Routes(Generic[C]):
    """Which client serves a handle. `make(target)` opens a client of the
    same kind (route=False) to a replica; `close(client)` closes one the
    cache lets go of (called outside the lock). Thread-safe."""

    def __init__(self, make: Callable[[str], C], close: Callable[[C], Any]) -> None:
        self._make = make
        self._close = close
        self._lock = threading.Lock()
        self._topology: Optional[Tuple[str, str]] = None  # (replica, template)
        self._clients: "collections.OrderedDict[str, C]" = collections.OrderedDict()

    @property
    def known(self) -> bool:
        """Whether the first daemon's Topology has been asked."""
        with self._lock:
            return self._topology is not None

    def learn(self, replica: str, template: str) -> None:
        """Records the first daemon's Topology answer ("" template: no peers)."""
        with self._lock:
            self._topology = (replica, template)

    def peer_for(self, handle: str) -> Optional[C]:
        """The client for the handle's owner when it is another replica,
        else None (the first target serves it)."""
        replica = owner_of(handle)
        with self._lock:
            if replica is None or self._topology is None:
                return None
            own, template = self._topology
            if not template or replica == own:
                return None
            client = self._clients.get(replica)
            if client is not None:
                self._clients.move_to_end(replica)
                return client
        client = self._make(peer_target(template, replica))
        evicted: List[C] = []
        with self._lock:
            if replica in self._clients:  # another thread opened one meanwhile
                evicted.append(client)
                client = self._clients[replica]
            else:
                self._clients[replica] = client
            while len(self._clients) > MAX_REPLICAS:
                evicted.append(self._clients.popitem(last=False)[1])
        for c in evicted:
            self._close(c)
        return client

    def forget(self, handle: str) -> None:
        """Drops the owner's client after it could not be reached."""
        replica = owner_of(handle)
        client: Optional[C] = None
        with self._lock:
            if replica is not None and replica in self._clients:
                client = self._clients.pop(replica)
        if client is not None:
            self._close(client)

    def take_all(self) -> List[C]:
        """Every kept client, for the owner to close."""
        with self._lock:
            clients = list(self._clients.values())
            self._clients.clear()
        return clients

    @property
    def open_count(self) -> int:
        with self._lock:
            return len(self._clients)
