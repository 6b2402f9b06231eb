"""Session 35, x43: a review of round 3 (x38's ``_with_args``, x39's stored Service) and two
pieces x40's model-based test left partly covered.

1. x38, checked against nginx's source and found right: ngx_http_rewrite_module.c
   ``ngx_http_rewrite`` cuts a final "?" ("the last "?" drops the original arguments":
   ``value[2].len--``, else ``regex->add_args = 1``) before ngx_http_script_compile, which
   marks the argument part at the first literal "?" only (``sc->compile_args = 0`` after it;
   a capture is copied at run time, never scanned); ngx_http_script_regex_end_code sets
   ``r->args`` to that part, "&" and the request's arguments after it "if (code->add_args &&
   r->args.len)", and without a part clears them unless ``add_args``; the proxy writes "?"
   only "if (r->args.len > 0)". Pinned below against test_x35_s35's port of nginx: a target
   ending in "?" with captures, one whose capture holds an escaped "?" (``%3F``: nginx's
   decoded "?" in ``$uri``, re-escaped by NGX_ESCAPE_URI), "?" in the middle and at the end
   (``/x?a=1?``), and an empty request query (``/p?``).

2. x39, found too wide, fixed (each test marked DEFECT failed before the fix):

   - ``_allocate_node_ports`` stops at its first failure, so with ``stored`` a node port shared
     across protocols hid every later port's: ``80/TCP`` and ``81/UDP`` on 30080, then
     ``90/TCP`` on 70000, was served. No API server stores that: an update's updateNodePorts
     skips only the node ports the Service already holds (``portAllocated``) and allocates the
     others ("nodePortOp.Allocate": ErrNotInRange). With ``stored`` the allocator now goes on
     past a shared one, as the update does, and stops at any other failure.
   - A stored Service set aside was told by the create-time error: the allocator's refusal
     alone ("provided port is already allocated", a rule the store forgives), not what sets it
     aside (an invalid selector; ValidateService's "Duplicate value" of a same-protocol shared
     node port). ``_decode_admitted`` now hands back the stored object's whole error, as
     test_kube_s25's "the whole error told".

3. x40's two gaps, as focused tests beside its machine (the proxy harness, bounded):
   an early upstream answer while requests are pipelined behind the one still sending its
   body, and a request whose body is only partly sent with another pipelined behind it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._cli import main
from ingresslib._store import ResourceStore

from _proxy_harness import FakeUpstream, ProxyPair, Route
from test_x35_s35 import _PIECES, _assert_rewrite_is_nginx_s, _comparable, _ngx_rewrite, _ours
from test_x39_s35 import SHARED, TAKEN, _key, _node_port, _service

# --- 1. x38: the target's argument part (checked, pinned) ------------------------------------


@pytest.mark.parametrize(("rule_regex", "target", "sent_by_client", "sent"), [
    # a final "?" with captures: cut before compiling, the request's arguments dropped
    ("/a/(.*)", "/r/$1?", "/a/x?k=1", b"/r/x"),
    # a capture holding an escaped "?": the decoded "?" of $uri is no argument mark; the
    # path goes up re-escaped (NGX_ESCAPE_URI), the final "?" still cut
    ("/a/(.*)", "/$1?", "/a/x%3Fy?k=1", b"/x%3Fy"),
    ("/a/(.*)", "/r/$1", "/a/x%3Fy?k=1", b"/r/x%3Fy?k=1"),
    ("/a(.*)", "/x?a=$1?", "/a%3F?k=1", b"/x?a=%3F"),
    # "?" in the middle and at the end: the first starts the arguments, the last is cut
    ("/a(.*)", "/x?a=1?", "/ab?k=1", b"/x?a=1"),
    ("/a(.*)", "/x?a=1", "/ab?k=1", b"/x?a=1&k=1"),
    ("/a(.*)", "/x???", "/ab?k=1", b"/x??"),
    # an empty request query: no "&", no "?" for empty arguments
    ("/p(.*)", "/q/$1", "/p?", b"/q/"),
    ("/p(.*)", "/q?z=1", "/p?", b"/q?z=1"),
    ("/p(.*)", "/q?$1", "/p?", b"/q"),
    ("/p(.*)", "/q?$1", "/pv?", b"/q?v"),
    ("/p(.*)", "/q?", "/p?", b"/q"),
])
def test_argument_part_examples_are_nginx_s(rule_regex: str, target: str, sent_by_client: str,
                                            sent: bytes) -> None:
    assert _ours(rule_regex, target, sent_by_client) == sent
    nginx = _ngx_rewrite(rule_regex, target, sent_by_client.encode())
    assert nginx is not None and _comparable(sent) == _comparable(nginx)


@given(st.lists(st.sampled_from(_PIECES), max_size=8),
       st.sampled_from(["/a(.*)", "/a/(.*)", "/(.)(.*)"]),
       st.sampled_from(["/$1?", "/r/$1$2?", "/x?a=1?", "/x?a=$1?", "/x?$2?$1", "/x?$1?$2?",
                        "/x?&", "/$1??"]),
       st.sampled_from([None, "", "k=1", "q=%3F&r"]))
def test_targets_with_question_marks_are_nginx_s(parts: list[str], rule_regex: str, target: str,
                                                 query: str | None) -> None:
    _assert_rewrite_is_nginx_s(parts, rule_regex, target, query)


# --- 2. x39: a stored Service's shared node port (DEFECTS, fixed) ----------------------------

_PORTS: list[dict[str, Any]] = SHARED["ports"]  # type: ignore[assignment]


def _errors_of(store: ResourceStore, obj: dict[str, Any]) -> list[str]:
    return [str(e) for e in store.errors[_key(obj)].errors]


def test_a_later_node_port_out_of_range_is_not_hidden_by_a_shared_one() -> None:
    # DEFECT: served with the shared port's warning only. An update allocates 70000
    # (updateNodePorts: not a node port the Service holds): ErrNotInRange, never stored.
    obj = _service("l", {**SHARED, "ports": [*_PORTS, _node_port(90, 70000, "TCP", "c")]})
    store = ResourceStore()
    store.apply("ADDED", obj)
    assert _key(obj) not in store and not store.warnings
    assert _errors_of(store, obj) == [
        "Service default/l: " + TAKEN,
        "Service default/l: spec.ports[2].nodePort: Invalid value: 70000: must be between 1 and "
        "65535, inclusive"]


def test_a_later_shared_port_keeps_going() -> None:
    # DEFECT (its warnings): two shared node ports, each across protocols, served with the
    # first one's warning alone (the allocator stopped there). Both are told now.
    ports = [*_PORTS, _node_port(90, 30090, "TCP", "c"), _node_port(91, 30090, "UDP", "d")]
    obj = _service("l", {**SHARED, "ports": ports})
    store = ResourceStore()
    store.apply("ADDED", obj)
    assert _key(obj) in store and not store.errors
    assert [w.field for w in store.warnings[_key(obj)]] == [
        "spec.ports[1].nodePort", "spec.ports[3].nodePort"]


def test_check_refuses_the_shared_port_alone_as_create_does(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]
                                                            ) -> None:
    import yaml
    f = tmp_path / "svc.yaml"
    f.write_text(yaml.safe_dump(_service("l", {**SHARED, "ports": [
        *_PORTS, _node_port(90, 70000, "TCP", "c")]})))
    assert main(["check", "-f", str(f)]) != 0
    out, err = capsys.readouterr()
    # initNodePorts stops at its first failure: the later port is not told
    assert TAKEN in out + err and "70000" not in out + err


def test_a_set_aside_service_is_told_by_what_sets_it_aside() -> None:
    # DEFECT: told by the allocator's refusal alone, which the store forgives.
    obj = _service("l", {**SHARED, "selector": {"app": "my app"}})
    store = ResourceStore()
    store.apply("ADDED", obj)
    errors = _errors_of(store, obj)
    assert errors[0] == "Service default/l: " + TAKEN
    assert len(errors) == 2 and errors[1].startswith(
        'Service default/l: spec.selector: Invalid value: "my app"')


def test_an_update_to_a_same_protocol_shared_port_is_set_aside_as_a_duplicate() -> None:
    # DEFECT (its message): ValidateService's (protocol, nodePort) duplicate, which an
    # update runs, was told as the allocator's create-time refusal.
    store = ResourceStore()
    served = _service("l", SHARED)
    store.apply("ADDED", served)
    same = copy.deepcopy(served)
    same["metadata"]["resourceVersion"] = "8"
    same["spec"]["ports"][1]["protocol"] = "TCP"
    store.apply("MODIFIED", same)
    assert _errors_of(store, same) == [
        "Service default/l: " + TAKEN,
        "Service default/l: spec.ports[1].nodePort: Duplicate value: 30080"]
    # set aside, its last valid version kept
    assert [s.metadata.resource_version for s in store.snapshot().services] == ["7"]


def test_an_update_to_a_shared_port_keeps_a_served_service_served() -> None:
    plain = _service("l", {**SHARED, "ports": [_PORTS[0], _node_port(81, 30081, "UDP", "b")]})
    store = ResourceStore()
    store.apply("ADDED", plain)
    assert _key(plain) in store and not store.warnings
    shared = _service("l", SHARED)
    shared["metadata"]["resourceVersion"] = "8"
    store.apply("MODIFIED", shared)
    assert not store.errors
    assert [s.metadata.resource_version for s in store.snapshot().services] == ["8"]
    assert [str(w) for w in store.warnings[_key(shared)]] == ["Service default/l: " + TAKEN]


def test_a_family_policy_error_does_not_slip_through_with_a_shared_port() -> None:
    # beginCreate's family check (initIPFamilyFields: two families under SingleStack) runs
    # before the allocator and is told alone, stored or not.
    obj = _service("l", {**SHARED, "ipFamilies": ["IPv4", "IPv6"]})
    store = ResourceStore()
    store.apply("ADDED", obj)
    assert _key(obj) not in store and not store.warnings
    assert [e.field for e in store.errors[_key(obj)].errors] == ["spec.ipFamilyPolicy"]


# --- 3. x40's two gaps, focused (the machine covers them at random: finish_body's behind) ----


def _quiet(request: Any, body: bytes, up: Any) -> None:
    """An upstream app that answers nothing: the test answers for it."""
    return None


_TWO = [Route("/a", host="a.test", endpoints=[("10.0.0.1", 81)], service="a"),
        Route("/b", host="b.test", endpoints=[("10.0.0.2", 82)], service="b")]
_POST_HEAD = b"POST /a/1 HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n"
_BEHIND = b"GET /b/2 HTTP/1.1\r\nHost: b.test\r\n\r\nGET /a/3 HTTP/1.1\r\nHost: a.test\r\n\r\n"


def _the_upstream(pair: ProxyPair, endpoint: tuple[str, int]) -> FakeUpstream:
    (up,) = [u for u in pair.live.values() if u.endpoint == endpoint and not u.closed]
    return up


def test_requests_pipelined_behind_a_body_answered_early_are_never_read() -> None:
    # The upstream answers while the body is still coming; the client sends the rest, with two
    # requests behind it, before that answer ends. An answer begun before the body ended
    # closes the connection after it: the requests behind reach no upstream, get no answer.
    pair = ProxyPair(_TWO, app=_quiet)
    pair.send(_POST_HEAD + b"012")
    up = _the_upstream(pair, ("10.0.0.1", 81))
    pair.upstream_send(up, b"HTTP/1.1 413 X\r\nContent-Length: 4\r\n\r\nto")
    pair.send(b"3456789" + _BEHIND)
    pair.upstream_send(up, b"o b")
    assert pair.closed
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(bytes(pair.received))
    events: list[Any] = []
    while (ev := client.next_event()) is not h11.NEED_DATA:
        events.append(ev)
        if isinstance(ev, h11.EndOfMessage):
            break
    assert [type(e) for e in events] == [h11.Response, h11.Data, h11.EndOfMessage]
    assert events[0].status_code == 413 and client.trailing_data == (b"", False)
    assert all(u.endpoint != ("10.0.0.2", 82) for u in pair.upstreams)
    assert b"GET" not in pair.upstream_bytes
    assert [r.status for r in pair.records] == [413]


def test_a_request_behind_a_body_sent_in_parts_is_answered_after_it() -> None:
    pair = ProxyPair(_TWO, app=_quiet)
    pair.send(_POST_HEAD + b"012")
    pair.send(b"3456789" + _BEHIND[:30])  # the rest of the body, and part of the next
    pair.send(_BEHIND[30:])
    a = _the_upstream(pair, ("10.0.0.1", 81))
    assert [(r.target, body) for r, body in a.requests] == [(b"/a/1", b"0123456789")]
    assert b"/b/2" not in pair.upstream_bytes  # one request at a time, in order
    pair.upstream_send(a, b"HTTP/1.1 200 X\r\nContent-Length: 2\r\n\r\nA1")
    b = _the_upstream(pair, ("10.0.0.2", 82))
    assert [r.target for r, _ in b.requests] == [b"/b/2"]
    pair.upstream_send(b, b"HTTP/1.1 201 X\r\nContent-Length: 2\r\n\r\nB2")
    a3 = [r.target for u in pair.upstreams if u.endpoint == ("10.0.0.1", 81)
          for r, _ in u.requests]
    assert a3 == [b"/a/1", b"/a/3"]
    assert not pair.closed
    assert pair.received.count(b"HTTP/1.1 ") == 2
    assert [r.status for r in pair.records] == [200, 201]
    assert b"A1" in pair.received and pair.received.endswith(b"B2")
