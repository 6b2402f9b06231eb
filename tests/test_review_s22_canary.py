"""Session 22 fresh-eyes review (H6): canary and endpoints against ingress-nginx's own code.

Each test cites the ingress-nginx source it checks:
- ``rootfs/etc/nginx/lua/balancer.lua`` (``route_to_alternative_balancer``, ``sync_backend``),
- ``internal/ingress/annotations/canary/main.go`` and ``sessionaffinity/main.go`` (both read
  their strings with ``parser.GetStringAnnotation``: ``normalizeString``, each line trimmed with
  ``strings.TrimSpace``; an empty result is an error and the field keeps its default),
- ``internal/ingress/controller/controller.go`` (``mergeAlternativeBackends``,
  ``externalNamePorts``),
- ``internal/ingress/controller/endpointslices.go`` (``getEndpointsFromSlices``).
Where ingresslib differs on purpose the test asserts the documented choice and names its row
in docs/router.md's divergence table (R2, R3, R4, R14, R26).

The tests marked "DEFECT" failed on the tree before this session's fix.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib._canary import parse_canary
from ingresslib._endpoints import EndpointIndex
from ingresslib._models import (
    Endpoint,
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    ServicePort,
)
from ingresslib._router import Decision, Router

# The Router tests run once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, meta, resources, service, simple_backend, slice_

MAIN_IP = "10.0.0.1"
CANARY_IP = "10.1.0.1"


def _router(ann: dict[str, str], *, canary_ips: tuple[str, ...] = (CANARY_IP,),
            canary_path: str = "/", canary_type: str = "Prefix",
            with_main: bool = True) -> Router:
    objs: list[object] = []
    if with_main:
        objs.append(ingress("web", [("a.test", "/", "Prefix", "web", 80)]))
    objs.append(canary("web-c", "a.test", canary_path, "web-canary", 80, ann,
                       ptype=canary_type))
    objs += simple_backend("web", [MAIN_IP])
    objs.append(service("web-canary"))
    if canary_ips:
        objs.append(slice_("web-canary-1", "web-canary", list(canary_ips)))
    return Router(resources(*objs), seed=1)


def _side(r: Router, headers: Any = (), path: str = "/") -> bool:
    d = r.route("GET", "a.test", path, headers)
    assert d is not None and d.endpoint is not None
    assert d.endpoint[0] == (CANARY_IP if d.canary else MAIN_IP)
    return d.canary


# --- balancer.lua route_to_alternative_balancer: header, then cookie, then weight --------------


def test_header_always_never_and_other_values() -> None:
    # "elseif header == "always" then return true elseif header == "never" then return false
    # end" - any other value falls through to the cookie and the weight.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-weight": "100"})
    assert _side(r, [("X-Canary", "always")]) is True
    assert _side(r, [("X-Canary", "never")]) is False
    assert _side(r, [("X-Canary", "maybe")]) is True  # weight 100 decides
    # The name is read case-insensitively ($http_x_canary).
    assert _side(r, [("x-canary", "never")]) is False


def test_header_value_match_and_fall_through() -> None:
    # "if traffic_shaping_policy.headerValue and #... > 0 then if ... == header then return
    # true end" - a value that differs does not force the main side: the cookie decides next.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "beta",
                 P + "canary-by-cookie": "ck"})
    assert _side(r, [("X-Canary", "beta")]) is True
    assert _side(r, [("X-Canary", "Beta")]) is False  # values are case-sensitive
    assert _side(r, [("X-Canary", "gamma"), ("Cookie", "ck=always")]) is True
    # With a value configured, "always"/"never" are plain values (the elseif chain).
    assert _side(r, [("X-Canary", "always")]) is False
    assert _side(r, [("X-Canary", "never"), ("Cookie", "ck=always")]) is True


def test_header_pattern_is_unanchored_and_falls_through() -> None:
    # "local m, err = ngx.re.match(header, traffic_shaping_policy.headerPattern)": no anchors.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-pattern": "be+ta",
                 P + "canary-weight": "100"})
    assert _side(r, [("X-Canary", "the beeeta build")]) is True
    r0 = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-pattern": "be+ta"})
    assert _side(r0, [("X-Canary", "gamma")]) is False
    assert _side(r0, [("X-Canary", "always")]) is False  # a pattern replaces always/never


def test_header_value_beats_pattern() -> None:
    # "if headerValue ... elseif headerPattern ...": the pattern is not consulted.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "beta",
                 P + "canary-by-header-pattern": "gam"})
    assert _side(r, [("X-Canary", "gamma")]) is False
    assert _side(r, [("X-Canary", "beta")]) is True


def test_cookie_always_never() -> None:
    # "if cookie == "always" then return true elseif cookie == "never" then return false end"
    r = _router({P + "canary-by-cookie": "ck", P + "canary-weight": "100"})
    assert _side(r, [("Cookie", "ck=never")]) is False
    assert _side(r, [("Cookie", "a=1; ck=always")]) is True
    assert _side(r, [("Cookie", "ck=other")]) is True  # weight 100
    r0 = _router({P + "canary-by-cookie": "ck"})
    assert _side(r0, [("Cookie", "ck=always")]) is True
    assert _side(r0, [("Cookie", "other=always")]) is False


def test_precedence_header_then_cookie_then_weight() -> None:
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-cookie": "ck",
                 P + "canary-weight": "100"})
    assert _side(r, [("X-Canary", "never"), ("Cookie", "ck=always")]) is False
    assert _side(r, [("X-Canary", "always"), ("Cookie", "ck=never")]) is True
    assert _side(r, [("Cookie", "ck=never")]) is False
    assert _side(r, []) is True


def test_weight_zero_and_full() -> None:
    # "if math.random(weightTotal) <= traffic_shaping_policy.weight then return true end":
    # weight 0 never, weight = total always.
    r0 = _router({P + "canary-weight": "0"})
    r100 = _router({P + "canary-weight": "100"})
    assert not any(_side(r0) for _ in range(20))
    assert all(_side(r100) for _ in range(20))


def test_weight_split_is_exact_per_window() -> None:
    # R4: ingress-nginx draws math.random per request; ingresslib's split is exact over every
    # window of weight-total requests.
    r = _router({P + "canary-weight": "30"})
    assert sum(_side(r) for _ in range(100)) == 30


def test_weight_total_below_100_is_honoured() -> None:
    # R3: balancer.lua uses weightTotal only when > 100 ("if ... weightTotal > 100 then");
    # ingresslib honours any positive total: 5 of 10 is half the requests.
    r = _router({P + "canary-weight": "5", P + "canary-weight-total": "10"})
    assert sum(_side(r) for _ in range(20)) == 10
    r = _router({P + "canary-weight": "1", P + "canary-weight-total": "1000"})
    assert sum(_side(r) for _ in range(1000)) == 1


# --- canary with no endpoints, without a main rule, on another path ---------------------------


def test_canary_without_endpoints_leaves_traffic_on_main() -> None:
    # sync_backend: "if not backend.endpoints or #backend.endpoints == 0 then
    # balancers[backend.name] = nil"; route_to_alternative_balancer then logs "no alternative
    # balancer for backend" and returns false: main serves, even for "always" (R2).
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-weight": "100"}, canary_ips=())
    assert _side(r, [("X-Canary", "always")]) is False
    assert _side(r) is False


def test_canary_without_main_rule_is_ignored_and_reported() -> None:
    # mergeAlternativeBackends: "cannot merge alternative backend %s into hostname %s that does
    # not exist" - and createServers skips canary Ingresses ("is marked as Canary, ignoring"),
    # so the canary's own rules serve nothing.
    r = _router({P + "canary-weight": "100"}, with_main=False)
    assert r.route("GET", "a.test", "/") is None
    assert any("matches no main rule" in d.message for d in r.table.diagnostics)


def test_canary_on_another_path_does_not_attach() -> None:
    # mergeAlternativeBackends merges only "loc.Path == path.Path && *loc.PathType ==
    # *path.PathType"; the canary's upstream has NoServer, so its path gets no location.
    r = _router({P + "canary-weight": "100"}, canary_path="/beta")
    assert _side(r, path="/beta") is False  # served by the main "/" rule, no canary
    assert _side(r, path="/") is False
    assert any("matches no main rule" in d.message for d in r.table.diagnostics)


def test_canary_with_another_path_type_does_not_attach() -> None:
    r = _router({P + "canary-weight": "100"}, canary_type="ImplementationSpecific")
    assert _side(r) is False
    assert any("not ImplementationSpecific" in d.message for d in r.table.diagnostics)


# --- DEFECT: canary-by-header-value / -pattern read as GetStringAnnotation reads them ----------


def test_header_value_is_trimmed_as_get_string_annotation_does() -> None:
    # DEFECT. canary/main.go: "config.HeaderValue, err = parser.GetStringAnnotation(...)";
    # parseString returns normalizeString(val) ("strings.TrimSpace(line)" per line). Before:
    # " beta " was compared as written and never equalled a request's value (h11 strips a
    # field value's surrounding blanks), so the header never chose the canary.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": " beta\t"})
    assert _side(r, [("X-Canary", "beta")]) is True
    cfg, warnings = parse_canary({P + "canary-by-header": "X-Canary",
                                  P + "canary-by-header-value": " beta "})
    assert cfg.header_value == "beta" and warnings == []


def test_blank_header_value_is_no_value() -> None:
    # DEFECT. parseString: "if len(s) == 0 { return "", NewInvalidAnnotationContent }" - the
    # value is "" and balancer.lua's "#headerValue > 0" is false: "always"/"never" apply.
    # Before: "  " was kept as the value, so "always" stayed on the main side.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "  "})
    assert _side(r, [("X-Canary", "always")]) is True
    assert _side(r, [("X-Canary", "  ")]) is False


def test_header_pattern_is_trimmed_and_blank_is_no_pattern() -> None:
    # DEFECT. Same reading for canary-by-header-pattern (GetStringAnnotation). Before: " ^beta"
    # was a pattern starting with a space, matching no value; "   " matched any value holding
    # three spaces and disabled always/never.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-pattern": " ^beta "})
    assert _side(r, [("X-Canary", "beta-7")]) is True
    blank = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-pattern": "   "})
    assert _side(blank, [("X-Canary", "always")]) is True
    assert _side(blank, [("X-Canary", "a   b")]) is False
    cfg, warnings = parse_canary({P + "canary-by-header": "X-Canary",
                                  P + "canary-by-header-pattern": " \t"})
    assert cfg.header_pattern is None and warnings == []


def test_line_breaks_are_kept_as_normalize_string_keeps_them() -> None:
    # DEFECT. normalizeString trims each line and joins them with "\n" again, so a YAML block
    # scalar ("canary-by-header: |" then "X-Canary") is "X-Canary\n" in ingress-nginx, and
    # balancer.lua's ngx.var["http_X_Canary\n"] names no header: the header never decides.
    # Before: Python's strip() dropped the line break and the header chose the canary. Now the
    # name is refused as it reads, with a warning (SEMANTICS §2: never silently).
    r = _router({P + "canary-by-header": "X-Canary\n", P + "canary-by-cookie": "ck\n"})
    assert _side(r, [("X-Canary", "always")]) is False
    assert _side(r, [("Cookie", "ck=always")]) is False
    cfg, warnings = parse_canary({P + "canary-by-header": "X-Canary\n",
                                  P + "canary-by-cookie": "ck\n"})
    assert cfg.header is None and cfg.cookie is None
    assert [k for k, _ in warnings] == [P + "canary-by-header", P + "canary-by-cookie"]
    assert all("line break" in m for _, m in warnings)
    # A value keeps its line break too (ingress-nginx compares "beta\n" with the header and
    # never matches): kept, and said.
    cfg, warnings = parse_canary({P + "canary-by-header": "X-Canary",
                                  P + "canary-by-header-value": "beta\n"})
    assert cfg.header_value == "beta\n"
    assert [k for k, _ in warnings] == [P + "canary-by-header-value"]
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "beta\n"})
    assert _side(r, [("X-Canary", "beta")]) is False
    # Surrounding blanks still go (each line is trimmed): "  X-Canary  " is X-Canary.
    assert _side(_router({P + "canary-by-header": "  X-Canary\t"}), [("X-Canary", "always")])


# --- endpointslices.go getEndpointsFromSlices --------------------------------------------------


def _resolve(*objs: object, port: int | str = 80) -> tuple[tuple[str, int], ...]:
    return EndpointIndex(resources(*objs)).resolve("default", "web", port).endpoints


def test_endpoint_conditions() -> None:
    # "if (ep.Conditions.Ready != nil) && !(*ep.Conditions.Ready) { continue }": ready unset
    # is ready, ready false is not (serving is not read). ready unset with terminating true is
    # not used here (R14: the API says ready is never true while terminating).
    C = EndpointConditions
    sl = slice_("web-1", "web", [
        ("10.0.0.1", C()),
        ("10.0.0.2", C(ready=False, serving=True)),
        ("10.0.0.3", C(ready=True, serving=False)),
        ("10.0.0.4", C(ready=True, terminating=True)),
        ("10.0.0.5", C(ready=None, terminating=True)),
        ("10.0.0.6", C(ready=False, serving=True, terminating=True)),
    ])
    assert _resolve(service("web"), sl) == (("10.0.0.1", 8080), ("10.0.0.3", 8080),
                                             ("10.0.0.4", 8080))


def test_duplicate_endpoints_across_slices_are_one() -> None:
    # "processedUpstreamServers[hostPort]": an address:port listed by two slices (while the
    # controller moves it) is one upstream server.
    eps = _resolve(service("web"), slice_("web-1", "web", ["10.0.0.1", "10.0.0.2"]),
                   slice_("web-2", "web", ["10.0.0.2", "10.0.0.3"]))
    assert eps == (("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080))


def test_named_target_port_resolves_through_the_slice_port() -> None:
    # "} else if port.Name == *epPort.Name { targetPort = *epPort.Port }": a named targetPort
    # is resolved by the slice port carrying the Service port's name, per slice (pods of two
    # slices may listen on different numbers).
    svc = service("web", [ServicePort(port=80, name="http", target_port="web"),
                          ServicePort(port=9090, name="metrics", target_port=9091)])
    eps = _resolve(svc, slice_("web-1", "web", ["10.0.0.1"], [("http", 8080), ("metrics", 9091)]),
                   slice_("web-2", "web", ["10.0.0.2"], [("http", 8081), ("metrics", 9091)]))
    assert eps == (("10.0.0.1", 8080), ("10.0.0.2", 8081))
    assert _resolve(svc, slice_("web-1", "web", ["10.0.0.1"], [("http", 8080),
                                                                ("metrics", 9091)]),
                    port="metrics") == (("10.0.0.1", 9091),)


def test_slice_without_ports() -> None:
    # "if len(eps.Ports) == 0 && port.TargetPort.Type == intstr.Int { ports = append(ports,
    # port.TargetPort.IntVal) }" - and nothing for a named targetPort (PR 9149, "fix null
    # ports": such a slice's pods lack the named port).
    def portless(svc_port: ServicePort) -> tuple[tuple[str, int], ...]:
        sl = EndpointSlice(meta("web-1", labels={"kubernetes.io/service-name": "web"}), "IPv4",
                           (Endpoint(("10.0.0.1",)),), ())
        return _resolve(service("web", [svc_port]), sl)

    assert portless(ServicePort(port=80, target_port=8080)) == (("10.0.0.1", 8080),)
    assert portless(ServicePort(port=80, name="http", target_port="web")) == ()


def test_only_tcp_slice_ports() -> None:
    # "if !reflect.DeepEqual(*epPort.Protocol, proto) { continue }" with proto TCP.
    sl = EndpointSlice(meta("web-1", labels={"kubernetes.io/service-name": "web"}), "IPv4",
                       (Endpoint(("10.0.0.1",)),),
                       (EndpointPort(port=8080, name="", protocol="UDP"),))
    assert _resolve(service("web"), sl) == ()


def test_app_protocol_does_not_change_endpoints() -> None:
    # getEndpointsFromSlices never reads appProtocol (the backend-protocol annotation says how
    # to speak to the upstream): an h2c or https appProtocol selects the same endpoints.
    for proto in ("kubernetes.io/h2c", "https", None):
        svc = service("web", [ServicePort(port=80, target_port=8080, app_protocol=proto)])
        sl = EndpointSlice(meta("web-1", labels={"kubernetes.io/service-name": "web"}), "IPv4",
                           (Endpoint(("10.0.0.1",)),),
                           (EndpointPort(port=8080, name="", app_protocol=proto),))
        assert _resolve(svc, sl) == (("10.0.0.1", 8080),)


def test_port_names_must_match_r26() -> None:
    # R26: ingress-nginx takes every TCP slice port for an unnamed Service port, and falls back
    # to a numeric targetPort when the names differ (issue 7390); ingresslib matches by name.
    svc = service("web", [ServicePort(port=80, name="http", target_port=8080)])
    assert _resolve(svc, slice_("web-1", "web", ["10.0.0.1"], [("other", 9090)])) == ()


def test_external_name_ports() -> None:
    # externalNamePorts + getEndpointsFromSlices ("targetPort := port.TargetPort.IntValue()"):
    # the numeric targetPort of the Service port named or numbered by the Ingress; a named
    # targetPort is the Service port ("if tp.IntValue() == 0 { tp = intstr.FromInt(int(
    # svcPort.Port)) }"); a port the Service does not list is used as is ("ExternalName
    # without port").
    def ext(ports: list[ServicePort], name: str = "backend.example.com",
            port: int | str = 80) -> tuple[tuple[str, int], ...]:
        svc = service("web", ports, type="ExternalName", external_name=name, cluster_ip=None)
        return _resolve(svc, port=port)

    http = ServicePort(port=80, name="http", target_port=8080)
    assert ext([http]) == (("backend.example.com", 8080),)
    assert ext([http], port="http") == (("backend.example.com", 8080),)
    assert ext([ServicePort(port=80, name="http", target_port="web")], port="http") == (
        ("backend.example.com", 80),)
    assert ext([], port=8443) == (("backend.example.com", 8443),)
    # "if ip := net.ParseIP(...); s.Spec.ExternalName == "localhost" || (ip != nil &&
    # ip.IsLoopback())" and "validation.IsDNS1123Subdomain(externalName)": refused.
    assert ext([http], name="localhost") == ()
    assert ext([http], name="127.0.0.1") == ()
    assert ext([http], name="Backend.example.com") == ()
    assert ext([http], name="backend.example.com.") == (("backend.example.com.", 8080),)


# --- DEFECT: affinity annotations read as GetStringAnnotation reads them ------------------------


def _sticky(ann: dict[str, str], seed: int = 1) -> Router:
    ing = ingress("web", [("a.test", "/app", "Prefix", "web", 80)], ann)
    return Router(resources(ing, *simple_backend("web", ["10.0.0.1", "10.0.0.2"])), seed=seed)


def _cookie(r: Router) -> str:
    d: Decision | None = r.route("GET", "a.test", "/app")
    assert d is not None and d.set_cookie is not None
    return d.set_cookie


def _warned(r: Router, name: str) -> list[str]:
    return [w.message for w in r.warnings if w.field == f"metadata.annotations[{P}{name}]"]


def test_affinity_value_is_trimmed() -> None:
    # DEFECT. sessionaffinity/main.go: "at, err := parser.GetStringAnnotation(
    # annotationAffinityType, ...)" (validator "ValidateOptions([]string{cookieAffinity}, true,
    # true)": trimmed first), then "switch at { case cookieAffinity: ...}". Before: " cookie"
    # was warned about as unsupported and no session cookie was set.
    r = _sticky({P + "affinity": " cookie\t"})
    assert _cookie(r).startswith("INGRESSCOOKIE=")
    assert _warned(r, "affinity") == []
    # "cookie\n" (a YAML block scalar) stays "cookie\n" after normalizeString: no affinity.
    block = _sticky({P + "affinity": "cookie\n"})
    d = block.route("GET", "a.test", "/app")
    assert d is not None and d.set_cookie is None and _warned(block, "affinity")


def test_affinity_mode_is_trimmed() -> None:
    # DEFECT. "am, err := parser.GetStringAnnotation(annotationAffinityMode, ...)"; balancer.lua
    # "if backend["sessionAffinityConfig"]["mode"] == "persistent" then name =
    # "sticky_persistent"". Before: " persistent" was warned about and balanced was used.
    # A persistent cookie names its endpoint (the same value whatever the Router's seed); a
    # balanced one is a random key.
    ann = {P + "affinity": "cookie", P + "affinity-mode": " persistent "}
    r1, r2 = _sticky(ann, seed=1), _sticky(ann, seed=2)
    assert _warned(r1, "affinity-mode") == []
    assert _cookie(r1) == _cookie(r2)


def test_cookie_path_and_domain_are_trimmed() -> None:
    # DEFECT. cookieAffinityParse: "cookie.Path, err = parser.GetStringAnnotation(
    # annotationAffinityCookiePath, ...)" and the same for Domain (validators with removeSpace
    # true). Before: " /app " was refused (the rule path used, with a warning) and
    # " example.test " was dropped.
    r = _sticky({P + "affinity": "cookie", P + "session-cookie-path": " /app/x ",
                 P + "session-cookie-domain": " example.test "})
    attrs = _cookie(r).split("; ")[1:]
    assert "Path=/app/x" in attrs and "Domain=example.test" in attrs
    assert _warned(r, "session-cookie-path") == [] and _warned(r, "session-cookie-domain") == []


@pytest.mark.parametrize("value", ["", "  "])
def test_blank_affinity_mode_is_balanced(value: str) -> None:
    # A blank mode is no mode in ingress-nginx (parseString refuses it): balanced.
    r1 = _sticky({P + "affinity": "cookie", P + "affinity-mode": value}, seed=1)
    r2 = _sticky({P + "affinity": "cookie", P + "affinity-mode": value}, seed=2)
    assert _cookie(r1) != _cookie(r2)


def test_cookie_name_keeps_a_line_break_and_falls_back() -> None:
    # DEFECT. cookieAffinityParse: "cookie.Name, err = parser.GetStringAnnotation(
    # annotationAffinityCookieName, ...)"; the validator (ValidateRegex(BasicCharsRegex, true))
    # refuses a line break ("MaliciousRegex = regexp.MustCompile(`\r|\n`)") and the name falls
    # back to "cookie.Name = defaultAffinityCookieName". Before: Python's strip() dropped the
    # line break of a YAML block scalar and "sid" was used, silently. Blanks around it go.
    block = _sticky({P + "affinity": "cookie", P + "session-cookie-name": "sid\n"})
    assert _cookie(block).startswith("INGRESSCOOKIE=")
    assert _warned(block, "session-cookie-name")
    spaced = _sticky({P + "affinity": "cookie", P + "session-cookie-name": " sid "})
    assert _cookie(spaced).startswith("sid=") and _warned(spaced, "session-cookie-name") == []
