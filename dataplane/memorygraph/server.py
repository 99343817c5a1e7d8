"""Assembles and runs the data plane: store, graph service, gRPC server (with the standard
health service and reflection), metrics endpoint, and graceful shutdown on SIGTERM / Ctrl-C."""

from __future__ import annotations

import contextlib
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from types import FrameType
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from memorygraph.affinity import pin_to_one_cpu, unpin_rocksdb_threads
from memorygraph.auth import KeyRing
from memorygraph.config import Durability, ServerConfig
from memorygraph.errors import ConfigError
from memorygraph.events.hub import EventHub
from memorygraph.events.retention import EventRetention
from memorygraph.graph.query import page_bytes
from memorygraph.graph.service import GraphService, Limits
from memorygraph.integrations.registry import RegistryClient
from memorygraph.integrations.reporter import CircuitBreaker, RegistryReporter
from memorygraph.logs import setup_logging
from memorygraph.metrics import definitions as metrics
from memorygraph.metrics.endpoint import MetricsServer
from memorygraph.model import parse_id
from memorygraph.periodic import Periodic
from memorygraph.plugins.graph_hooks import PluginHooks
from memorygraph.plugins.outbound import WebhookPolicy
from memorygraph.plugins.reload import PluginManager
from memorygraph.servicers.front import SCATTER_THREADS, Front, FrontServicer
from memorygraph.servicers.gate import CallGate, ServingStatus
from memorygraph.servicers.handlers import HandlerSettings, HandlerWrapper
from memorygraph.servicers.memorygraph import (
    MemoryGraphServicer,
    add_handlers,
    add_to_server,
    query_filter,
    service_handlers,
)
from memorygraph.servicers.moving import MapKeeper, ShardMover, finish_own_part
from memorygraph.servicers.peers import PeerServicer
from memorygraph.servicers.podmoves import PodMover
from memorygraph.servicers.pools import ElasticPool
from memorygraph.servicers.relay import RelayServer
from memorygraph.servicers.restores import RestoreLimits
from memorygraph.servicers.watchdog import PoolWatchdog
from memorygraph.store import GraphStore, KeyValueStore, open_rocks_store
from memorygraph.store.cluster import refuse_member_volume
from memorygraph.store.graph_store import ShardCountMismatch
from memorygraph.store.split import SplitKV, WorkerMap
from memorygraph.tls import server_credentials
from memorygraph.topology import PodMembers, Topology, topology_of
from memorygraph.v1 import graph_pb2, workers_pb2_grpc

__all__ = ["RunningServer", "run_server", "start_server", "wait_for_stop_signal"]

log = logging.getLogger("memorygraph.server")

# How long a signal delivered to another thread may wait before the main thread acts on it.
STOP_SIGNAL_POLL_SECONDS = 0.2
# How often a worker delivers again what its writes could not deliver to other workers.
OUTBOX_RETRY_SECONDS = 1.0
# How often a pod member reads the operator's shard map again.
MAP_POLL_SECONDS = 2.0
# The least time queued after-hook deliveries get on shutdown.
AFTER_HOOK_DRAIN_MIN_SECONDS = 1.0
# At shutdown, parts of writes still to deliver to other workers get what is left of the
# grace period, and at least this long.
OUTBOX_LAST_DELIVERY_SECONDS = 1.0

SERVICE_NAME = graph_pb2.DESCRIPTOR.services_by_name["MemoryGraphService"].full_name


