"""Webhook bearer tokens, read only from the plugin's own Secret.

The operator mounts a Plugin's token Secret at `<plugin_secrets_dir>/<plugin name>/token`. A
plugins file naming any other file (the registry's token, another plugin's, a key file) would
make the server send that file's content to the plugin's URL, so a webhook's `token_file` is
accepted only when it lies in its own directory `<plugin_secrets_dir>/<plugin name>/`: a
relative path is taken from there, an absolute one must name a file below it.

Kubernetes writes Secret and projected volumes through symlinks (`token -> ..data/token`,
`..data -> ..2024_01_01_00_00_00.1`, and with one projected volume for everything the plugin's
directory itself is such a link). So the file is followed through its links from the plugin's
directory as it resolves at that moment, and must still end up inside it: a link that leads
out is refused. The check is made when the plugins file is validated and again at every read.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["MAX_TOKEN_BYTES", "TokenFile", "own_token_path"]

MAX_TOKEN_BYTES = 16 << 10


def _home(secrets_dir: Path, plugin: str) -> Path:
    if plugin in (".", "..") or "/" in plugin or "\0" in plugin:
        raise ValueError(f"a plugin named {plugin!r} has no directory of its own for its token")
    return Path(os.path.normpath(secrets_dir.absolute() / plugin))


def own_token_path(secrets_dir: Path, plugin: str, token_file: Path) -> tuple[Path, Path]:
    """The plugin's directory and `token_file` as a path below it; `ValueError` saying why
    `token_file` is not one (also when a symlink leads it out)."""
    home = _home(secrets_dir, plugin)
    wanted = Path(os.path.normpath(home / token_file))
    if wanted == home or not wanted.is_relative_to(home):
        raise ValueError(
            f"token_file {token_file} is not in {home}/, the directory of the plugin's own Secret"
        )
    _followed(home, wanted)
    return home, wanted


def _followed(home: Path, wanted: Path) -> Path:
    """`wanted` with every symlink followed, checked to stay inside `home` (followed too)."""
    real_home = home.resolve()
    real = (real_home / wanted.relative_to(home)).resolve()
    if real == real_home or not real.is_relative_to(real_home):
        raise ValueError(
            f"token_file {wanted} leads out of {home}/ through a symbolic link; a webhook's "
            "token must come from its own Secret"
        )
    return real


class TokenFile:
    """One webhook's token, re-read when its file changes (a rotated Secret)."""

    def __init__(self, secrets_dir: Path, plugin: str, token_file: Path) -> None:
        self.home, self.path = own_token_path(secrets_dir, plugin, token_file)
        self._stamp: tuple[Path, int, int] | None = None
        self._token = ""

    def read(self) -> str:
        """The token; `ValueError` when the file is not the plugin's own or not a token,
        `OSError` when it cannot be read."""
        real = _followed(self.home, self.path)
        stat = real.stat()
        stamp = (real, stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            with real.open("rb") as file:
                raw = file.read(MAX_TOKEN_BYTES + 1)
            if len(raw) > MAX_TOKEN_BYTES:
                raise ValueError(f"token file {self.path} is larger than {MAX_TOKEN_BYTES} bytes")
            token = raw.decode("utf-8", "replace").strip()
            if not (token.isascii() and token.isprintable()):
                raise ValueError(f"token file {self.path} is not one line of printable ASCII")
            self._token, self._stamp = token, stamp
        return self._token
