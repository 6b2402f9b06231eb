"""``serve``'s process limits: the ConfigMap's ``max-worker-open-files`` (the soft
``RLIMIT_NOFILE``, nginx's ``worker_rlimit_nofile``) and ``max-worker-connections`` (the
client connection bound when ``--max-connections`` is not given, nginx's
``worker_connections``), and :func:`pace_accepts`, which keeps a listener that runs out of file
descriptors from flooding the log.

ingress-nginx (internal/ingress/controller/controller.go / nginx.go, ``OnUpdate``'s config
step): ``max-worker-open-files`` 0 (its default) is ``rlimitMaxNumFiles() - 1024`` (the hard
``RLIMIT_NOFILE``, at least 1024), and ``max-worker-connections`` 0 is 3/4 of that
(``int(MaxWorkerOpenFiles * 3.0 / 4)``). Here one process serves (nginx's worker processes
divide nothing), so the same computation holds for it.

Only ``serve`` calls :func:`apply_open_files`: the library never changes process limits.
"""

from __future__ import annotations

import errno
import logging
import socket
from typing import Any

__all__ = ["apply_open_files", "connection_bound", "open_files_target", "pace_accepts"]

_log = logging.getLogger("ingresslib.serve")

#: serve's client connection bound when neither ``--max-connections`` nor the ConfigMap's
#: ``max-worker-connections`` gives one (ingress-nginx's default is 16384).
DEFAULT_MAX_CONNECTIONS = 10000

#: ingress-nginx's room left to the rest of the process below the hard limit, and its floor.
_ROOM = 1024


def open_files_target(value: int, hard: int) -> tuple[int, str | None]:
    """The soft ``RLIMIT_NOFILE`` ``max-worker-open-files`` = ``value`` asks for, under the
    hard limit ``hard`` (``resource.RLIM_INFINITY``: none), and a warning when it cannot be
    had: 0 is ingress-nginx's ``hard - 1024`` (at least 1024), capped by ``hard``; a value
    above ``hard`` is ``hard``, with a warning (nginx's setrlimit would fail and keep the
    limit it had, with an alert)."""
    unlimited = hard < 0
    if value == 0:
        if unlimited:
            return 0, ("max-worker-open-files: 0 with no hard RLIMIT_NOFILE to derive it from; "
                       "the limit is left as it is")
        target = max(hard - _ROOM, _ROOM)
        return min(target, hard), None
    if not unlimited and value > hard:
        return hard, (f"max-worker-open-files: {value} is above the hard RLIMIT_NOFILE "
                      f"({hard}); using {hard}")
    return value, None


def apply_open_files(value: int | None, *, resource_mod: Any = None) -> int | None:
    """Raises the process's soft ``RLIMIT_NOFILE`` for ``max-worker-open-files`` = ``value``
    (None: the key is not set, read as ingress-nginx's default 0). The limit is never lowered
    (a lower value than the process got is left as it was: fds already open past it would
    make every new one fail). Returns the soft limit in force after (None: no ``resource``
    module, as on Windows). Problems are logged, never raised."""
    if resource_mod is None:
        try:
            import resource as resource_mod
        except ImportError:   # (Windows)
            return None
    nofile = resource_mod.RLIMIT_NOFILE
    soft, hard = resource_mod.getrlimit(nofile)
    target, warning = open_files_target(0 if value is None else value, hard)
    if warning is not None:
        _log.warning("%s", warning)
    if target <= 0 or (0 <= soft and target <= soft) or soft < 0:
        return int(soft)
    try:
        resource_mod.setrlimit(nofile, (target, hard))
    except (ValueError, OSError) as e:
        _log.warning("max-worker-open-files: could not raise RLIMIT_NOFILE from %d to %d: %s",
                     soft, target, e)
        return int(soft)
    _log.info("RLIMIT_NOFILE raised from %d to %d (max-worker-open-files)", soft, target)
    return target


