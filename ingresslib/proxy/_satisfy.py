"""``satisfy: any`` (and ``all``, the default): how a location's access checks combine, for the
proxy core (``ClientConnection._access_phase``, proxy/_extauth.py) and ``IngressASGI`` alike.

References:

- kubernetes/ingress-nginx ``internal/ingress/annotations/satisfy/main.go`` ``Parse``:
  ``parser.GetStringAnnotation("satisfy", ...)`` (the value through ``normalizeString``), then
  "if err != nil || (satisfy != "any" && satisfy != "all") { satisfy = "" }": any other value
  (``Any``, ``""``) is no error, the location keeps nginx's default ``satisfy all``.
  nginx.tmpl writes "{{ if $location.Satisfy }} satisfy {{ $location.Satisfy }}; {{ end }}" in
  every location (``locationApplyAnnotations``: "loc.Satisfy = anns.Satisfy", the server's
  ``location /`` too).
- nginx ``src/http/ngx_http_core_module.c`` ``ngx_http_core_access_phase``: a handler's
  ``NGX_DECLINED`` goes on to the next; with ``satisfy any`` an ``NGX_OK`` ends the phase at
  once ("r->access_code = 0; for (h = r->headers_out.www_authenticate; h; h = h->next) {
  h->hash = 0; } r->phase_handler = ph->next;"), a 403 or 401 is remembered ("if
  (r->access_code != NGX_HTTP_UNAUTHORIZED) { r->access_code = rc; }": a 401 is never
  replaced by a later 403) and the next handler runs; any other status (a 500, ...) is
  answered at once. ``ngx_http_core_post_access_phase`` then answers the remembered code, if
  any, with every ``WWW-Authenticate`` the handlers added.
- The handlers' order: ``auto/modules`` lists ``ngx_http_auth_request_module``, then
  ``ngx_http_auth_basic_module``, then ``ngx_http_access_module``; each pushes its handler in
  ``postconfiguration``, and ``ngx_http_init_phase_handlers`` walks a phase's handlers from
  the last pushed ("for (j = cmcf->phases[i].handlers.nelts - 1; j >= 0; j--)"): allow/deny
  first, then ``auth_basic``, then ``auth_request``.
- ``ngx_http_access_module.c``: the first rule matching the address decides (``allow``:
  NGX_OK, ``deny``: 403); no rule matching it (a denylist alone, an address of a family
  without rules) is ``NGX_DECLINED``, which allows nothing under ``satisfy any``.
  ``ngx_http_auth_basic_module.c``: NGX_OK for a user of the file, else 401 with its
  ``WWW-Authenticate``. ``ngx_http_auth_request_module.c``: a 2xx is NGX_OK, 401 (with the
  service's ``WWW-Authenticate``) and 403 are returned, anything else is 500.

So with ``satisfy: any`` an address the allowlist admits skips basic authentication and the
auth subrequest; valid credentials or the auth service's 2xx let in an address the source
ranges refuse; when every check refuses, the answer is 401 if any of them answered 401 (with
basic authentication's challenge, then the auth service's), else 403; with ``auth-signin`` that
401 is its 302 (nginx.tmpl's ``error_page 401``).

ingresslib's choices (README, divergences): the ConfigMap's ``block-cidrs`` stays absolute (a
blocked address is refused 403 whatever ``satisfy`` says; in nginx a location's own ``allow``
lines replace the http-level ``deny`` ones, and with ``satisfy any`` the credentials of a
blocked address would let it in). A request checked under two Ingresses' access control (a
host's default backend under its server's ``location /``: ``combine_access``) passes every
check of both (``satisfy all``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from .._goparse import normalize_string

if TYPE_CHECKING:
    from ._access import Access, SourceRanges
    from ._extauth import Verdict

__all__ = ["SATISFY", "SatisfyAny", "parse_satisfy", "any_step", "any_access", "any_job",
           "combine"]

#: The annotation (without the prefix).
SATISFY = "satisfy"

_FORBIDDEN = 403
_UNAUTHORIZED = 401
_DENIED = 503
#: The source ranges' verdicts (``SatisfyAny.verdict``): an ``allow`` rule matched (NGX_OK),
#: no rule matched (NGX_DECLINED), a ``deny`` rule of the location (403, remembered), a
#: ``block-cidrs`` rule (403, answered at once).
ALLOW, DECLINE, REFUSE, BLOCK = 1, 0, _FORBIDDEN, -1
_CACHE_MAX = 4096


def parse_satisfy(annotations: Mapping[str, str], prefix: str,
                  warn: Callable[[str, str], None]) -> bool:
    """True for ``satisfy: any``. ``all``, no annotation and an invalid value (warned) are
    nginx's default ``satisfy all`` (satisfy/main.go ``Parse``: the value as
    ``GetStringAnnotation`` returns it, each line trimmed; ``Any`` is not ``any``)."""
    raw = annotations.get(prefix + SATISFY)
    if raw is None:
        return False
    value = normalize_string(raw)
    if value == "any":
        return True
    if value != "all":
        warn(prefix + SATISFY, f"invalid value {raw!r}: must be \"any\" or \"all\"; using the "
             "default all (as ingress-nginx: every access check must let the request in)")
    return False


class SatisfyAny:
    """A location's ``satisfy any`` (``Access.any``): the ``block-cidrs`` rules and the
    location's own ``denylist``/``allowlist`` rules, apart (``Access.ranges`` holds both, for
    ``satisfy all``)."""

    __slots__ = ("block", "ranges", "_cache")

    def __init__(self, block: SourceRanges | None, ranges: SourceRanges | None) -> None:
        self.block = block
        self.ranges = ranges
        self._cache: dict[str | None, int] = {}

    def verdict(self, client_ip: str | None) -> int:
        """``BLOCK``, ``REFUSE``, ``ALLOW`` or ``DECLINE`` for ``client_ip``, remembered per
        address. A request without an address (a Unix socket peer) is refused by any rule
        (fail closed, as ``Access.status``)."""
        hit = self._cache.get(client_ip)
        if hit is not None:
            return hit
        if _first(self.block, client_ip) == REFUSE:
            hit = BLOCK
        else:
            hit = _first(self.ranges, client_ip)
        cache = self._cache
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[client_ip] = hit
        return hit


def _first(ranges: SourceRanges | None, client_ip: str | None) -> int:
    """ngx_http_access_module's handler: the first rule matching the address decides."""
    if ranges is None or not (ranges.v4 or ranges.v6):
        return DECLINE
    if client_ip is None:
        return REFUSE
    rules, addr = ranges._rules_for(client_ip)
    if addr is None:
        return REFUSE
    for net, mask, deny in rules:
        if addr & mask == net:
            return REFUSE if deny else ALLOW
    return DECLINE


