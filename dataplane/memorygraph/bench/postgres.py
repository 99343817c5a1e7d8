"""PostgreSQL as the comparison store: started by the benchmark from the Debian package's
binaries in a scratch directory, with durable settings (fsync, synchronous_commit), and the
same "record an LLM turn" work MemoryGraph does: three node rows, their edges in both
directions' indexes, and the session's token totals, in one transaction per unit of work."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["PostgresUnavailable", "TurnRecorder", "postgres_server", "postmaster_pid"]

SCHEMA = """
CREATE TABLE nodes (
    id uuid PRIMARY KEY,
    kind smallint NOT NULL,
    session_id uuid,
    content text NOT NULL,
    metadata jsonb NOT NULL DEFAULT '{}',
    attrs jsonb NOT NULL DEFAULT '{}',
    create_time bigint NOT NULL
);
CREATE INDEX nodes_by_session ON nodes (session_id, create_time, id);
CREATE INDEX nodes_by_kind ON nodes (kind, create_time, id);
CREATE TABLE edges (
    source uuid NOT NULL,
    kind smallint NOT NULL,
    target uuid NOT NULL,
    create_time bigint NOT NULL,
    PRIMARY KEY (source, kind, target)
);
CREATE INDEX edges_in ON edges (target, kind, source);
CREATE TABLE sessions (
    id uuid PRIMARY KEY,
    prompt_tokens bigint NOT NULL DEFAULT 0,
    completion_tokens bigint NOT NULL DEFAULT 0
);
"""

BELONGS_TO, RESPONDS_TO, FOLLOWS, INVOKES = 1, 2, 3, 4
PROMPT, RESPONSE, TOOL = 2, 3, 4


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries here (Debian: apt-get install postgresql)."""


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise PostgresUnavailable(
            "PostgreSQL server binaries not found; install them with "
            "'apt-get install -y postgresql'"
        )
    return Path(found[-1]).parent


@contextmanager
def postgres_server(scratch: Path, port: int) -> Iterator[str]:
    """Run a throw-away PostgreSQL on 127.0.0.1:`port`; yields its connection string."""
    bin_dir = _bin_dir()
    data = scratch / "pgdata"
    data.mkdir(parents=True)
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(scratch, "postgres")
        shutil.chown(data, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*as_user, *cmd], check=True, capture_output=True, text=True
    )
    run(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bench")
    settings = {
        "listen_addresses": "'127.0.0.1'",
        "port": str(port),
        "unix_socket_directories": f"'{scratch}'",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "shared_buffers": "256MB",
        "max_connections": "100",  # AddPrompt's comparison holds 64 at once
    }
    with (data / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{k} = {v}\n" for k, v in settings.items())
    run(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(scratch / "pg.log"), "start")
    try:
        yield f"host=127.0.0.1 port={port} user=bench dbname=postgres"
    finally:
        run(str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-m", "fast", "stop")


def postmaster_pid(scratch: Path) -> int:
    """The pid of the server `postgres_server(scratch, ...)` runs (pg_ctl detaches it from the
    benchmark's process tree: its CPU is told apart from other processes' by this pid)."""
    return int((scratch / "pgdata" / "postmaster.pid").read_text().split("\n", 1)[0])


class TurnRecorder:
    """Records LLM turns in PostgreSQL the way MemoryGraph stores them."""

    def __init__(self, dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn)
        self.last_prompt: dict[uuid.UUID, uuid.UUID] = {}
        self.clock = 0

    def create_schema(self) -> None:
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(SCHEMA)

    def new_session(self) -> uuid.UUID:
        session = uuid.uuid4()
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("INSERT INTO sessions (id) VALUES (%s)", (session,))
        return session

    def _turn_rows(self, session: uuid.UUID, index: int) -> tuple[list[Any], list[Any]]:
        self.clock += 3
        prompt, response, tool = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        nodes = [
            (prompt, PROMPT, session, f"prompt {index}", "{}", '{"model": "m"}', self.clock),
            (
                response,
                RESPONSE,
                session,
                f"response {index}",
                "{}",
                '{"prompt_tokens": 12, "completion_tokens": 30}',
                self.clock + 1,
            ),
            (tool, TOOL, session, "", "{}", '{"tool_name": "search"}', self.clock + 2),
        ]
        edges = [
            (prompt, BELONGS_TO, session, self.clock),
            (response, RESPONDS_TO, prompt, self.clock + 1),
            (tool, INVOKES, response, self.clock + 2),
        ]
        previous = self.last_prompt.get(session)
        if previous is not None:
            edges.append((prompt, FOLLOWS, previous, self.clock))
        self.last_prompt[session] = prompt
        return nodes, edges

    def _write(
        self, cur: Any, session: uuid.UUID, nodes: list[Any], edges: list[Any], turns: int
    ) -> None:
        cur.executemany(
            "INSERT INTO nodes (id, kind, session_id, content, metadata, attrs, create_time) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            nodes,
        )
        cur.executemany(
            "INSERT INTO edges (source, kind, target, create_time) VALUES (%s, %s, %s, %s)", edges
        )
        cur.execute(
            "UPDATE sessions SET prompt_tokens = prompt_tokens + %s, "
            "completion_tokens = completion_tokens + %s WHERE id = %s",
            (12 * turns, 30 * turns, session),
        )

    def record_batch(self, session: uuid.UUID, turns: int) -> None:
        """`turns` whole turns in one transaction (the Ingest comparison)."""
        nodes: list[Any] = []
        edges: list[Any] = []
        for index in range(turns):
            n, e = self._turn_rows(session, index)
            nodes += n
            edges += e
        with self.conn.transaction(), self.conn.cursor() as cur:
            self._write(cur, session, nodes, edges, turns)

    def _commit_prompt(self, nodes: list[Any], edges: list[Any]) -> None:
        """The prompt of a turn's rows and its edges, in one transaction (what AddPrompt
        commits: the prompt, its edge to its session and the one to the previous prompt)."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO nodes (id, kind, session_id, content, metadata, attrs, create_time)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                nodes[0],
            )
            cur.executemany(
                "INSERT INTO edges (source, kind, target, create_time) VALUES (%s, %s, %s, %s)",
                [e for e in edges if e[0] == nodes[0][0]],
            )

    def record_turn_row_by_row(self, session: uuid.UUID) -> None:
        """A prompt, then its response, each committed on its own (AddPrompt, AddResponse)."""
        nodes, edges = self._turn_rows(session, 0)
        self._commit_prompt(nodes, edges)
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute(
                "INSERT INTO nodes (id, kind, session_id, content, metadata, attrs, create_time)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                nodes[1],
            )
            cur.execute(
                "INSERT INTO edges (source, kind, target, create_time) VALUES (%s, %s, %s, %s)",
                edges[1],
            )
            cur.execute(
                "UPDATE sessions SET prompt_tokens = prompt_tokens + 12, "
                "completion_tokens = completion_tokens + 30 WHERE id = %s",
                (session,),
            )

    def record_prompt(self, session: uuid.UUID) -> None:
        """What AddPrompt commits, alone (the response and tool rows are not written)."""
        self._commit_prompt(*self._turn_rows(session, 0))

    def close(self) -> None:
        self.conn.close()