def connection_bound(args: Any, config: Any, open_files: int | None) -> int:
    """serve's client connection bound (HTTP; TCP services' connections and UDP services'
    sessions apart, each by the same number): ``--max-connections`` when given, else the
    ConfigMap's ``max-worker-connections`` (0: 3/4 of the open files limit in force,
    ``open_files``, as ingress-nginx; 10000 when that is unknown), else 10000. nginx counts
    a worker's upstream connections in ``worker_connections`` too; here the bound counts
    client connections only (README's divergence table)."""
    flag = getattr(args, "max_connections", None)
    if flag is not None and not getattr(flag, "not_given", False):   # (_cli._NotGivenInt)
        return int(flag)
    key = getattr(config, "max_worker_connections", None)
    if key is None:
        return DEFAULT_MAX_CONNECTIONS
    if key == 0:
        if open_files is None or open_files <= 0:
            return DEFAULT_MAX_CONNECTIONS
        return max(1, open_files * 3 // 4)
    return int(key)


class _PacedSocket(socket.socket):
    """A listening socket whose ``accept`` raises ``BlockingIOError`` once right after it
    failed for want of a file descriptor. CPython's selector loop (before gh-151615) goes on
    calling ``accept`` after an ``EMFILE`` up to ``backlog`` times in the same tick, each
    logging "socket.accept() out of system resource" with its traceback and scheduling one
    more resume of the listener: 1,024 errors a second for a listener of backlog 1024 while
    the process is out of descriptors, and as many callbacks left on a closed socket. The
    ``BlockingIOError`` ends that loop after the first: one error and one resume (1 s later)."""

    __slots__ = ("_paused",)

    def accept(self) -> tuple[socket.socket, Any]:
        if getattr(self, "_paused", False):
            self._paused = False
            raise BlockingIOError(errno.EAGAIN, "accept paused after running out of fds")
        try:
            return super().accept()
        except OSError as e:
            if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                self._paused = True
            raise


def pace_accepts(server: Any) -> None:
    """Puts :class:`_PacedSocket` under the listening sockets of ``server`` (an
    ``asyncio.Server`` made with ``start_serving=False``, not serving yet); a server of
    another loop (uvloop) is left as it is."""
    socks = getattr(server, "_sockets", None)
    if not isinstance(socks, list) or getattr(server, "_serving", False):
        return
    for i, sock in enumerate(socks):
        if type(sock) is not socket.socket:
            continue
        paced = _PacedSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
        paced.setblocking(False)
        socks[i] = paced


def soft_nofile() -> int | None:
    """The process's soft ``RLIMIT_NOFILE`` (None: unknown, or no limit)."""
    try:
        import resource
    except ImportError:   # (Windows)
        return None
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft < 0 else int(soft)


_UNSET: Any = object()


class ServeLimits:
    """``serve``'s use of the two keys: :meth:`open_files` at start and after each ConfigMap
    reload (the limit raised when the key changed), :meth:`bound` for the servers'
    ``max_connections``, :meth:`reload` for both on a running server."""

    def __init__(self, args: Any) -> None:
        self.args = args
        self._applied: Any = _UNSET

    def open_files(self, config: Any) -> None:
        key = getattr(config, "max_worker_open_files", None)
        if key != self._applied:
            self._applied = key
            apply_open_files(key)

    def bound(self, config: Any) -> int:
        return connection_bound(self.args, config, soft_nofile())

    def reload(self, config: Any, server: Any, feeds: Any) -> None:
        """After a ConfigMap reload: the open files limit raised if asked, and the new bound
        for connections accepted from now on (those open stay)."""
        self.open_files(config)
        bound = self.bound(config)
        server.max_connections = bound
        for feed in feeds:
            if feed is not None:
                feed.services.max_connections = bound


#: When :func:`out_of_fds` last logged, by what ran out.
_said: dict[str, float] = {}
#: The least time between two of its warnings for the same ``what``, in seconds.
OUT_OF_FDS_EVERY = 60.0


def out_of_fds(exc: BaseException, what: str) -> bool:
    """Whether ``exc`` is the process (``EMFILE``) or the system (``ENFILE``) out of file
    descriptors; if so, a warning naming ``what`` is logged, at most once a minute for it (a
    client per failed connect would flood the log). Called on failure paths only."""
    if not isinstance(exc, OSError) or exc.errno not in (errno.EMFILE, errno.ENFILE):
        return False
    import time

    now = time.monotonic()
    last = _said.get(what)
    if last is None or now - last >= OUT_OF_FDS_EVERY:
        _said[what] = now
        _log.warning("%s: out of file descriptors (%s); raise the ConfigMap's "
                     "max-worker-open-files or the process's RLIMIT_NOFILE, or lower "
                     "max-worker-connections (logged at most once a minute)", what, exc)
    return True