def any_step(access: Access, client_ip: str | None,
             authorization: Callable[[], bytes | None],
             request: Callable[[], tuple[bytes, bytes, float]] | None = None
             ) -> tuple[int, bytes | None, bool]:
    """nginx's access phase under ``satisfy any`` for the source ranges and basic
    authentication of ``access`` (``access.any`` set): ``(status, WWW-Authenticate or None,
    final)``. ``(0, None, True)``: a check let the request in (the auth subrequest is not
    asked; ``(0, value, True)`` when digest authentication did: its Authentication-Info);
    ``(0, None, False)``: none decided; ``(401 or 403, challenge, False)``: every check
    that decided refused (a following auth subrequest may still let it in); ``final`` with a
    status: the answer now (503 for a denied location, 403 for ``block-cidrs``)."""
    sat = access.any
    assert sat is not None
    if access.denied is not None:
        return _DENIED, None, True
    basic = access.basic
    if basic is not None and access.secret_denied():
        # ingress-nginx denies a location whose auth Secret it cannot read: "return 503;"
        # before any access check (an admitted address gets it too).
        return _DENIED, None, True
    verdict = sat.verdict(client_ip)
    if verdict == BLOCK:
        return _FORBIDDEN, None, True
    if verdict == ALLOW:
        return 0, None, True
    code = verdict  # REFUSE (403) or DECLINE (0)
    if basic is None:
        return code, None, False
    verify = getattr(basic, "verify", None)
    if verify is not None:
        # auth-type: digest (its own handler in nginx's access phase, in place of
        # auth_basic): the request's method, target and time (``access_answer``'s
        # ``request``), its challenge per request.
        status, challenge = verify(authorization(), *(
            request() if request is not None else (b"", b"", 0.0)),
            client_ip if request is not None else None)
    else:
        status, _ = basic.check(authorization())
        challenge = basic.challenge if status == _UNAUTHORIZED else None
    if status == 0:
        return 0, challenge, True  # (digest: its Authentication-Info value, else None)
    if status == _UNAUTHORIZED:
        return _UNAUTHORIZED, challenge, False
    return status, None, True


def any_access(access: Access, client_ip: str | None,
               authorization: Callable[[], bytes | None], auth: bool,
               request: Callable[[], tuple[bytes, bytes, float]] | None = None
               ) -> tuple[int, bytes | None, bool]:
    """``any_step`` for a request whose location has an auth subrequest to ask (``auth``):
    ``(status, challenge, ask the auth service)``. Not asking: a status is the answer, 0 lets
    the request in. Asking: a status is what the phase answers unless the auth service lets
    the request in (``combine``)."""
    status, challenge, final = any_step(access, client_ip, authorization, request)
    return status, challenge, auth and not final


def any_job(access: Access, client_ip: str | None,
            authorization: Callable[[], bytes | None]) -> Callable[[], object] | None:
    """The password hashing ``any_step`` would do now, as a function to run off the event
    loop, else None (``access_job`` for a ``satisfy any`` location)."""
    sat = access.any
    basic = access.basic
    if sat is None or basic is None or access.denied is not None \
            or sat.verdict(client_ip) in (BLOCK, ALLOW):
        return None
    return basic.unsettled(authorization())


def combine(prior: tuple[int, bytes | None] | None, v: Verdict) -> Verdict:
    """The auth subrequest's ``Verdict`` ``v`` after the earlier checks refused the request
    (``prior``: their status and basic authentication's challenge): a 2xx or a 500 as the
    service said; a 401 or 403 becomes the phase's remembered code (401 if either answered
    401), with every ``WWW-Authenticate`` added (basic authentication's first)."""
    if prior is None or v.status not in (_UNAUTHORIZED, _FORBIDDEN):
        return v
    status = _UNAUTHORIZED if _UNAUTHORIZED in (prior[0], v.status) else _FORBIDDEN
    challenges = ((prior[1],) if prior[1] is not None else ()) + (
        tuple(v.www_authenticate) if v.status == _UNAUTHORIZED else ())
    return replace(v, status=status, headers=(), www_authenticate=challenges)
