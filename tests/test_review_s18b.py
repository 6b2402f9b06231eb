"""Review of the session-18 messages (R18b): a canary's location annotations copied from its
main Ingress, and 'did you mean ...?' for annotation and ConfigMap key names.

Expected values come from ingress-nginx's behaviour quoted next to each test (keys are Go map
keys: case-sensitive), not from ingresslib's output.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib._config import parse_config_data
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, did_you_mean, parse_route_options

P = PREFIX
CANARY = {P + "canary": "true", P + "canary-weight": "10"}


def _parse(annotations: dict[str, str], main: dict[str, str] | None = None) -> Any:
    extra = {} if main is None else {"main_annotations": main}
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/c",
                               **extra)


def _canary_warnings(opts: Any) -> list[str]:
    return [w for w in opts.warnings if "ignored on a canary Ingress" in w]


# --- a canary copied from its main Ingress -----------------------------------------------------
# ingress-nginx (docs/user-guide/nginx-configuration/annotations.md): "when you mark an ingress
# as canary, then all the other non-canary annotations will be ignored (inherited from the
# corresponding main ingress)". A canary that repeats the main's value loses nothing: canary
# traffic gets that very value, and a warning per copied annotation is noise.


def test_canary_option_equal_to_the_mains_is_not_reported() -> None:
    main = {P + "rewrite-target": "/$2", P + "proxy-read-timeout": "30"}
    opts = _parse({**CANARY, **main}, main)
    assert _canary_warnings(opts) == []


def test_canary_option_differing_from_the_mains_is_reported() -> None:
    main = {P + "rewrite-target": "/$2", P + "proxy-read-timeout": "30"}
    opts = _parse({**CANARY, **main, P + "proxy-read-timeout": "90"}, main)
    assert _canary_warnings(opts) == [
        f"Ingress default/c: annotation {P}proxy-read-timeout: ignored on a canary Ingress (as "
        "in ingress-nginx: the main Ingress's applies to canary traffic)"]


def test_canary_option_the_main_does_not_set_is_reported() -> None:
    opts = _parse({**CANARY, P + "proxy-body-size": "8m"}, {})
    assert [w.split(": ")[1] for w in _canary_warnings(opts)] == [
        f"annotation {P}proxy-body-size"]


def test_canary_without_a_known_main_reports_each_option() -> None:
    # None: the main is not known (as before): every location option set is named.
    opts = parse_route_options({**CANARY, P + "proxy-body-size": "8m"}, "/", ProxySettings(),
                               main_annotations=None)
    assert len(_canary_warnings(opts)) == 1


# --- did you mean ... ? ---------------------------------------------------------------------------
# ingress-nginx reads an annotation with ``ing.GetAnnotations()[name]`` (a Go map: exact,
# case-sensitive keys), so "Rewrite-Target" and "REWRITE-TARGET" are both unread typos.


@pytest.mark.parametrize("name", ["REWRITE-TARGET", "Rewrite-Target", "rewrite-targt"])
def test_any_case_of_an_annotation_is_offered_its_name(name: str) -> None:
    assert did_you_mean(name) == P + "rewrite-target"
    opts = _parse({P + name: "/"})
    assert (f"Ingress default/c: annotation {P}{name}: unknown annotation, ignored; did you "
            f"mean {P}rewrite-target?") in opts.warnings
    assert not any("not implemented" in w for w in opts.warnings)


@pytest.mark.parametrize("name", ["blacklist-source-range", "blocklist-source-range"])
def test_a_deny_list_typo_is_never_offered_the_allow_list(name: str) -> None:
    # By spelling alone the closest name is allowlist-source-range: moving the addresses there
    # would let in only the clients meant to be refused.
    assert did_you_mean(name) is None
    assert not any("allowlist" in w or "whitelist" in w for w in _parse({P + name: "1.2.3.4"}).warnings)


def test_a_retired_ingress_nginx_annotation_gets_no_false_guess() -> None:
    # session-cookie-hash was an ingress-nginx annotation (sha1/md5/index) before the Lua
    # balancer; old manifests still carry it. It is no misspelling of session-cookie-path.
    assert did_you_mean("session-cookie-hash") is None


@pytest.mark.parametrize("key, guess", [("HSTS", "hsts"),
                                        ("USE-FORWARDED-HEADERS", "use-forwarded-headers")])
def test_any_case_of_a_configmap_key_is_offered_its_name(key: str, guess: str) -> None:
    # config.go reads the ConfigMap data with mapstructure into json-tagged fields; the keys are
    # the tags as written: an upper-case key is not read.
    warnings = parse_config_data({key: "true"}).warnings
    assert any(w.endswith(f"unknown key, ignored; did you mean {guess}?") for w in warnings)



# --- '; quote the value' -------------------------------------------------------------------------


def _configmap_error(data: dict[str, Any]) -> str:
    from ingresslib._config import parse_configmap
    from ingresslib._errors import ValidationError

    with pytest.raises(ValidationError) as e:
        parse_configmap({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"},
                         "data": data})
    return str(e.value)


def test_a_configmap_list_is_not_told_to_be_quoted() -> None:
    # Quoting a YAML list gives the text "['10.0.0.0/8', '192.168.0.0/16']", which no key reads:
    # ingress-nginx's list values are one comma-separated string (configmap.md:
    # proxy-real-ip-cidr "If use-forwarded-headers or use-proxy-protocol is enabled,
    # proxy-real-ip-cidr defines the default IP/network address of your external load balancer.
    # Can be a comma-separated list of CIDR blocks.").
    text = _configmap_error({"proxy-real-ip-cidr": ["10.0.0.0/8", "192.168.0.0/16"]})
    assert "quote the value" not in text
    assert text.endswith("ConfigMap.data of type string); write the items as one "
                         "comma-separated string")


def test_a_configmap_scalar_is_still_told_to_be_quoted() -> None:
    assert _configmap_error({"hsts": True}).endswith("; quote the value")
