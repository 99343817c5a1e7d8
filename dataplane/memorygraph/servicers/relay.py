"""The relay: how one worker passes a unary call to the worker owning its shard, cheaper than a
gRPC call between the two.

A forwarded call through gRPC costs a second gRPC call: the worker's client stack, the owner's
server stack and a hand-over between threads on each side, about as much again as the call
itself. The relay is a Unix socket per worker (abstract, on the worker's machine, like its
internal gRPC address) that takes one call at a time per connection. The calling thread writes
the call on a connection of its own and reads the answer; on the owner, a thread per connection
runs the call on the same handlers as its internal gRPC server.

A call is two 4-byte big-endian lengths, a `RelayCall` (method, metadata, deadline) and the
serialized request; the answer is a length and a `RelayAnswer`. The owner reads the request
only once the gate has admitted the call (authentication), so a caller without a key holds no
more than a call's header; a call whose bytes stop coming for `FRAME_SECONDS` ends its
connection. Then the handler wrapper gives it what every RPC gets (request id, deadline,
metrics, errors to statuses); no more calls run at once than the server has RPC threads.

What could not be sent falls back to gRPC, which waits for a worker that is starting again:
no connection (the owner is down, or every connection it allows is taken), or a connection the
owner closed before the call was written. Once a call is written, a connection lost before its
answer is UNAVAILABLE, as a gRPC call cut short is: the call may have run. A worker that stops
takes no new calls, answers those it has read, and waits for them like its gRPC server does.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any, NamedTuple

import grpc
from google.protobuf.message import DecodeError

from memorygraph.errors import Code, DeadlineExceeded, RequestError, Unavailable
from memorygraph.v1 import workers_pb2 as wpb

__all__ = ["FRAME_SECONDS", "RelayClient", "RelayServer", "answered_error", "relayed_error"]

log = logging.getLogger("memorygraph.server")

_CALL_LENGTHS = struct.Struct(">II")  # the RelayCall's length, the request's
_ANSWER_LENGTH = struct.Struct(">I")
_READY, _FULL = b"\x01", b"\x00"  # the first byte a connection gets: whether it is served
_HEADER_LIMIT = 1 << 16  # a RelayCall: method, metadata and deadline
_ANSWER_SLACK = 1 << 10  # an answer's code and details, beyond its response message
_GREETING_SECONDS = 2.0
FRAME_SECONDS = 30.0  # the longest pause within a call's bytes before its connection ends
_CODES = {status.value[0]: status for status in grpc.StatusCode}
_HEADER_KEY = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class _BadFrame(Exception):
    pass


def _read_exactly(
    sock: socket.socket, size: int, first: bytes = b"", until: float | None = None
) -> bytes:
    """`size` bytes, `first` among them (EOFError: the connection ended before; TimeoutError:
    they had not all come by `until`, a time.monotonic value)."""
    if len(first) >= size:
        return first
    buffer = bytearray(size)
    buffer[: len(first)] = first
    view, have = memoryview(buffer), len(first)
    while have < size:
        if until is not None:
            sock.settimeout(max(until - time.monotonic(), 0.001))
        got = sock.recv_into(view[have:])
        if not got:
            raise EOFError
        have += got
    return bytes(buffer)


def _skip(sock: socket.socket, size: int, until: float) -> None:
    """Read past `size` bytes, keeping none of them."""
    buffer = bytearray(min(max(size, 0), 1 << 16))
    while size > 0:
        sock.settimeout(max(until - time.monotonic(), 0.001))
        got = sock.recv_into(buffer, min(size, len(buffer)))
        if not got:
            raise EOFError
        size -= got


def _printable(text: str) -> bool:
    return text.isascii() and text.isprintable()


class _Aborted(Exception):
    pass


class _Context:
    """What a relayed call's handlers see of it: the part of grpc.ServicerContext the unary
    handlers use. Trailing metadata stays here: the worker that forwarded the call answers
    its caller with its own."""

    __slots__ = ("_connection", "_metadata", "_stopping", "_until", "code", "details")

    def __init__(
        self,
        connection: socket.socket,
        metadata: tuple[tuple[str, str], ...],
        timeout: float | None,
        stopping: Callable[[], bool],
    ) -> None:
        self._connection = connection
        self._stopping = stopping
        self._metadata = metadata
        self._until = None if timeout is None else time.monotonic() + timeout
        self.code = grpc.StatusCode.OK
        self.details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> float | None:
        return None if self._until is None else max(self._until - time.monotonic(), 0.0)

    def is_active(self) -> bool:
        """Whether the forwarding worker still waits: it closes the connection when it gives
        up (its deadline) or goes away. (While this worker stops, reading has ended on every
        connection: calls under way are let finish.)"""
        if self._stopping():
            return True
        poller = select.poll()
        poller.register(self._connection, select.POLLIN)
        if not poller.poll(0):
            return True  # nothing to read: the connection is open
        try:
            return self._connection.recv(1, socket.MSG_PEEK) != b""
        except OSError:
            return False

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


def _status(code: grpc.StatusCode, details: str) -> wpb.RelayAnswer:
    return wpb.RelayAnswer(code=code.value[0], details=details)


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
        max_calls: int,
        max_bytes: int,
    ) -> None:
        """`name`: the abstract socket's name. `max_bytes`: the largest request or response
        message. Callers beyond `max_connections` use gRPC; calls beyond `max_calls` at once
        wait for one to end (within their deadline)."""
        self.name = name
        self._handlers = handlers
        self._gate = gate
        self._max_connections = max_connections
        self._calls = threading.BoundedSemaphore(max_calls)
        self._max_bytes = max_bytes
        # Threads are reused from connection to connection (the metrics keep a cell per thread).
        self._threads = futures.ThreadPoolExecutor(max_connections, thread_name_prefix="relay")
        self._connections: set[socket.socket] = set()
        self._lock = threading.Condition()
        self._stopping = False
        self._closed = False  # the grace period is over: nothing more runs
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None

    def stopping(self) -> bool:
        """Whether reading has ended on every connection while calls under way finish (the
        grace period of a stop): a caller that gave up cannot be told from one still waiting."""
        return self._stopping and not self._closed

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind("\0" + self.name)
        except OSError:
            listener.close()
            raise
        listener.listen(128)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        """Take no new connection or call: calls already written are still answered (see
        `wait`); a caller writing one now finds the connection closed and uses gRPC."""
        with self._lock:
            self._stopping = True
            listener, self._listener = self._listener, None
            connections = list(self._connections)
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        if self._acceptor is not None:
            # Its accept call holds the socket until it returns: once it has, the socket's
            # name is free for a relay started again in this process.
            self._acceptor.join(5)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RD)  # what was written is still read

    def wait(self, timeout: float | None) -> None:
        """Until the calls under way are answered (at most `timeout` seconds), then end every
        connection."""
        with self._lock:
            self._lock.wait_for(lambda: not self._connections, timeout)
            self._closed = True
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._threads.shutdown(wait=False)

    def _accept(self) -> None:
        while (listener := self._listener) is not None:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # stopped
            with self._lock:
                admitted = not self._stopping and len(self._connections) < self._max_connections
                if admitted:
                    self._connections.add(connection)
            try:
                if not admitted:
                    connection.sendall(_FULL)
                    connection.close()
                    continue
                self._threads.submit(self._serve, connection)
            except (OSError, RuntimeError):  # the caller went, or no thread could start
                self._forget(connection)

    def _forget(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)
            self._lock.notify_all()
        connection.close()

    def _serve(self, connection: socket.socket) -> None:
        try:
            connection.sendall(_READY)
            # A worker connects to send a call: a connection that sends none is let go.
            connection.settimeout(FRAME_SECONDS)
            while self._serve_one(connection):
                connection.settimeout(None)  # between calls an admitted caller's may idle
        except _BadFrame as exc:
            log.warning("relay: %s; connection closed", exc)
        except (OSError, EOFError, DecodeError):
            pass  # the other worker went away, or sent what is not a call
        except Exception:  # a bug of the relay: never a thread that dies silently
            log.exception("relay: a connection failed")
        finally:
            self._forget(connection)

    def _serve_one(self, connection: socket.socket) -> bool:
        """Read, run and answer one call; False: the connection is to end."""
        first = connection.recv(_HEADER_LIMIT + _CALL_LENGTHS.size)
        if not first:
            return False
        until = time.monotonic() + FRAME_SECONDS  # once a call starts, it arrives within this
        head = _read_exactly(connection, _CALL_LENGTHS.size, first, until)
        header_size, request_size = _CALL_LENGTHS.unpack_from(head)
        if header_size > _HEADER_LIMIT:
            raise _BadFrame(f"a call header of {header_size} bytes")
        end = _CALL_LENGTHS.size + header_size
        header = _read_exactly(connection, end, head, until)
        call = wpb.RelayCall.FromString(header[_CALL_LENGTHS.size : end])
        first = header[end:]
        metadata = tuple(
            (item.key, item.value)
            for item in call.metadata
            if _HEADER_KEY.issuperset(item.key) and _printable(item.value)
        )
        handler = self._gate(self._handler, _Details(call.method, metadata))
        admitted = handler is not None and handler.unary_unary is not None
        if not admitted or request_size > self._max_bytes:
            # The request is not kept: read past (when it is not over the limit, so that its
            # caller finishes writing), the answer goes back, and the connection ends.
            answer = self._refusal(handler, connection, metadata, request_size)
            answer.closing = True
            if request_size <= self._max_bytes:
                _skip(connection, request_size - len(first), until)
            connection.settimeout(FRAME_SECONDS)
            connection.sendall(_frame(answer))
            return False
        if len(first) > request_size:
            raise _BadFrame("more bytes than the call said")
        request = _read_exactly(connection, request_size, first, until)
        answer = self._run(handler, call, metadata, request, connection)
        answer.closing = self._stopping
        connection.settimeout(FRAME_SECONDS)  # the caller is reading: it takes the answer
        connection.sendall(_frame(answer))
        return not answer.closing

    def _handler(self, details: _Details) -> grpc.RpcMethodHandler[Any, Any] | None:
        return self._handlers.get(details.method)

    def _refusal(
        self,
        handler: Any,  # a grpc.RpcMethodHandler whose behaviours take a `_Context`, or None
        connection: socket.socket,
        metadata: tuple[tuple[str, str], ...],
        request_size: int,
    ) -> wpb.RelayAnswer:
        if handler is None:
            return _status(grpc.StatusCode.UNIMPLEMENTED, "method not relayed")
        if handler.unary_unary is None:  # the gate's refusal, shaped to take a stream
            context = _Context(connection, metadata, None, self.stopping)
            try:
                handler.stream_unary(iter(()), context)
            except _Aborted:
                return _status(context.code, context.details)
            return _status(grpc.StatusCode.INTERNAL, "internal error")
        return _status(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"request of {request_size} bytes is over the limit of {self._max_bytes}",
        )

    def _run(
        self,
        handler: Any,  # a grpc.RpcMethodHandler whose behaviours take a `_Context`
        call: wpb.RelayCall,
        metadata: tuple[tuple[str, str], ...],
        request: bytes,
        connection: socket.socket,
    ) -> wpb.RelayAnswer:
        """The answer of `handler` to `request`, once a call slot is free."""
        timeout = call.timeout_seconds if call.timeout_seconds > 0 else None
        context = _Context(connection, metadata, timeout, self.stopping)
        if not self._calls.acquire(timeout=-1 if timeout is None else timeout):
            return _status(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed in a queue")
        try:
            if self._closed:  # stopped while it waited: it never starts
                return _status(grpc.StatusCode.UNAVAILABLE, "this worker is stopping; try again")
            response = handler.unary_unary(handler.request_deserializer(request), context)
            body = handler.response_serializer(response)
        except _Aborted:
            return _status(context.code, context.details)
        except Exception:  # the handler wrapper maps the handler's errors: this is past it
            log.exception("relay: answering %s failed", call.method)
            return _status(grpc.StatusCode.INTERNAL, "internal error")
        finally:
            self._calls.release()
        if context.code is not grpc.StatusCode.OK:
            return _status(context.code, context.details)
        if len(body) > self._max_bytes:
            return _status(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"response of {len(body)} bytes is over the limit of {self._max_bytes}",
            )
        return wpb.RelayAnswer(response=body)


def _frame(answer: wpb.RelayAnswer) -> bytes:
    body = answer.SerializeToString()
    return _ANSWER_LENGTH.pack(len(body)) + body


class RelayClient:
    """Calls of one worker's relay socket, on a connection per calling thread."""

    def __init__(self, name: str, max_bytes: int) -> None:
        self.name = name
        self._max_bytes = max_bytes
        self._local = threading.local()

    def _connect(self, until: float | None) -> socket.socket | None:
        """A new connection, or None: the relay is not there, or takes no more connections."""
        wait = (
            _GREETING_SECONDS if until is None else min(_GREETING_SECONDS, until - time.monotonic())
        )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(max(wait, 0.001))
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

    def _write(self, sock: socket.socket, frame: bytes, until: float | None) -> None:
        sock.settimeout(None if until is None else max(until - time.monotonic(), 0.001))
        try:
            sock.sendall(frame)
        except TimeoutError:
            # Not all written, so the owner cannot run it; and no time is left to send it again.
            self._drop()
            raise DeadlineExceeded("the deadline passed before another worker answered") from None

    def _send(self, frame: bytes, until: float | None) -> socket.socket | None:
        """The connection `frame` was written on; None: it could not be written, so nothing
        ran. A connection the relay closed since its last call is replaced once."""
        sock: socket.socket | None = getattr(self._local, "sock", None)
        if sock is not None:
            try:
                self._write(sock, frame, until)
                return sock
            except OSError:
                self._drop()
        sock = self._connect(until)
        if sock is None:
            return None
        try:
            self._write(sock, frame, until)
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
        send it over gRPC, within what is left of `timeout`)."""
        if timeout is not None and timeout <= 0:
            raise DeadlineExceeded("the deadline passed before another worker answered")
        if len(request) > self._max_bytes:
            return None  # gRPC refuses it with the server's own message
        until = None if timeout is None else time.monotonic() + timeout
        call = wpb.RelayCall(method=method, timeout_seconds=timeout or 0.0)
        for key, value in metadata:
            if isinstance(value, str):
                call.metadata.add(key=key, value=value)
        header = call.SerializeToString()
        sock = self._send(_CALL_LENGTHS.pack(len(header), len(request)) + header + request, until)
        if sock is None:
            return None
        try:
            sock.settimeout(None if until is None else max(until - time.monotonic(), 0.001))
            answer = self._answer(sock)
        except TimeoutError:
            self._drop()  # its answer may still come: the connection is not used again
            raise DeadlineExceeded("the deadline passed before another worker answered") from None
        except (OSError, EOFError, DecodeError, _BadFrame):
            self._drop()
            raise Unavailable("another worker of this graph did not answer; try again") from None
        if answer.closing:
            self._drop()
        return answer

    def _answer(self, sock: socket.socket) -> wpb.RelayAnswer:
        first = sock.recv(1 << 16)
        if not first:
            raise EOFError
        head = _read_exactly(sock, _ANSWER_LENGTH.size, first)
        (size,) = _ANSWER_LENGTH.unpack_from(head)
        if size > self._max_bytes + _ANSWER_SLACK:
            raise _BadFrame(f"an answer of {size} bytes")
        end = _ANSWER_LENGTH.size + size
        return wpb.RelayAnswer.FromString(_read_exactly(sock, end, head)[_ANSWER_LENGTH.size : end])


def answered_error(status: grpc.StatusCode, details: str) -> RequestError:
    """The error another worker answered a call with (over the relay or gRPC), to answer the
    caller with: its code and message as they are, except that a status no handler answers
    with (OK on a failure, UNKNOWN) means the worker could not be reached."""
    if status in (grpc.StatusCode.OK, grpc.StatusCode.UNKNOWN):
        return Unavailable("another worker of this graph is not reachable; try again")
    failure = RequestError(details or status.name)
    failure.code = Code[status.name]
    return failure


def relayed_error(answer: wpb.RelayAnswer) -> RequestError:
    """The error a relayed call was answered with, to answer the caller with."""
    return answered_error(_CODES.get(answer.code, grpc.StatusCode.UNKNOWN), answer.details)