@dataclass
class RunningServer:
    """A started data plane; `stop()` shuts it down in order and closes the store."""

    grpc_server: grpc.Server
    health: health.HealthServicer
    serving: ServingStatus
    watchdog: PoolWatchdog
    pools: tuple[futures.Executor, ...]  # the threads that run calls, shut down after them
    resumer: threading.Thread
    store: GraphStore
    service: GraphService
    hub: EventHub
    retention: EventRetention
    reporter: RegistryReporter | None
    plugins: PluginManager | None
    metrics_server: MetricsServer
    port: int
    config: ServerConfig
    # A worker's: delivers what its writes left for other workers (see `store.split`), and
    # serves them on its internal address.
    outbox: Periodic | None = None
    internal: grpc.Server | None = None
    relay: RelayServer | None = None
    peer: PeerServicer | None = None
    # A pod member's: takes the operator's shard map again when it changes.
    map_poll: Periodic | None = None
    stopped: bool = False

    def _deliver_left(self, seconds: float) -> None:
        """Deliver what the outbox holds for other workers before the store closes (a pod
        leaving its graph takes no part of a write with it), for at most ``seconds`` (and a
        moment); what is left is delivered when this worker starts again."""
        deadline = time.monotonic() + max(seconds, OUTBOX_LAST_DELIVERY_SECONDS)
        while not self.store.deliver_outbox():
            if time.monotonic() > deadline:
                log.warning(
                    "%d parts of writes not delivered to other workers: delivered when this "
                    "one starts again",
                    self.store.undelivered(),
                )
                return
            time.sleep(0.2)

    def stop(self, grace: float | None = None) -> None:
        if self.stopped:
            return
        self.stopped = True
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        started = time.monotonic()
        self.watchdog.stop()
        self.serving.set(False)
        self.health.enter_graceful_shutdown()
        self.metrics_server.ready.clear()
        # In-flight RPCs get `grace` seconds to finish; new ones are refused meanwhile.
        stopped = self.grpc_server.stop(grace)
        if self.internal is not None:
            stopped_inside = self.internal.stop(grace)
        if self.relay is not None:
            self.relay.stop()  # calls already written are answered, as gRPC's are
        # Live event streams never finish on their own: end them so the grace period is not
        # spent waiting for them.
        self.hub.close()
        stopped.wait()
        if self.internal is not None:
            stopped_inside.wait()
        if self.peer is not None:
            self.peer.close()  # no lease runs out on a store about to close
        if self.relay is not None:
            self.relay.wait(max(grace - (time.monotonic() - started), 0.0))
        # Deletions still under way stop between two steps; they finish at the next start.
        self.service.deletion.stop()
        self.resumer.join()
        for pool in self.pools:
            pool.shutdown(wait=False)
        self.retention.stop()
        if self.outbox is not None:
            self.outbox.stop()
            self._deliver_left(grace - (time.monotonic() - started))
        if self.map_poll is not None:
            self.map_poll.stop()
        if self.reporter is not None:
            self.reporter.stop()
        if self.plugins is not None:
            # Queued after-hooks get what is left of the grace period, and at least a moment;
            # those still queued then are dropped and counted.
            left = grace - (time.monotonic() - started)
            self.plugins.stop(max(AFTER_HOOK_DRAIN_MIN_SECONDS, left))
        self.store.close()
        self.metrics_server.stop()
        log.info("stopped; store closed cleanly")


def _open_store(config: ServerConfig, topology: Topology | None) -> GraphStore:
    data_dir = config.data_dir if topology is None else topology.engine_dir()
    try:
        engine = open_rocks_store(str(data_dir))
    except OSError as exc:
        raise ConfigError(f"cannot use data directory {data_dir}: {exc.strerror}") from exc
    except Exception as exc:  # rocksdict raises plain exceptions carrying RocksDB's status text
        text = str(exc)
        if "lock" in text.lower():
            raise ConfigError(
                f"data directory {data_dir} is in use by another MemoryGraph process"
            ) from exc
        raise ConfigError(f"cannot open the store in {data_dir}: {text}") from exc
    kv: KeyValueStore = engine
    try:
        if topology is None:
            refuse_member_volume(engine)
        else:
            topology.opened(engine)
            kv = _split_kv(engine, topology)
    except BaseException:
        engine.close()
        raise
    shards = config.shards if topology is None else topology.placement.shards
    try:
        return _graph_store(kv, config, shards)  # closes `kv` when it refuses it
    except ShardCountMismatch as exc:
        where = f"data directory {data_dir}"
        raise ConfigError(str(ShardCountMismatch(exc.count, exc.asked, where))) from None


def _split_kv(engine: KeyValueStore, topology: Topology) -> SplitKV:
    """This worker's view of the graph: its engine, and the other workers over gRPC."""
    me = topology.me
    peers = {
        other: topology.peer(topology.peer_channel(other), other)
        for other in range(topology.placement.workers)
        if other != me
    }
    return SplitKV(engine, WorkerMap(topology.placement.owners, me), peers)


def _front(config: ServerConfig, topology: Topology) -> Front:
    """How this worker routes calls over the workers (see `servicers.front`)."""
    placement = topology.placement
    return Front(
        topology.me,
        list(placement.owners),
        placement.epoch,
        {w: topology.peer_channel(w) for w in range(placement.workers)},
        topology.client_addresses(),
        page_bytes(config.max_message_bytes),
        topology.relays(),
        credentials=topology.forward_credentials(),
        wait_for_ready=topology.waits_for_restart,
        strict=isinstance(topology, PodMembers),
    )


