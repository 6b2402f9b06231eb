"""Review of the session-19 ConfigMap, pick-twin and server-test landings (R19g).

- The ``load-balance`` ANNOTATION is read as ingress-nginx's ``parser.GetStringAnnotation``
  returns it (``normalizeString``: each line trimmed with ``strings.TrimSpace``, the lines
  joined again): ``" ewma "`` is ewma there as here, but a YAML block value (``|``:
  ``"ewma\\n"``) keeps its line break, and the Lua balancer finds no such algorithm
  (``IMPLEMENTATIONS[name]``) and balances round-robin. ``str.strip`` read it as ewma: the
  cluster and ingresslib balanced differently, silently. (The ConfigMap key is not trimmed
  at all: 20d41c7.)
- Guards: ``Rotation``'s start is Python's remainder on both twins (the compiled ``%`` is
  ``PyNumber_Remainder`` now, under ``cdivision``), and the header-buffer floor is the one
  parser the keyword argument and the ConfigMap share.
"""

from __future__ import annotations

import pytest

from ingresslib import _pick_py
from ingresslib._balance import parse_balancer_spec
from ingresslib._config import parse_config_data
from ingresslib.proxy._settings import ProxySettings

P = "nginx.ingress.kubernetes.io/"
KNOWN = frozenset({"round_robin", "ewma"})


@pytest.mark.parametrize("value", ["ewma\n", " ewma \n", "ewma\r\n", "ewma\n\n"])
def test_load_balance_annotation_with_a_line_break_is_not_read_as_the_algorithm(
        value: str) -> None:
    spec, warnings = parse_balancer_spec({P + "load-balance": value}, "round_robin", KNOWN, "/")
    assert spec.kind == "round_robin"
    assert [k for k, _ in warnings] == [P + "load-balance"]
    assert "line breaks" in warnings[0][1]


@pytest.mark.parametrize("value", ["ewma", " ewma", "ewma \t", "\u00a0ewma\u3000"])
def test_load_balance_annotation_is_trimmed_as_ingress_nginx_trims_it(value: str) -> None:
    # ValidateOptions(..., trimSpace=true) then normalizeString: surrounding white space of
    # the one line goes (the ConfigMap key, read by mapstructure, keeps it: an error there).
    spec, warnings = parse_balancer_spec({P + "load-balance": value}, "round_robin", KNOWN, "/")
    assert (spec.kind, warnings) == ("ewma", [])


def test_load_balance_annotation_keeps_what_go_does_not_trim() -> None:
    # U+001C..U+001F: str.strip trims them, Go's unicode.IsSpace does not.
    spec, warnings = parse_balancer_spec({P + "load-balance": "\x1cewma"}, "round_robin",
                                         KNOWN, "/")
    assert spec.kind == "round_robin" and len(warnings) == 1


def _twins() -> list[object]:
    out: list[object] = [_pick_py]
    try:
        from ingresslib import _pick
    except ImportError:  # a pure install
        return out
    return [*out, _pick]


@pytest.mark.parametrize("twin", _twins(), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
@pytest.mark.parametrize("start", [-1, -2, -3, -4, -7, 5, 0])
def test_rotation_small_negative_start_is_pythons_remainder(twin: object, start: int) -> None:
    # C's remainder of -1 by 3 is -1 (cdivision); the start is items[start % n] on both.
    items = ("a", "b", "c")
    r = twin.Rotation(items, start)  # type: ignore[attr-defined]
    assert [next(r) for _ in range(4)] == [items[(start + k) % 3] for k in range(4)]


@pytest.mark.parametrize("value", ["4 511", "1 100", "8 256"])
def test_header_buffers_floor_is_shared_by_keyword_and_configmap(value: str) -> None:
    # The floor is 64-bit nginx's (64 * sizeof(void *)); a 32-bit build has 256: said so.
    with pytest.raises(ValueError, match="connection_pool_size.*512 on 64-bit platforms"):
        ProxySettings(large_client_header_buffers=value)
    with pytest.raises(ValueError):
        parse_config_data({"large-client-header-buffers": value})
