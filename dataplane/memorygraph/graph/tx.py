"""A write transaction of the service layer: reads see its own pending writes, and at the end
it becomes one `StoreChanges` committed as one batch."""

from __future__ import annotations

from memorygraph.model import Edge, EdgeKey, Event, Node, NodeKind
from memorygraph.store import GraphStore, StoreChanges

__all__ = ["Transaction"]


class Transaction:
    def __init__(self, store: GraphStore, time: int, parent: Transaction | None = None) -> None:
        self.store = store
        self.time = time
        # A nested transaction reads through its parent's pending writes and joins them only
        # on `merge()`; dropped instead, it leaves the parent as it was.
        self.parent = parent
        self.sequence = 0  # the last event sequence, once committed
        self._created: dict[bytes, Node] = {}
        self._updated: dict[bytes, tuple[Node, Node]] = {}
        self._deleted: dict[bytes, Node] = {}
        self._edges_created: dict[EdgeKey, Edge] = {}
        self._edges_deleted: dict[EdgeKey, Edge] = {}
        # Last prompt per session among this transaction's new prompts (for `follows` edges).
        self._last_prompt: dict[bytes, bytes] = {}
        # Archival and restore: see the StoreChanges fields of the same names.
        self.events: list[Event] | None = None
        self.restored_events: list[Event] = []
        self.erase_history = False
        # DeleteSession: see StoreChanges.hide_sessions.
        self.hide_sessions: list[bytes] = []

    def get_node(self, node_id: bytes) -> Node | None:
        if node_id in self._deleted:
            return None
        if node_id in self._created:
            return self._created[node_id]
        if node_id in self._updated:
            return self._updated[node_id][1]
        if self.parent is not None:
            return self.parent.get_node(node_id)
        return self.store.get_node(node_id)

    def id_taken(self, node_id: bytes) -> bool:
        """Whether a node with this id exists, here or in the store, readable or not (a session
        being deleted still holds its ids until it is gone)."""
        if node_id in self._deleted:
            return False
        if node_id in self._created or node_id in self._updated:
            return True
        if self.parent is not None:
            return self.parent.id_taken(node_id)
        return self.store.node_stored(node_id)

    def create(self, node: Node) -> None:
        self._created[node.id] = node
        if node.kind is NodeKind.PROMPT and node.session_id is not None:
            self._last_prompt[node.session_id] = node.id

    def update(self, before: Node, after: Node) -> None:
        if after.id in self._created:
            self._created[after.id] = after
        elif after.id in self._updated:
            self._updated[after.id] = (self._updated[after.id][0], after)
        else:
            self._updated[after.id] = (before, after)

    def delete(self, node: Node) -> None:
        if self._created.pop(node.id, None) is None:
            self._updated.pop(node.id, None)
            self._deleted[node.id] = node

    def get_edge(self, key: EdgeKey) -> Edge | None:
        if key in self._edges_deleted:
            return None
        if key in self._edges_created:
            return self._edges_created[key]
        if self.parent is not None:
            return self.parent.get_edge(key)
        return self.store.get_edge(key)

    def create_edge(self, edge: Edge) -> None:
        self._edges_created[edge.key] = edge

    def delete_edge(self, edge: Edge) -> None:
        if self._edges_created.pop(edge.key, None) is None:
            self._edges_deleted[edge.key] = edge

    def last_prompt(self, session_id: bytes) -> bytes | None:
        """The newest prompt of a session, this transaction's own included."""
        if session_id in self._last_prompt:
            return self._last_prompt[session_id]
        if self.parent is not None:  # batched requests create nodes; none deletes a prompt
            return self.parent.last_prompt(session_id)
        for _, node_id, kind in self.store.scan_session(session_id, reverse=True):
            if kind is NodeKind.PROMPT and node_id not in self._deleted:
                return node_id
        return None

    def nested(self) -> Transaction:
        """A transaction for one part of this one (a request of a batch of requests)."""
        return Transaction(self.store, self.time, parent=self)

    def merge(self) -> None:
        """Add what this nested transaction wrote to its parent, in the order written."""
        parent = self.parent
        assert parent is not None, "merge() is for nested transactions"
        for node in self._created.values():
            parent.create(node)
        for before, after in self._updated.values():
            parent.update(before, after)
        for node in self._deleted.values():
            parent.delete(node)
        for edge in self._edges_created.values():
            parent.create_edge(edge)
        for edge in self._edges_deleted.values():
            parent.delete_edge(edge)

    def changes(self) -> StoreChanges:
        return StoreChanges(
            created=list(self._created.values()),
            updated=list(self._updated.values()),
            deleted=list(self._deleted.values()),
            edges_created=list(self._edges_created.values()),
            edges_deleted=list(self._edges_deleted.values()),
            time=self.time,
            events=self.events,
            restored_events=self.restored_events,
            erase_history=self.erase_history,
            hide_sessions=self.hide_sessions,
        )
