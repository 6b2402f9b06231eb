"""Review of ``ingresslib demo`` (S19d): ``--once`` must fail when the router is broken."""

from __future__ import annotations

import asyncio
import io
import shlex
import shutil
from typing import NoReturn

import pytest

import ingresslib._router as router_mod
from ingresslib._canary import WeightSplit
from ingresslib._demo import _curl_lines, self_check, start_demo


async def _check() -> tuple[bool, str]:
    demo = await start_demo(seed=1)
    out = io.StringIO()
    try:
        return await self_check(demo, out), out.getvalue()
    finally:
        await demo.stop()


@pytest.mark.network
@pytest.mark.asyncio
async def test_once_fails_when_the_canary_never_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    # A router whose canary-weight step never picks the canary: every example.test/ answer is
    # web. The self-check accepted any split with some web in it, so it passed.
    class NeverCanary(WeightSplit):
        def __init__(self, weight: int, total: int, rng: object = None) -> None:
            super().__init__(0, total)

    monkeypatch.setattr(router_mod, "WeightSplit", NeverCanary)
    ok, out = await _check()
    assert not ok, out
    assert "BAD canary" in out


@pytest.mark.network
@pytest.mark.asyncio
async def test_once_fails_when_the_canary_takes_half(monkeypatch: pytest.MonkeyPatch) -> None:
    # A weight read wrong (50 of 100 instead of 10): web still answers, so it passed too.
    class HalfCanary(WeightSplit):
        def __init__(self, weight: int, total: int, rng: object = None) -> None:
            super().__init__(total // 2, total)

    monkeypatch.setattr(router_mod, "WeightSplit", HalfCanary)
    ok, out = await _check()
    assert not ok, out
    assert "BAD canary" in out


@pytest.mark.network
@pytest.mark.asyncio
async def test_once_passes_on_the_real_router() -> None:
    ok, out = await _check()
    assert ok, out
    assert "web-v2 4" in out  # 10 % of 40, the exact interleave


@pytest.mark.network
@pytest.mark.asyncio
async def test_once_fails_when_round_robin_is_stuck(monkeypatch: pytest.MonkeyPatch) -> None:
    # Guard: one pod per Service (round-robin stuck on the first) is reported.
    from ingresslib import _demo

    real = _demo.runtime_objects

    def first_pod_only(pods, cert):  # type: ignore[no-untyped-def]
        objs = real(pods, cert)
        for o in objs:
            if o["kind"] == "EndpointSlice" and o["metadata"]["name"] in ("guest-1", "admin-1", "admin-2"):
                o["endpoints"][0]["conditions"]["ready"] = False
        return objs

    monkeypatch.setattr(_demo, "runtime_objects", first_pod_only)
    ok, out = await _check()
    assert not ok, out
    assert "BAD round-robin over guest" in out and "BAD round-robin over admin" in out


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl the demo prints commands for")
async def test_printed_curl_commands_show_what_they_say() -> None:
    # Each printed line run as printed: its comment's promise is in what curl shows. The
    # HTTPS line promised HSTS but printed no headers (curl -sk: the body only).
    demo = await start_demo(seed=1)
    try:
        lines = _curl_lines(demo)
        want = [("service: web",), ("service: guest",), ("service: admin",),
                ("service: tenants",), ("404 Not Found",),
                ("service: admin", "strict-transport-security: max-age=")]
        assert len(lines) == len(want)
        for line, needles in zip(lines, want):
            cmd = shlex.split(line.split("  #")[0])
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            shown, _ = await asyncio.wait_for(proc.communicate(), 20)
            text = shown.decode().lower()
            for needle in needles:
                assert needle.lower() in text, (line, text)
    finally:
        await demo.stop()


def _interrupt(*_: object, **__: object) -> NoReturn:
    raise KeyboardInterrupt


def _demo_main_no_escape(argv: list[str]) -> int | str:
    # A KeyboardInterrupt escaping demo_main would stop pytest itself: turn it into a value.
    from ingresslib._cli import build_parser
    from ingresslib._demo import demo_main

    try:
        return demo_main(build_parser().parse_args(argv))
    except KeyboardInterrupt:
        return "KeyboardInterrupt escaped (a traceback for the user)"


def test_ctrl_c_during_start_up_is_130_without_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A Ctrl-C while demo_main imports the proxy or reads --listen (the first ~0.2 s of
    # `make demo`) printed a traceback and died of SIGINT.
    import ingresslib.proxy._server as server_mod

    monkeypatch.setattr(server_mod, "parse_listen", _interrupt)
    assert _demo_main_no_escape(["demo", "--listen", "127.0.0.1:0"]) == 130
    assert capsys.readouterr().err == "ingresslib demo: interrupted before serving\n"


@pytest.mark.network
def test_ctrl_c_during_once_self_check_is_not_success(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # `ingresslib demo --once && deploy`: a Ctrl-C in the middle of the check exited 0 (a pass).
    from ingresslib import _demo

    async def interrupted(*_: object) -> bool:
        raise KeyboardInterrupt

    monkeypatch.setattr(_demo, "self_check", interrupted)
    assert _demo_main_no_escape(["demo", "--once"]) == 130
    assert "interrupted: the self-check did not finish" in capsys.readouterr().err