def _bind(server: grpc.Server, config: ServerConfig, topology: Topology | None) -> int:
    """Listen on the configured port (shared by every worker), a local worker also on its own
    (both with TLS when configured); returns the port."""
    addresses = [f"{config.host}:{config.port}"]
    own = None if topology is None else topology.own_port()
    if own is not None:
        addresses.append(f"{config.host}:{own}")
    bound = []
    for address in addresses:
        credentials = server_credentials(config.tls)  # reloadable: one port each
        try:
            if credentials is None:
                bound.append(server.add_insecure_port(address))
            else:
                bound.append(server.add_secure_port(address, credentials))
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {address}: the port is in use or invalid") from exc
    return bound[0]


def _internal_server(
    config: ServerConfig,
    keyring: KeyRing | None,
    servicer: MemoryGraphServicer,
    front: Front,
    service: GraphService,
    moves: _Moves,
    topology: Topology,
) -> tuple[grpc.Server, RelayServer | None, PeerServicer]:
    """What the other workers call (forwarded calls, their parts of listings and event
    streams, and `WorkerPeer`), on this worker's internal address only, and (local workers)
    its relay for their unary calls: none of it is reachable on the client ports, and only
    there is a call taken as coming from a worker."""
    pool = futures.ThreadPoolExecutor(max_workers=config.max_workers, thread_name_prefix="peer")
    health_pool = futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="peer-health")
    status = ServingStatus()
    status.set(True)
    peers_only = topology.peer_keyring(keyring)
    opens = peers_only is keyring  # a peer port admits no one without its key
    server, wrapper, gate = _grpc_server(
        config, peers_only, pool, health_pool, status, open_health=opens
    )
    handlers = service_handlers(
        FrontServicer(servicer, front, query_filter, trusted=True, mover=moves.mover)
    )
    add_handlers(handlers, server)
    peer = PeerServicer(service.endpoint, on_map=moves.on_map, members=moves.members)
    workers_pb2_grpc.add_WorkerPeerServicer_to_server(peer, server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    topology.bind_internal(server)
    name = topology.relay_name()
    if name is None:
        return server, None, peer
    unary = {
        f"/{SERVICE_NAME}/{method}": wrapper.wrap(f"/{SERVICE_NAME}/{method}", handler)
        for method, handler in handlers.items()
        if handler.unary_unary is not None
    }
    # Each other worker calls from its RPC threads (its read pool's and its other calls', up
    # to max_workers each) and its listings' threads.
    callers = (len(front.channels) - 1) * (2 * config.max_workers + SCATTER_THREADS)
    relay = RelayServer(
        name,
        unary,
        gate.intercept_service,
        max_connections=max(callers, 1),
        max_calls=config.max_workers,
        max_bytes=config.max_message_bytes,
    )
    return server, relay, peer


@dataclass(frozen=True, slots=True)
class _Moves:
    """How a worker keeps to the graph's shard map and takes part in moves."""

    keeper: MapKeeper
    mover: ShardMover | None = None  # local workers: MoveShard moves shards here
    members: PodMover | None = None  # pod members: TakeShard, and the others' hand-overs

    def on_map(self) -> None:
        """Take the map again; a pod member first asks the others what it missed."""
        if self.members is not None:
            self.members.refresh()
        else:
            self.keeper.reload()


def _movers(
    config: ServerConfig, topology: Topology, service: GraphService, hub: EventHub, front: Front
) -> _Moves:
    """How this worker keeps to the graph's shard map, and takes shards from the others; its
    part of a move cut short by a restart is finished first."""
    store = service.store
    keeper = MapKeeper(topology.read_placement, store, front.reassign, front.epoch, hub)
    metrics.SHARDS_OWNED.set(front.owners.count(topology.me))
    if isinstance(topology, PodMembers):
        members = PodMover(topology, store, service.endpoint, hub, keeper)
        members.finish_own_part()
        # What the other members recorded while this one was down (without holding up its
        # start: members that are down answer later, or never).
        threading.Thread(
            target=_refresh, args=(members,), name="shard-refresh", daemon=True
        ).start()
        return _Moves(keeper, members=members)
    split = store.kv
    assert isinstance(split, SplitKV)
    finish_own_part(config.data_dir, topology.me, store, log.info)
    mover = ShardMover(
        topology.me, config.data_dir, store, service.endpoint, hub, split.peers, keeper
    )
    return _Moves(keeper, mover=mover)


def _refresh(members: PodMover) -> None:
    try:
        members.refresh()
    except Exception:  # a thread of its own: said, not raised
        log.exception("the hand-overs the other members recorded could not be taken")


def _map_poll(members: PodMover) -> Periodic:
    """Takes the shard map again every MAP_POLL_SECONDS (a map the member cannot take is
    not taken: `topology.PodMembers.read_placement`), and a shard handed over to this member
    while it did not hear back."""

    def take() -> None:
        members.poll()

    return Periodic(
        "shard-map",
        MAP_POLL_SECONDS,
        take,
        log=log,
        failure="taking the operator's shard map failed; serving by the one taken before",
    )


def _graph_store(kv: KeyValueStore, config: ServerConfig, shards: int | None) -> GraphStore:
    """The graph store over `kv` with `shards` shards (None: the store's own); `kv` closed
    when the directory is refused (a later open in this process would otherwise find it
    locked)."""
    try:
        return GraphStore(
            kv,
            group_commit=config.durability is Durability.DURABLE,
            on_group=metrics.observe_group_commit,
            shards=shards,
        )
    except BaseException:
        kv.close()
        raise


def _count(store: GraphStore, session_id: str, limit: int) -> int:
    """Nodes in a session, counting no further than `limit` (for quota plugins)."""
    entries = store.scan_session(parse_id(session_id, "session_id"))
    return sum(1 for _ in itertools.islice(entries, limit))


def _publish_gauges(store: GraphStore, hub: EventHub) -> None:
    counts = store.counts()
    metrics.EVENT_LAST_SEQUENCE.set(store.events.last_sequence)
    metrics.EVENT_LOG_EVENTS.set(store.events.retained())
    metrics.EVENT_SUBSCRIBERS.set(hub.subscriber_count)
    metrics.EVENT_FANOUT_LAG.set(hub.lag())
    metrics.EVENT_SUBSCRIBER_BUFFERED.set(max(hub.buffered(), default=0))
    metrics.EVENT_SUBSCRIBER_BUFFERED_BYTES.set(max(hub.buffered_bytes(), default=0))
    for kind, count in counts.nodes.items():
        metrics.STORE_COUNTS.labels(kind.value).set(count)
    metrics.STORE_COUNTS.labels("edge").set(counts.edges)
    metrics.STORE_BYTES.set(store.size_bytes())


def _read_pool_gauges(pool: ElasticPool) -> Callable[[], None]:
    """What publishes the read pool's threads and the reads its spares took, when scraped."""
    published = 0

    def publish() -> None:
        nonlocal published
        metrics.READ_THREADS.set(pool.threads)
        spared = pool.spared
        metrics.READS_SPARED.inc(spared - published)
        published = spared

    return publish


def _grpc_server(
    config: ServerConfig,
    keyring: KeyRing | None,
    pool: futures.Executor,
    health_pool: futures.ThreadPoolExecutor,
    status: ServingStatus,
    *,
    open_health: bool = True,
    waiting_pool: futures.ThreadPoolExecutor | None = None,
) -> tuple[grpc.Server, HandlerWrapper, CallGate]:
    """The gRPC server: calls admitted by the gate (authentication, before any worker is
    taken; health checks answered there with `status`, on `health_pool`, so they answer while
    every worker is busy), run on `pool` (all but unary reads on `waiting_pool` if given) and
    wrapped by the handler wrapper. Without `open_health`, health checks and reflection need a
    key too, whatever the settings say."""
    gate = CallGate(
        keyring,
        status=status,
        health_pool=health_pool,
        open_health=config.auth.open_health and open_health,
        open_reflection=config.auth.open_reflection and open_health,
    )
    wrapper = HandlerWrapper(
        HandlerSettings(
            max_streams=config.max_streams,
            max_open_streams=config.max_open_streams,
            default_deadline_seconds=config.default_deadline_seconds,
            exempt=gate.exempt,
            write_timeout_seconds=config.stream_write_timeout_seconds,
            waiting_pool=waiting_pool,
        )
    )
    server = grpc.server(
        # gRPC only submits to the pool; its stubs ask for a ThreadPoolExecutor all the same.
        cast(futures.ThreadPoolExecutor, pool),
        interceptors=[gate],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", config.max_message_bytes),
            ("grpc.max_send_message_length", config.max_message_bytes),
        ],
    )
    return wrapper.wrapping(server), wrapper, gate


