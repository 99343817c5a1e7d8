"""HTTP answers read to a byte bound, never whole: what the webhook, LLM-Registry and Data-Vault
clients receive from services they do not control.

An answer is refused before its body is read when it declares a length over the bound, and
while it is read as soon as it passes the bound. Compressed answers are refused too: a few
kilobytes of gzip or zstd can stand for gigabytes, so the clients ask for `identity` and read
the bytes as they come, without decoding them.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

import httpx

__all__ = [
    "IDENTITY",
    "AnswerRefused",
    "aread_httpx",
    "check_headers",
    "read_bounded",
    "read_httpx",
]

# The request header that asks for an uncompressed answer.
IDENTITY = ("Accept-Encoding", "identity")


class AnswerRefused(Exception):
    """An HTTP answer that was not read: larger than its bound, or compressed."""


def check_headers(length: str | None, encoding: str | None, limit: int) -> None:
    """Refuse an answer by its headers: a declared length over `limit`, or a content encoding."""
    if encoding and encoding.strip().lower() not in ("", "identity"):
        raise AnswerRefused(
            f"the answer is compressed ({encoding.strip()[:40]}); only uncompressed answers "
            "are read"
        )
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise AnswerRefused("the answer's Content-Length is not a number") from None
        if declared > limit:
            raise AnswerRefused(f"the answer is {declared} bytes, more than the {limit} accepted")


def _grow(buffer: bytearray, chunk: bytes, limit: int) -> None:
    if len(buffer) + len(chunk) > limit:
        raise AnswerRefused(f"the answer is larger than the {limit} bytes accepted")
    buffer += chunk


def read_bounded(chunks: Iterable[bytes], limit: int) -> bytes:
    """The bytes of `chunks`, refused once they pass `limit` (the rest is never read)."""
    buffer = bytearray()
    for chunk in chunks:
        _grow(buffer, chunk, limit)
    return bytes(buffer)


async def _aread_bounded(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    buffer = bytearray()
    async for chunk in chunks:
        _grow(buffer, chunk, limit)
    return bytes(buffer)


def read_httpx(response: httpx.Response, limit: int) -> bytes:
    """The body of a response opened with `stream=True`, read to `limit` bytes."""
    headers = response.headers
    check_headers(headers.get("content-length"), headers.get("content-encoding"), limit)
    return read_bounded(response.iter_raw(), limit)


async def aread_httpx(response: httpx.Response, limit: int) -> bytes:
    """`read_httpx` for an `httpx.AsyncClient` response."""
    headers = response.headers
    check_headers(headers.get("content-length"), headers.get("content-encoding"), limit)
    return await _aread_bounded(response.aiter_raw(), limit)
