"""A graph's pods as the operator reaches them on their peer port, kept in memory.

The pods agree on one view (each move recorded by all, as the data plane's hand-over does):
which pods answer, which map size they know of, and what a ``TakeShard`` does (move the shard,
raise its epoch) or answers instead. The real pods' side is tested against real members in
``tests/dataplane/test_operator_moves.py``.
"""

from __future__ import annotations

from memorygraph_operator.peers import PeerError, Taken
from memorygraph_operator.render.context import MemberView


class PodsDouble:
    """The pods of one graph: ``running`` of them answer, knowing a map of ``members`` pods."""

    def __init__(self, owners: list[int], members: int, key: str | None = None) -> None:
        self.owners = list(owners)
        self.epochs = [0] * len(owners)
        self.members = members
        self.running = members
        self.map_epoch = 1
        self.key = key  # None: any key is taken
        self.refuse: str | None = None  # what TakeShard answers instead of moving
        # Moves left unfinished on a pod (its answer lost): pod -> (shard, source).
        self.unfinished: dict[int, tuple[int, int]] = {}
        # Parts of writes a pod has still to deliver to others: pod -> count.
        self.undelivered: dict[int, int] = {}
        self.asked: list[str] = []  # "view <pod>" and "take <shard> <pod>", in order
        self.addresses: set[str] = set()

    @staticmethod
    def pod_of(address: str) -> int:
        """The pod's ordinal in ``<graph>-<i>.<graph>-headless.<ns>.svc:50052``."""
        return int(address.split(".", 1)[0].rsplit("-", 1)[1])

    def _answering(self, address: str, key: str) -> int:
        self.addresses.add(address)
        pod = self.pod_of(address)
        if pod >= self.running:
            raise PeerError("UNAVAILABLE", "failed to connect to all addresses")
        if self.key is not None and key != self.key:
            raise PeerError("UNAUTHENTICATED", "a valid peer key is required")
        return pod

    def move(self, shard: int, pod: int) -> int:
        """Move ``shard`` to ``pod`` as a finished move does; its new epoch."""
        self.owners[shard] = pod
        self.epochs[shard] += 1
        return self.epochs[shard]

    async def view(self, address: str, key: str) -> MemberView:
        pod = self._answering(address, key)
        self.asked.append(f"view {pod}")
        return MemberView(
            tuple(self.owners),
            tuple(self.epochs),
            self.map_epoch,
            self.members,
            self.unfinished.get(pod),
            self.undelivered.get(pod, 0),
        )

    async def take(self, address: str, key: str, shard: int) -> Taken:
        pod = self._answering(address, key)
        self.asked.append(f"take {shard} {pod}")
        if self.refuse is not None:
            raise PeerError("FAILED_PRECONDITION", self.refuse)
        left = self.unfinished.get(pod)
        if left is not None and left[0] != shard:
            raise PeerError(
                "FAILED_PRECONDITION",
                f"the move of shard {left[0]} to this member is unfinished: ask for that shard "
                "again to finish it first",
            )
        self.unfinished.pop(pod, None)
        if self.owners[shard] == pod:  # done before: only tidied up now
            return Taken(self.epochs[shard], 0, 0.0)
        return Taken(self.move(shard, pod), 10, 0.04)

    def spread(self) -> list[int]:
        return [self.owners.count(p) for p in range(self.members)]


def unreachable() -> PodsDouble:
    """Pods that never answer (an operator outside the cluster, or kwok's pods)."""
    pods = PodsDouble([], 0)
    pods.running = 0
    return pods
