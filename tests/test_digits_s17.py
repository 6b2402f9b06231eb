"""Annotation and ConfigMap numbers of thousands of digits (session 17).

int() refuses a text of more than 4,300 digits with a ValueError ("Exceeds the limit (4300
digits) for integer string conversion"): such a value in `canary-weight` came out of
`Router(...)` as that ValueError, and `proxy-body-size` showed its "use
sys.set_int_max_str_digits()" advice as the error. Both are values past int64, which nginx and
ingress-nginx refuse as out of range.
"""

from __future__ import annotations

import pytest

import ingresslib
from ingresslib._goparse import parse_int
from ingresslib.proxy._settings import parse_size

HUGE = "9" * 5000


@pytest.mark.parametrize("text", [HUGE, "-" + HUGE, "+" + "0" * 5000 + "1" + "0" * 19])
def test_atoi_of_thousands_of_digits_is_out_of_range(text: str) -> None:
    assert parse_int(text) is None


def test_atoi_reads_leading_zeros_and_the_int64_bounds() -> None:
    assert parse_int("0" * 5000 + "42") == 42
    assert parse_int("9223372036854775807") == 2**63 - 1
    assert parse_int("-9223372036854775808") == -(2**63)
    assert parse_int("9223372036854775808") is None


@pytest.mark.parametrize("text", [HUGE, HUGE + "k", "0" * 30 + "1" + "0" * 20])
def test_a_size_of_thousands_of_digits_is_past_int64(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert "above 2^63-1 bytes" in str(info.value)
    assert "set_int_max_str_digits" not in str(info.value)
    assert len(str(info.value)) < 120


def test_a_size_with_leading_zeros_still_reads() -> None:
    assert parse_size("0" * 5000 + "1k") == 1024


CANARY = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: main, namespace: shop}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: canary
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/%s: "%s"
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web2, port: {number: 80}}}}
"""


@pytest.mark.parametrize("annotation", ["canary-weight", "canary-weight-total"])
def test_a_canary_weight_of_thousands_of_digits_is_a_warning(annotation: str) -> None:
    router = ingresslib.Router(ingresslib.parse_manifests(CANARY % (annotation, HUGE)))
    assert any(annotation in w.field for w in router.warnings), router.warnings
    d = router.route("GET", "shop.test", "/")
    assert d is not None and d.service == "web"


@pytest.mark.parametrize("pattern, matches, misses", [
    # PCRE reads a quantifier of ASCII digits only: "{²}" is literal text ("²".isdigit() is
    # True, and int("²") raised ValueError out of Router()).
    ("^a{²}$", "a{²}", "aa"),
    # Leading zeros past int()'s 4,300 digits are still a small count.
    ("^a{2," + "0" * 5000 + "3}$", "aaa", "aaaa"),
])
def test_a_canary_pattern_quantifier_is_read_as_pcre_reads_it(
        pattern: str, matches: str, misses: str) -> None:
    from ingresslib._canary import LinearRegex

    regex = LinearRegex(pattern)
    assert regex.search(matches) and not regex.search(misses)


def test_a_canary_pattern_repeat_of_thousands_of_digits_is_a_warning() -> None:
    manifests = CANARY % ("canary-by-header", "X-Canary")
    manifests = manifests.replace(
        '    nginx.ingress.kubernetes.io/canary-by-header: "X-Canary"\n',
        '    nginx.ingress.kubernetes.io/canary-by-header: "X-Canary"\n'
        f'    nginx.ingress.kubernetes.io/canary-by-header-pattern: "a{{{HUGE}}}"\n')
    router = ingresslib.Router(ingresslib.parse_manifests(manifests))
    assert any("canary-by-header-pattern" in w.field for w in router.warnings), router.warnings
