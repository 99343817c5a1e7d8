"""TCP forwarding from inside a network namespace to the host's loopback.

    python3 hack/netns_forward.py --netns /run/netns/NAME LISTEN_ADDR:PORT=TARGET_PORT ...

The real node of the end-to-end cluster lives in a network namespace of its own, while the API
server listens on the host's 127.0.0.1 only. Each listening socket is opened inside the node's
namespace (the thread switches there with setns(2), creates it and switches back); every
connection accepted on it is relayed to 127.0.0.1:TARGET_PORT from the host's namespace. So the
kubelet, kube-proxy and pods reach the API server without the host having an address the node
could send to, and nothing on the host listens on anything but loopback.

Standard library only: the harness runs it with the system's python3.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
CHUNK = 1 << 16

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def listen_in_netns(netns: str, host: str, port: int) -> socket.socket:
    """A listening socket bound to host:port inside the namespace ``netns``.

    A socket belongs to the namespace it was created in for its whole life, so only its
    creation needs the switch; the thread returns to its own namespace straight after.
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(netns, os.O_RDONLY)
    try:
        _setns(target)
        try:
            return socket.create_server((host, port), backlog=128)
        finally:
            _setns(own)
    finally:
        os.close(target)
        os.close(own)


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(CHUNK):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        # Half-close: the other direction may still have bytes in flight (TLS close_notify).
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _relay(client: socket.socket, target_port: int) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", target_port), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, target_port: int) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, target_port), daemon=True).start()


def _forward_spec(text: str) -> tuple[str, int, int]:
    listen, _, target = text.partition("=")
    host, _, port = listen.rpartition(":")
    if not (host and port.isdigit() and target.isdigit()):
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT=TARGET_PORT, got {text!r}")
    return host, int(port), int(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--netns", required=True, help="path of the namespace, /run/netns/NAME")
    parser.add_argument("forward", nargs="+", type=_forward_spec, help="ADDR:PORT=TARGET_PORT")
    args = parser.parse_args()
    # Every listener is opened before any thread starts: setns(2) then affects this thread only.
    listeners = [(listen_in_netns(args.netns, h, p), t) for h, p, t in args.forward]
    threads = [threading.Thread(target=_serve, args=pair, daemon=True) for pair in listeners]
    for t in threads:
        t.start()
    print(
        "forwarding", ", ".join(f"{h}:{p} -> 127.0.0.1:{t}" for h, p, t in args.forward), flush=True
    )
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
