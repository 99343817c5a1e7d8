"""The relay: how one worker passes a unary call to the worker owning its shard, cheaper than a
gRPC call between the two.

A forwarded call through gRPC costs a second gRPC call: the worker's client stack, the owner's
server stack and a hand-over between threads on each side, about as much again as the call
itself. The relay is a Unix socket per worker (abstract, on the worker's machine, like its
internal gRPC address) that takes one call at a time per connection: a 4-byte length and a
`RelayCall`, answered by a length and a `RelayAnswer`. The calling thread writes the call and
reads the answer on a connection of its own; on the owner, a thread per connection runs the
call on the same handlers as its internal gRPC server (the gate's authentication first, then
the handler wrapper's request id, deadline, metrics and errors).

What could not be sent falls back to gRPC, which waits for a worker that is starting again:
no connection (the owner is down, or every connection it allows is taken), or a connection the
owner closed before the call was written. Once a call is written, a connection lost before
its answer is UNAVAILABLE, as a gRPC call cut short is: the call may have run.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import DecodeError

from memorygraph.errors import Code, DeadlineExceeded, RequestError, Unavailable
from memorygraph.v1 import workers_pb2 as wpb

__all__ = ["RelayClient", "RelayServer", "relayed_error"]

log = logging.getLogger("memorygraph.server")

_LENGTH = struct.Struct(">I")
_READY, _FULL = b"\x01", b"\x00"  # the first byte a connection gets: whether it is served
_FIRST_READ = 1 << 16
_GREETING_SECONDS = 2.0
_FRAME_SLACK = 1 << 16  # a call's method, metadata and timeout, beyond its request message
_CODES = {status.value[0]: status for status in grpc.StatusCode}


class _FrameTooLarge(Exception):
    pass


def _read_frame(sock: socket.socket, limit: int) -> bytes:
    """One length-prefixed frame (EOFError: the connection ended before it did). The other
    side writes one frame and waits for the answer, so nothing beyond it is read."""
    data = sock.recv(_FIRST_READ)
    while len(data) < _LENGTH.size:
        if not data:
            raise EOFError
        more = sock.recv(_FIRST_READ)
        if not more:
            raise EOFError
        data += more
    (size,) = _LENGTH.unpack_from(data)
    if size > limit:
        raise _FrameTooLarge(size)
    have = len(data) - _LENGTH.size
    if have == size:
        return data[_LENGTH.size :]
    if have > size:
        raise _FrameTooLarge(have)
    buffer = bytearray(size)
    buffer[:have] = data[_LENGTH.size :]
    view = memoryview(buffer)
    while have < size:
        got = sock.recv_into(view[have:])
        if not got:
            raise EOFError
        have += got
    return bytes(buffer)


def _frame(message: Any) -> bytes:
    body: bytes = message.SerializeToString()
    return _LENGTH.pack(len(body)) + body


class _Aborted(Exception):
    pass


class _Context:
    """What a relayed call's handlers see of it: the part of grpc.ServicerContext the unary
    handlers use. Trailing metadata stays here: the worker that forwarded the call answers
    its caller with its own."""

    __slots__ = ("_metadata", "_until", "code", "details")

    def __init__(self, metadata: tuple[tuple[str, str], ...], timeout: float | None) -> None:
        self._metadata = metadata
        self._until = None if timeout is None else time.monotonic() + timeout
        self.code = grpc.StatusCode.OK
        self.details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._until is None else max(self._until - time.monotonic(), 0.0)

    def is_active(self) -> bool:
        return True  # the forwarding worker waits for the answer until the deadline

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code = code

    def set_details(self, details: str) -> None:
        self.details = details

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise _Aborted

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return False  # nothing to cancel: the call ends when its handler returns


class _Details(NamedTuple):
    """A relayed call as the gate sees it (a grpc.HandlerCallDetails)."""

    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


Gate = Callable[[Callable[[Any], Any], Any], Any]  # CallGate.intercept_service


class RelayServer:
    """A worker's relay socket: the unary `handlers` (by full method name, wrapped as its
    gRPC server wraps them) run for the other workers, each call admitted by `gate` first."""

    def __init__(
        self,
        name: str,
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]],
        gate: Gate,
        *,
        max_connections: int,
        max_bytes: int,
    ) -> None:
        """`name`: the abstract socket's name. `max_bytes`: the largest request message (a
        larger frame ends its connection); callers beyond `max_connections` use gRPC."""
        self.name = name
        self._handlers = handlers
        self._gate = gate
        self._max_connections = max_connections
        self._limit = max_bytes + _FRAME_SLACK
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind("\0" + self.name)
        except OSError:
            listener.close()
            raise
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, name="relay-accept", daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                admitted = len(self._connections) < self._max_connections
                if admitted:
                    self._connections.add(connection)
            if not admitted:
                try:
                    connection.sendall(_FULL)
                finally:
                    connection.close()
                continue
            threading.Thread(
                target=self._serve, args=(connection,), name="relay", daemon=True
            ).start()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.sendall(_READY)
            while True:
                call = wpb.RelayCall.FromString(_read_frame(connection, self._limit))
                connection.sendall(_frame(self.answer(call)))
        except _FrameTooLarge as exc:
            log.warning("a relayed call of %s bytes is over the limit: connection closed", exc)
        except (OSError, EOFError, DecodeError):
            pass  # the other worker went away, or sent what is not a call
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def _handler(self, details: _Details) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(details.method)

    def answer(self, call: wpb.RelayCall) -> wpb.RelayAnswer:
        """Run `call` as this worker's internal gRPC server would."""
        metadata = tuple((item.key, item.value) for item in call.metadata)
        handler = self._gate(self._handler, _Details(call.method, metadata))
        if handler is None:
            return wpb.RelayAnswer(
                code=grpc.StatusCode.UNIMPLEMENTED.value[0], details="method not relayed"
            )
        context = _Context(metadata, call.timeout_seconds or None)
        try:
            if handler.unary_unary is not None:
                request = handler.request_deserializer(call.request)
                response = handler.unary_unary(request, context)
            else:  # the gate's refusal: shaped to take a stream of requests, never read
                response = handler.stream_unary(iter(()), context)
            body = handler.response_serializer(response)
        except _Aborted:
            return wpb.RelayAnswer(code=context.code.value[0], details=context.details)
        except Exception:  # the handler wrapper maps every error; this is a bug of the relay
            log.exception("a relayed %s call failed", call.method)
            return wpb.RelayAnswer(code=grpc.StatusCode.INTERNAL.value[0], details="internal error")
        if context.code is not grpc.StatusCode.OK:
            return wpb.RelayAnswer(code=context.code.value[0], details=context.details)
        return wpb.RelayAnswer(response=body)


