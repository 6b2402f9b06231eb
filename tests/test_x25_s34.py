"""Session 34, x25: a second engineer's review of x22 (``ProxyServer.start``'s addresses, a
router with no ``route``) and h1 (serve's metrics flags, ``Metrics(per_undefined_host=,
exclude_socket_metrics=)``).

Defects found, each test below failed before its fix:

* ``Metrics(per_undefined_host=True)`` once ``set_hosts`` was called (as ``serve`` always does)
  gave every Host a client sends a series of its own, kept until the process ended: a client
  sending random Host headers grew the process without bound, the ``max_hosts`` bound held
  only while the served hosts were unknown. The undefined hosts now share that bound
  (``max_hosts`` distinct names; later ones counted with ``host=""``, one warning).
* ``server.router = res`` (a ``Resources``) was taken as ``ProxyServer(res)`` was before x22:
  every later connection dropped unanswered. The setter refuses it as the constructor does.
* ``Proxy(ingresslib.Router)`` (the class, not called) has a ``route`` and was taken; each
  request then failed (``'str' object has no attribute '_fast_route'``). Refused.
* ``--time-buckets=1,1e400`` was taken (inf) where pflag's Float64Slice (Go's
  ``strconv.ParseFloat``) refuses it. A usage error now.
* ``Metrics(exclude_socket_metrics="requests")`` was read a letter at a time (a warning each,
  nothing excluded). A TypeError now.
"""

from __future__ import annotations

import asyncio
import logging
import math

import pytest

import ingresslib
from ingresslib._cli import build_parser
from ingresslib._metrics import Metrics
from ingresslib.proxy import ProxyServer

from _records import rec

P = "nginx_ingress_controller"


def _unrouted(host: str) -> object:
    # The 404 of a host no Ingress defines (no rule matched, no upstream).
    return rec(host=host, ingress=None, rule_path=None, service=None, namespace=None,
               status=404, upstreams=(), upstream_status=None, upstream_statuses=(),
               upstream_connect=None, upstream_first_byte=None)


def _request_hosts(m: Metrics) -> list[str]:
    return sorted(ln.split('host="', 1)[1].split('"', 1)[0]
                  for ln in m.render().decode().splitlines()
                  if ln.startswith(f"{P}_requests{{"))


# --- per_undefined_host: random Host headers must not grow the series without bound ----------


def test_undefined_hosts_are_bounded_by_max_hosts_once_the_hosts_are_known(
        caplog: pytest.LogCaptureFixture) -> None:
    m = Metrics(per_undefined_host=True, max_hosts=2)
    m.set_hosts({"foo.com"})
    with caplog.at_level(logging.WARNING, logger="ingresslib.metrics"):
        for i in range(50):
            m.observe(_unrouted(f"r{i}.attacker.test"))  # type: ignore[arg-type]
        m.observe(rec(host="foo.com", ingress="shop/web", rule_path="/"))
    # The served host keeps its label (not counted against the bound), the first two undefined
    # names get theirs, the 48 others one host="" series: 4 series, not 51.
    assert _request_hosts(m) == ["", "foo.com", "r0.attacker.test", "r1.attacker.test"]
    # Said once, not per request.
    assert [r.getMessage() for r in caplog.records] == [
        "metrics: more than 2 distinct Host values and not among set_hosts()'s; further ones "
        'are counted with host=""']


def test_undefined_host_bound_frees_the_names_a_reload_serves() -> None:
    m = Metrics(per_undefined_host=True, max_hosts=1)
    m.set_hosts({"foo.com"})
    m.observe(_unrouted("new.test"))  # type: ignore[arg-type]
    # new.test is served now: its series are a served host's, no longer an undefined one's,
    # so the bound's one place is free for the next undefined name.
    m.set_hosts({"foo.com", "new.test"})
    m.observe(_unrouted("other.test"))  # type: ignore[arg-type]
    assert _request_hosts(m) == ["new.test", "other.test"]


# --- ProxyServer.router = Resources ------------------------------------------------------------


def test_router_setter_refuses_resources_as_the_constructor_does() -> None:
    res = ingresslib.Resources()

    async def swap() -> ProxyServer:
        server = ProxyServer(ingresslib.Router(res))
        with pytest.raises(TypeError, match=r"ingresslib\.Router\(res\)"):
            server.router = res
        server.router = None            # no router yet: allowed, as in the constructor
        server.router = ingresslib.Router(res)
        return server

    assert isinstance(asyncio.run(swap()).router, ingresslib.Router)


# --- the bucket options read each number as Go's strconv.ParseFloat -------------------------------


@pytest.mark.parametrize("value", ["1e400", "-1e400"])
def test_bucket_numbers_go_refuses_are_usage_errors(
        value: str, capsys: pytest.CaptureFixture[str]) -> None:
    # pflag's Float64Slice parses each part with strconv.ParseFloat: "1e400" is out of range
    # there (ErrRange), where Python's float() takes it (inf). ("1_000" is 1000 for both:
    # tests/test_x28_s34.py.)
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["serve", "-f", "m.yaml", f"--time-buckets=1,{value}"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--time-buckets" in err and repr(value) in err, err


@pytest.mark.parametrize("value,expected", [("+Inf", math.inf), ("infinity", math.inf),
                                            ("-inf", -math.inf), ("1e3", 1000.0)])
def test_bucket_numbers_go_takes_are_taken(value: str, expected: float) -> None:
    a = build_parser().parse_args(["serve", "-f", "m.yaml", f"--time-buckets=1,{value}"])
    assert a.time_buckets == [1.0, expected]


def test_the_router_class_itself_is_refused() -> None:
    """``ProxyServer(ingresslib.Router)``, the class not an instance, has a ``route`` (the
    unbound function) and was taken; each request then called it with the method as ``self``
    and the connection was dropped unanswered."""
    with pytest.raises(TypeError, match=r"ingresslib\.Router\(res\)"):
        ingresslib.Proxy(ingresslib.Router)


def test_exclude_socket_metrics_given_one_string_is_refused() -> None:
    """``exclude_socket_metrics="requests"`` (the flag's spelling) was read a character at a
    time: eight warnings ("'r' is no per-request metric"), and nothing excluded."""
    with pytest.raises(TypeError, match=r"exclude_socket_metrics.*\('requests',\)"):
        Metrics(exclude_socket_metrics="requests")
    m = Metrics(exclude_socket_metrics=["requests"])
    m.observe(rec())
    assert f"{P}_requests{{" not in m.render().decode()
