"""Three small leftovers of session 22 (X3).

1. ``serve``'s start cancelled (or interrupted) while its listeners open: what was opened is
   closed before the exception goes on. A cancellation that lands on the ``sleep(0)`` asyncio's
   ``create_server`` takes once it serves lost the ``asyncio.Server`` itself (never returned
   to ``ProxyServer.start``): its listening socket stayed open until garbage collection, and
   only OSError/ValueError shut down the listeners already bound.
2. A SIGINT (or SIGTERM) handler set outside Python (``signal.getsignal`` None: an embedding's
   C handler) cannot be put back: once replaced, Python's own handler for the signal is left
   (SIGINT's ``default_int_handler``, SIGTERM's SIG_DFL); one never replaced stays.
3. ``check``: the proxy's warning on a rule path (use-regex, the same regex path under two
   hosts) is a finding per rule path, each line naming its field, as the table's findings on a
   rule path read; it was one finding, on ``spec.rules[0]`` alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main
from tests.test_serve_s13 import _ingress

from _serve_helpers import free_port, signal_serve_after


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _serve_task() -> asyncio.Task[Any]:
    """The task running ``_serve`` (``asyncio.run``'s main task)."""
    found = [t for t in asyncio.all_tasks()
             if getattr(t.get_coro(), "__qualname__", "") == "_serve"]
    assert len(found) == 1
    return found[0]


def _cancel_at_create_servers_sleep(monkeypatch: pytest.MonkeyPatch, nth: int) -> list[int]:
    """The ``nth`` (1-based) ``create_server`` of the start (``--listen``'s, ``--tls-listen``'s,
    the metrics listener's ``start_server``) is where ``serve``'s task is cancelled: at the
    ``sleep(0)`` it takes once its listener serves (as an embedding's TaskGroup or timeout
    would cancel it): ``create_server``'s own, or ``Server.start_serving``'s for a listener
    made with ``start_serving=False``."""
    real = asyncio.tasks.sleep
    seen: list[int] = []

    async def sleep(delay: float, result: Any = None) -> Any:
        if delay == 0 and sys._getframe(1).f_code.co_name in ("create_server",
                                                              "start_serving"):
            seen.append(1)
            if len(seen) == nth:
                _serve_task().cancel()
        return await real(delay, result)

    monkeypatch.setattr(asyncio.tasks, "sleep", sleep)
    return seen


def _manifest_and_args(tmp_path: Path) -> tuple[list[int], list[str]]:
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    ports = [free_port(), free_port(), free_port()]
    return ports, ["serve", "-f", str(m), "--listen", f"127.0.0.1:{ports[0]}",
                   "--tls-listen", f"127.0.0.1:{ports[1]}",
                   "--metrics-listen", f"127.0.0.1:{ports[2]}",
                   "--reload-interval", "0", "--access-log", "off"]


@pytest.mark.parametrize("nth", [1, 2, 3], ids=["listen", "tls-listen", "metrics-listen"])
def test_a_start_cancelled_while_a_listener_opens_leaves_nothing_listening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int) -> None:
    # Defect: the listener whose create_server was cancelled at its sleep(0) was never returned
    # (its socket listened until garbage collection), and those bound before it were not shut
    # down either (only OSError and ValueError did that).
    ports, args = _manifest_and_args(tmp_path)
    seen = _cancel_at_create_servers_sleep(monkeypatch, nth)
    signal_serve_after(monkeypatch, 0.5)  # serve reached serving: it stops, and the test fails
    with pytest.raises(asyncio.CancelledError) as cancelled:
        main(args)
    assert len(seen) >= nth
    # Tried while the exception is held (as an embedding that logs it holds it): its traceback
    # kept create_server's frame, and the asyncio.Server it made, alive.
    assert cancelled.value is not None
    assert [p for p in ports if _listening(p)] == []


@pytest.mark.parametrize("raised", [KeyboardInterrupt, RuntimeError])
def test_any_exception_of_the_start_closes_the_listeners_already_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], raised: type[BaseException]) -> None:
    # Defect: the metrics listener's start failing otherwise than by OSError/ValueError left
    # --listen's and --tls-listen's listeners open (a KeyboardInterrupt: serve_main said
    # "interrupted before serving", exit 130, with both still accepting connections).
    from ingresslib import _metrics

    ports, args = _manifest_and_args(tmp_path)

    async def failing_start(self: Any) -> int:
        raise raised("metrics start failed")

    monkeypatch.setattr(_metrics.MetricsServer, "start", failing_start)
    if raised is KeyboardInterrupt:
        assert main(args) == 130
        assert "interrupted before serving" in capsys.readouterr().err
    else:
        with pytest.raises(RuntimeError, match="metrics start failed"):
            main(args)
    assert [p for p in ports if _listening(p)] == []


# -- 2. a signal handler set outside Python ---------------------------------------------------

def _noted(signum: int, frame: Any) -> None:
    """Stands for the embedding's C handler (a stray signal is only noted)."""


