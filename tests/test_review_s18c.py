"""Review of session 18's landings (R18c): the test harness's ``stderr_until_exit``."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests import _process_helpers
from tests._process_helpers import stderr_until_exit


def test_stderr_until_exit_is_bounded_when_a_grandchild_holds_the_pipe(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The child exits at once, but a process it started inherited its stderr and lives on (600
    # s, killed below): the pipe has no end of file. stderr_until_exit read it in the calling
    # thread, so it waited for that process, and its timer did nothing (the child it kills had
    # exited). Run in a thread so that the old behaviour fails this test instead of hanging
    # it; the join's bound is only that guard: the call must come back while the grandchild
    # still holds the pipe, i.e. long before it ends on its own.
    # The end-of-file grace is how long the call waits here: 1 s instead of 5 (the line
    # "up" is in the pipe before the child exits; only the grandchild's end is waited for).
    monkeypatch.setattr(_process_helpers, "_EOF_GRACE", 1.0)
    pidfile = tmp_path / "pid"
    p = subprocess.Popen(["sh", "-c", f"sleep 600 & echo $! > {pidfile}; echo up >&2"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    outcome: dict[str, object] = {}

    def call() -> None:
        try:
            outcome["returned"] = stderr_until_exit(p, 1)
        except subprocess.TimeoutExpired as e:
            outcome["timeout"] = e

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(60)
    try:
        assert not t.is_alive(), "stderr_until_exit waited for the process holding the pipe"
        e = outcome["timeout"]
        assert isinstance(e, subprocess.TimeoutExpired) and e.stderr == b"up\n"
        assert p.returncode == 0
    finally:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
        t.join(10)
        assert p.stderr is not None
        p.stderr.close()


# ---------------------------------------------------------------- forwarded-for: core vs adapter

def test_forwarded_headers_agree_over_random_header_sets() -> None:
    # C18 built $full_x_forwarded_for from X-Forwarded-For whatever forwarded-for-header names,
    # in the core and in IngressASGI separately: both must write the same forwarded family for
    # any mix of X-Forwarded-For / the named header / the other forwarded headers, repeated or
    # not, with or without a Connection token, trusted peer or not. (A review check: it found
    # no disagreement.) Values are compared stripped: the backend's parser drops the trailing
    # space of a joined empty line, and uvicorn gives values stripped, which
    # RequestSpec.scope does not.
    import random

    from ingresslib.proxy import ProxySettings

    from _agree_s13 import IngressSpec, PathSpec, RequestSpec, manifests_text, via_asgi, \
        via_proxy

    text = manifests_text((IngressSpec("a", "ex.com", (PathSpec("/", "Prefix", "s0"),)),))
    rnd = random.Random(18)
    names = ["X-Forwarded-For", "X-Client-IP", "X-Forwarded-Host", "X-Forwarded-Proto",
             "X-Real-IP", "Forwarded"]
    values = ["1.2.3.4", "5.6.7.8, 9.9.9.9", "", "::1", "bogus", "10.0.0.1:80", "a.example"]
    seen_custom_chain = 0
    for _ in range(400):
        settings = ProxySettings(
            use_forwarded_headers=rnd.random() < .8,
            compute_full_forwarded_for=rnd.random() < .7,
            forwarded_for_header=rnd.choice(["X-Forwarded-For", "X-Client-IP", "X-Real-IP"]),
            proxy_real_ip_cidr=rnd.choice([(), ("127.0.0.0/8",), ("0.0.0.0/0",)]))
        headers = tuple((rnd.choice(names), rnd.choice(values))
                        for _ in range(rnd.randint(0, 4)))
        if rnd.random() < .5:
            # A Connection token sends the adapter down its general header path; naming a
            # forwarded header checks that both drop (or keep) it alike.
            headers += (("Connection", rnd.choice(["x-odd", "X-Forwarded-For", "x-client-ip",
                                                   "x-real-ip, x-forwarded-for"])),)
        req = RequestSpec("GET", "/", "ex.com", headers, b"", False,
                          rnd.choice(["127.0.0.5", "192.0.2.1"]))
        p = via_proxy(text, req, settings, frozenset())
        a = via_asgi(text, req, settings, frozenset())

        def norm(f: dict[bytes, list[bytes]]) -> dict[bytes, list[bytes]]:
            return {k: [v.strip() for v in vs] for k, vs in f.items()}

        assert (p.status, norm(p.forwarded)) == (a.status, norm(a.forwarded)), (settings, req)
        if settings.forwarded_for_header != "X-Forwarded-For" and any(
                n == "X-Forwarded-For" for n, _ in headers):
            seen_custom_chain += 1
    assert seen_custom_chain > 20  # the case C18 changed was drawn