class RelayClient:
    """Calls of one worker's relay socket, on a connection per calling thread."""

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self._limit = max_bytes + _FRAME_SLACK
        self._local = threading.local()

    def _connect(self) -> socket.socket | None:
        """A new connection, or None: the relay is not there, or takes no more connections."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(_GREETING_SECONDS)
            sock.connect("\0" + self.name)
            if sock.recv(1) != _READY:
                sock.close()
                return None
        except OSError:
            sock.close()
            return None
        self._local.sock = sock
        return sock

    def _drop(self) -> None:
        sock = getattr(self._local, "sock", None)
        self._local.sock = None
        if sock is not None:
            sock.close()

    def _send(self, frame: bytes) -> socket.socket | None:
        """The connection `frame` was written on; None: it could not be written, so nothing
        ran. A connection the relay closed since its last call is replaced once."""
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is not None:
            try:
                sock.settimeout(None)
                sock.sendall(frame)
                return sock
            except OSError:
                self._drop()
        sock = self._connect()
        if sock is None:
            return None
        try:
            sock.settimeout(None)
            sock.sendall(frame)
        except OSError:
            self._drop()
            return None
        return sock

    def call(
        self,
        method: str,
        request: bytes,
        metadata: Sequence[tuple[str, str | bytes]],
        timeout: float | None,
    ) -> wpb.RelayAnswer | None:
        """The owner's answer to `method`; None when the call could not be sent (nothing ran:
        send it over gRPC)."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("the deadline passed before another worker answered")
        if len(request) + _FRAME_SLACK > self._limit:
            return None  # gRPC refuses it with the server's own message
        call = wpb.RelayCall(method=method, timeout_seconds=timeout or 0.0, request=request)
        for key, value in metadata:
            if isinstance(value, str):
                call.metadata.add(key=key, value=value)
        sock = self._send(_frame(call))
        if sock is None:
            return None
        try:
            sock.settimeout(timeout)
            return wpb.RelayAnswer.FromString(_read_frame(sock, self._limit))
        except TimeoutError:
            self._drop()  # its answer may still come: the connection is not used again
            raise DeadlineExceeded("the deadline passed before another worker answered") from None
        except (OSError, EOFError, DecodeError, _FrameTooLarge):
            self._drop()
            raise Unavailable("another worker of this graph did not answer; try again") from None


def relayed_error(answer: wpb.RelayAnswer) -> RequestError:
    """The error a relayed call was answered with, to answer the caller with."""
    status = _CODES.get(answer.code, grpc.StatusCode.UNKNOWN)
    if status in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN):
        return Unavailable("another worker of this graph is not reachable; try again")
    failure = RequestError(answer.details or status.name)
    failure.code = Code[status.name]
    return failure