def _set_serving(
    health_servicer: health.HealthServicer, status: ServingStatus, serving: bool
) -> None:
    """Checks (answered by the gate) and watches (by the health servicer) report `serving`."""
    status.set(serving)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, status.status)


def _on_workers(
    healthy: bool,
    health_servicer: health.HealthServicer,
    status: ServingStatus,
    metrics_server: MetricsServer,
) -> None:
    """What the watchdog found: the health checks and probes say whether the server serves."""
    _set_serving(health_servicer, status, healthy)
    if healthy:
        metrics_server.alive.set()
    else:
        metrics_server.alive.clear()


def _pin_if_asked(config: ServerConfig, worker: int | None) -> frozenset[int] | None:
    """With `pin_cpus`, this process on one CPU; returns the CPUs it could run on before."""
    if not config.pin_cpus:
        return None
    cpu, allowed = pin_to_one_cpu(worker or 0)
    log.info("keeping this process on CPU %d (pin_cpus)", cpu)
    return allowed


def start_server(config: ServerConfig, worker: int | None = None) -> RunningServer:
    """Open the store and start serving; returns once the gRPC port is bound. If any step
    fails, what was started is stopped again, in reverse order.

    With `worker`, this process is that worker of a data directory served by several (see
    `store.split`): it serves its shards from its own store, reaches the others' through them,
    and listens on its own address as well as on the shared port. With `cluster.map_file`, it
    is one member of a graph served by several pods, each serving the shards the operator's
    shard map gives it (see `topology`)."""
    # Settings problems surface before anything is opened or bound.
    keyring = KeyRing.from_environment(config.auth.api_keys_file) if config.auth.enabled else None
    credentials = server_credentials(config.tls)
    topology = topology_of(config, worker)
    # Before any thread starts: a new thread runs where the thread that started it may.
    allowed = _pin_if_asked(config, worker)
    with contextlib.ExitStack() as undo:
        metrics_port = config.metrics_port if topology is None else topology.metrics_port()
        metrics_server = MetricsServer(config.host, metrics_port)
        metrics_server.start()
        undo.callback(metrics_server.stop)
        store = _open_store(config, topology)
        undo.callback(store.close)
        unpin_rocksdb_threads(allowed)
        outbox: Periodic | None = None
        if topology is not None:
            outbox = Periodic(
                "outbox",
                OUTBOX_RETRY_SECONDS,
                store.deliver_outbox,
                log=log,
                failure="delivering writes to other workers failed; will retry",
            )
        limits = Limits(
            max_content_bytes=config.max_content_bytes,
            max_metadata_bytes=config.max_metadata_bytes,
            max_name_bytes=config.max_name_bytes,
            max_text_bytes=config.max_text_bytes,
            max_items=config.max_list_items,
            max_tokens=config.max_response_tokens,
            max_message_bytes=config.max_message_bytes,
        )
        plugins: PluginManager | None = None
        service: GraphService
        if config.plugins_file is not None:
            plugins = PluginManager(
                config.plugins_file,
                lambda s, limit: _count(store, s, limit),
                policy=WebhookPolicy.from_config(config),
                after_queue_bytes=config.plugin_after_queue_bytes,
            )
            plugins.start()
            undo.callback(plugins.stop)
            service = GraphService(store, limits=limits, hooks=PluginHooks(plugins, store.get_node))
        else:
            service = GraphService(store, limits=limits)
        hub = EventHub(
            store, buffer_size=config.event_buffer_size, buffer_bytes=config.event_buffer_bytes
        )
        undo.callback(hub.close)
        reporter: RegistryReporter | None = None
        registry = config.registry
        if registry.url:
            url = registry.url
            reporter = RegistryReporter(
                store,
                lambda: RegistryClient(
                    url, token_file=registry.token_file, timeout=registry.timeout_seconds
                ),
                breaker=CircuitBreaker(
                    registry.breaker_threshold, registry.breaker_cooldown_seconds
                ),
            )
            reporter.start()
            undo.callback(reporter.stop)
        retention = EventRetention(
            store,
            max_age_seconds=config.event_retention_seconds,
            max_events=config.event_retention_max_events,
            floor=reporter.floor if reporter is not None else None,
        )
        retention.start()
        undo.callback(retention.stop)
        pool = ElasticPool(config.core_workers, config.max_workers, name="rpc-read")
        undo.callback(pool.shutdown, wait=False)
        waiting_pool = futures.ThreadPoolExecutor(
            max_workers=config.max_workers, thread_name_prefix="rpc-waiting"
        )
        undo.callback(waiting_pool.shutdown, wait=False)
        health_pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health")
        undo.callback(health_pool.shutdown, wait=False)
        status = ServingStatus()
        server, wrapper, _ = _grpc_server(
            config, keyring, pool, health_pool, status, waiting_pool=waiting_pool
        )
        servicer: Any = MemoryGraphServicer(
            service,
            hub,
            durability=config.durability.value,
            request_counts=wrapper.request_counts,
            undelivered_from=reporter.floor if reporter is not None else lambda: None,
            restores=RestoreLimits(
                max_restores=config.max_restores, budget_bytes=config.restore_budget_bytes
            ),
        )
        internal: grpc.Server | None = None
        relay: RelayServer | None = None
        peer: PeerServicer | None = None
        map_poll: Periodic | None = None
        if topology is not None:
            front = _front(config, topology)
            topology.attach(front, store)
            moves = _movers(config, topology, service, hub, front)
            internal, relay, peer = _internal_server(
                config, keyring, servicer, front, service, moves, topology
            )
            undo.callback(internal.stop, None)
            servicer = FrontServicer(
                servicer, front, query_filter, trusted=False, mover=moves.mover
            )
            if moves.members is not None:  # the operator's map changes under a running member
                map_poll = _map_poll(moves.members)
        add_to_server(servicer, server)
        health_servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = _bind(server, config, topology)
        if relay is not None:
            try:
                relay.start()
            except OSError as exc:
                raise ConfigError(f"worker {worker} is running already ({relay.name})") from exc
            undo.callback(relay.wait, 0.0)
            undo.callback(relay.stop)
        server.start()
        if internal is not None:
            internal.start()
        undo.pop_all()  # from here on, RunningServer.stop() owns the shutdown
    _set_serving(health_servicer, status, True)
    watchdog = PoolWatchdog(
        (pool, waiting_pool),
        lambda healthy: _on_workers(healthy, health_servicer, status, metrics_server),
    )
    watchdog.start()
    if outbox is not None:
        outbox.start()
    if map_poll is not None:
        map_poll.start()
    # Deletions a crash interrupted finish in the background (their sessions stay hidden).
    resumer = threading.Thread(target=service.deletion.resume, name="deletion-resume", daemon=True)
    resumer.start()
    publish_reads = _read_pool_gauges(pool)

    def collect() -> None:
        _publish_gauges(store, hub)
        publish_reads()

    metrics_server.collect_hook = collect
    metrics_server.ready.set()
    log.info(
        "serving gRPC%s on %s:%d, metrics on :%d, data in %s (%s)%s",
        "" if credentials is None else " with TLS",
        config.host,
        port,
        metrics_server.port,
        config.data_dir,
        config.durability.value,
        "" if topology is None else f" as {topology.describe()}",
    )
    return RunningServer(
        server,
        health_servicer,
        status,
        watchdog,
        (health_pool, pool, waiting_pool),
        resumer,
        store,
        service,
        hub,
        retention,
        reporter,
        plugins,
        metrics_server,
        port,
        config,
        outbox,
        internal,
        relay,
        peer,
        map_poll,
    )


def wait_for_stop_signal(on_ready: Callable[[], None] | None = None) -> signal.Signals:
    """Catch SIGTERM and SIGINT, call `on_ready`, and block until one of them arrives.

    The wait is a loop of short sleeps: Python runs signal handlers in the main thread only, and
    when the kernel hands the signal to another thread (gRPC's, RocksDB's), a main thread blocked
    without a timeout is not woken and the server would never stop."""
    received: list[signal.Signals] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(signum))

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    if on_ready is not None:
        on_ready()
    while not received:
        time.sleep(STOP_SIGNAL_POLL_SECONDS)
    return received[0]


def run_server(config: ServerConfig, worker: int | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    setup_logging(config.log_level, config.log_format)
    running = start_server(config, worker)
    received = wait_for_stop_signal()
    log.info("received %s, shutting down", received.name)
    running.stop()