@pytest.mark.parametrize("serves", [False, True], ids=["refused-at-once", "served-and-stopped"])
def test_a_handler_set_outside_python_gives_way_to_pythons_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, serves: bool) -> None:
    # Decision (the spec is silent): getsignal() None cannot be put back by signal.signal. A
    # signal serve (or asyncio's loop) took is left with Python's own handler: SIGINT's
    # default_int_handler (KeyboardInterrupt, which an embedding can catch; not SIG_DFL, which
    # would end the process at the next Ctrl-C), SIGTERM's SIG_DFL. One serve never touched
    # (SIGTERM when serve refuses its arguments) is still the outside one, and stays.
    real_get, real_set = signal.getsignal, signal.signal
    outside = {signal.SIGINT, signal.SIGTERM}

    def getsignal(sig: int) -> Any:
        return None if sig in outside else real_get(sig)

    def set_signal(sig: int, handler: Any) -> Any:
        before = getsignal(sig)
        outside.discard(sig)
        real_set(sig, handler)
        return before

    saved = {s: real_get(s) for s in (signal.SIGINT, signal.SIGTERM)}
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    try:
        for s in outside:
            real_set(s, _noted)
        monkeypatch.setattr(signal, "getsignal", getsignal)
        monkeypatch.setattr(signal, "signal", set_signal)
        if serves:
            signal_serve_after(monkeypatch, 0, signal.SIGTERM)
            code = main(["serve", "-f", str(m), "--listen", f"127.0.0.1:{free_port()}",
                         "--reload-interval", "0", "--access-log", "off"])
        else:
            code = main(["serve", "-f", str(m), "--listen", "127.0.0.1:nope"])
        after = {s: real_get(s) for s in (signal.SIGINT, signal.SIGTERM)}
    finally:
        monkeypatch.undo()
        for s, h in saved.items():
            real_set(s, h)
    assert code == (0 if serves else 2)
    assert after[signal.SIGINT] is signal.default_int_handler
    assert after[signal.SIGTERM] is (signal.SIG_DFL if serves else _noted)


# -- 3. check: a rule path's warning on each rule path ----------------------------------------

P = "nginx.ingress.kubernetes.io/"
REGEX = ("rule path '/api(/|$)(.*)' is a regex in ingress-nginx (use-regex or rewrite-target) "
         "but is routed by ingresslib as a literal prefix: the requests that regex matches go "
         "to another rule or the default backend, with that rule's access control; use a "
         "Prefix path")


def _regex_ingress(annotations: dict[str, str], *hosts: str) -> str:
    rules = "".join(
        f"  - host: {h}\n    http:\n      paths:\n      - path: /api(/|$)(.*)\n"
        "        pathType: ImplementationSpecific\n"
        "        backend: {service: {name: s, port: {number: 80}}}\n" for h in hosts)
    ann = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in annotations.items())
    return ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: r\n"
            f"  annotations:\n{ann}spec:\n  rules:\n{rules}")


def _check(tmp_path: Path, text: str, *argv: str) -> tuple[int, str, str]:
    f = tmp_path / "ing.yaml"
    f.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", *argv, "-f", str(f)])
    return code, out.getvalue(), err.getvalue()


def test_the_same_regex_path_under_two_hosts_is_a_finding_on_each_rule_path(
        tmp_path: Path) -> None:
    # Defect: deduplicated by its text, the warning was one Diagnostic on spec.rules[0]'s path;
    # spec.rules[1]'s, as much a regex in ingress-nginx, had none.
    import ingresslib

    text = _regex_ingress({P + "use-regex": "true"}, "a.test", "b.test", "c.test")
    found = [d for d in ingresslib.check(ingresslib.parse_manifests(text))
             if d.message == REGEX]
    assert [(d.object, d.field) for d in found] == [
        ("Ingress default/r", f"spec.rules[{i}].http.paths[0].path") for i in range(3)]
    # Each line once, naming its rule path, as the table's findings on a rule path read
    # ("warning: OBJECT: FIELD: MESSAGE"); the count is of those lines.
    lines = [f"warning: Ingress default/r: spec.rules[{i}].http.paths[0].path: {REGEX}"
             for i in range(3)]
    assert [str(d) for d in found] == lines
    code, out, err = _check(tmp_path, text)
    assert code == 0
    assert [ln for ln in err.splitlines() if REGEX in ln] == lines
    assert "3 warning(s)" in out
    code, out, err = _check(tmp_path, text, "-o", "json")
    doc = json.loads(out)
    assert [d for d in doc["diagnostics"] if REGEX in d] == lines
    assert [w for w in doc["warnings"] if REGEX in w] == [
        ln.removeprefix("warning: ") for ln in lines]


def test_a_regex_path_once_keeps_the_line_serve_logs(tmp_path: Path) -> None:
    import ingresslib

    text = _regex_ingress({P + "use-regex": "true"}, "a.test")
    [d] = [d for d in ingresslib.check(ingresslib.parse_manifests(text)) if d.message == REGEX]
    assert d.field == "spec.rules[0].http.paths[0].path"
    assert str(d) == f"warning: Ingress default/r: {REGEX}"


def test_an_annotation_warning_is_still_one_finding_however_many_rules(tmp_path: Path) -> None:
    import ingresslib

    text = _regex_ingress({P + "proxy-read-timeout": "30s"}, "a.test", "b.test")
    found = [d for d in ingresslib.check(ingresslib.parse_manifests(text))
             if "proxy-read-timeout" in d.field]
    assert [d.field for d in found] == [f"metadata.annotations[{P}proxy-read-timeout]"]
    code, out, err = _check(tmp_path, text)
    assert len([ln for ln in err.splitlines() if "proxy-read-timeout" in ln]) == 1


def test_an_invalid_rewrite_regex_under_two_hosts_names_both_rule_paths() -> None:
    import ingresslib

    text = _regex_ingress({P + "use-regex": "true", P + "rewrite-target": "/$1"},
                          "a.test", "b.test").replace("/api(/|$)(.*)", "/api(")
    found = [d for d in ingresslib.check(ingresslib.parse_manifests(text))
             if "is not a valid regex for rewrite-target" in d.message]
    assert [d.field for d in found] == [f"spec.rules[{i}].http.paths[0].path" for i in range(2)]
    assert len({str(d) for d in found}) == 2
