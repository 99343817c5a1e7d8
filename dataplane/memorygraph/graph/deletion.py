"""Deleting a session in steps, so that a large one never holds up other writers.

One small commit hides the session: from then on it and every node of it are gone from every
read, and the ids stay taken. Then the session is deleted a part at a time — `STEP_NODES` of its
nodes with every edge touching them per commit, the session's own node last — each commit
taking the writers' lock only for itself, so writes to other sessions go on in between. The
events of each part are recorded with it (nodes and edges deleted, SESSION_DELETED last).

A crash leaves the session hidden and marked in the store; `resume` finishes what a crash
left, and the server runs it at start. No reader ever sees a session half deleted.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time

from memorygraph.errors import Unavailable
from memorygraph.graph.checks import require_kind
from memorygraph.graph.writes import Writer
from memorygraph.model import NodeKind, format_id
from memorygraph.store import GraphStore

__all__ = ["STEP_NODES", "STEP_PAUSE_SECONDS", "SessionDeletion"]

log = logging.getLogger("memorygraph.graph")

STEP_NODES = 250
STEP_PAUSE_SECONDS = 0.001


class SessionDeletion:
    def __init__(self, store: GraphStore, writer: Writer) -> None:
        self.store = store
        self.writer = writer
        self._stopping = threading.Event()
        self._running = 0  # deletions between two steps or in one
        self._idle = threading.Condition()
        # What a crash left when the store was opened (later deletions finish by themselves).
        self._left = store.sessions_being_deleted()

    def delete(self, session_id: bytes) -> tuple[int, int]:
        """Hide the session, then delete it whole; returns (nodes, edges) deleted."""
        with self.writer.transaction() as tx:
            require_kind(tx, session_id, NodeKind.SESSION)
            tx.hide_sessions.append(session_id)
        return self.finish(session_id)

    def finish(self, session_id: bytes) -> tuple[int, int]:
        """Delete what is left of a hidden session, a step at a time. It runs outside the
        caller's context: whatever the caller's deadline, a hidden session goes."""
        result: tuple[int, int] = contextvars.Context().run(self._steps, session_id)
        return result

    def _steps(self, session_id: bytes) -> tuple[int, int]:
        with self._idle:
            self._running += 1
        try:
            return self._step_all(session_id)
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

    def _step_all(self, session_id: bytes) -> tuple[int, int]:
        nodes = edges = 0
        after = b""
        while True:
            if self._stopping.is_set():
                raise Unavailable(
                    f"the server is stopping; session {format_id(session_id)} is gone and "
                    "its deletion finishes when the server starts again"
                )
            with self.writer.transaction() as tx:
                step_nodes, step_edges, after = self.store.deletion_step(
                    session_id, STEP_NODES, after
                )
                for edge in step_edges:
                    tx.delete_edge(edge)
                for node in step_nodes:
                    tx.delete(node)
            nodes += len(step_nodes)
            edges += len(step_edges)
            if not step_nodes or any(n.id == session_id for n in step_nodes):
                break
            # The writers' lock is not fair: a writer waiting for it gets its turn here rather
            # than the next step taking it straight back.
            time.sleep(STEP_PAUSE_SECONDS)
        return nodes, edges

    def resume(self) -> None:
        """Finish the deletions a crash interrupted."""
        for session_id in self._left:
            log.info("finishing the deletion of session %s", format_id(session_id))
            try:
                self.finish(session_id)
            except Unavailable:
                return

    def stop(self, timeout: float = 30.0) -> None:
        """Stop every deletion between two steps and wait until they have (a deletion left
        unfinished is finished at the next start)."""
        self._stopping.set()
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout)
