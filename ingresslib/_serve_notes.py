"""What ``serve`` says of a load: every error of a refused one (``_invalid_text``), and what
``check`` warns of a table that builds (shadowed rules, Ingresses left out, ignored annotation
values), logged once per line (``_log_fresh_notes``), at most ``MAX_NOTES_LOGGED`` lines per
table update."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from ._resources import Resources
from ._table import NOT_SERVED, Diagnostic

__all__ = ["MAX_NOTES_LOGGED", "no_endpoint_info"]

_log = logging.getLogger("ingresslib.serve")


def _invalid_text(*errors: BaseException) -> str:
    """What to print or log of a refused load: every error, then, as ``check`` prints them,
    the unknown or duplicate fields the same files hold (``ValidationError.warnings``: a typo is
    often why a field is missing, ``pathtype`` -> ``pathType: Required value``)."""
    lines = [str(e) for e in errors]
    warned = dict.fromkeys(f"warning: {w}" for e in errors
                           for w in getattr(e, "warnings", ()))
    return "\n".join([*lines, *warned])


def _notes_of(router: Any) -> tuple[Any, ...]:
    """The router's table, warnings and backends without endpoint, taken together (with the
    swap lock held) for ``_table_notes``, which may run after the next swap."""
    return (getattr(router, "table", None), getattr(router, "warnings", ()),
            getattr(router, "no_endpoint", ()))


#: ``no_endpoint_info``'s message starts so (``_table_wide`` knows it by that).
_NO_SERVICES = "no Service, EndpointSlice or Endpoints among the manifests"


def no_endpoint_info(res: Resources, no_endpoint: Sequence[Any]) -> Diagnostic | None:
    """The one line said of backends without endpoint when ``res`` holds Ingresses alone (no
    Service, EndpointSlice or v1 Endpoints): a legitimate check of the Ingresses alone, where
    a warning per backend would be noise, and a server that answers 503 to all of them
    (``Router.no_endpoint``; with any of those kinds, each is a warning of its own)."""
    if not no_endpoint or res.services or res.endpoint_slices or res.endpoints:
        return None
    n = len(no_endpoint)
    return Diagnostic(
        "Router", "",
        f"{_NO_SERVICES}: the {n} Service "
        f"backend{'s' if n != 1 else ''} of the Ingresses {'have' if n != 1 else 'has'} no "
        f"endpoint (every request to {'them' if n != 1 else 'it'} answers 503); add the "
        "Services and their EndpointSlices to the files to check them", "info")


def _table_notes(of: tuple[Any, ...], res: Resources,
                 paths: Sequence[str] = ()) -> dict[str, str]:
    """What ``ingresslib check`` prints of a table that builds, ``{line: severity}``: the
    table's diagnostics (shadowed rules, Ingresses the class filter leaves out, canaries
    without a main rule...), the router's warnings (annotation values it ignores:
    ``canary: maybe``) and, for ``paths``, that no Ingress was found. SEMANTICS §2: ignored
    values are reported, "never silently"; ``serve`` logged the router's at debug level only
    and the table's not at all, so a server answering 404 for a filtered-out or shadowed
    Ingress said nothing about why. Worked out in the worker thread that built the table (one
    ``str()`` per note: 12 ms at 8,000 notes), logged on the loop by ``_log_fresh_notes``."""
    table, warnings, *rest = of
    notes: list[Any] = [*getattr(table, "diagnostics", ()), *warnings]
    lines = {str(d): getattr(d, "severity", "warning") for d in notes}
    info = no_endpoint_info(res, rest[0]) if rest else None
    if info is not None:
        lines[str(info)] = "info"
    for line in _regex_host_lines(table):
        lines[line] = "warning"
    if res.ingresses and not getattr(table, "served", True):
        # Every Ingress left out by the class filter (--ingress-class, --controller, or no
        # IngressClass among the files): the server answers 404 to every request, and the
        # INFO lines saying why were all it said. Warnings then, with one line that says so.
        lines = dict(_as_warning(line, sev) if _not_served(line, sev) else (line, sev)
                     for line, sev in lines.items())
        lines[f"{_NONE_SERVED}{len(res.ingresses)} Ingress(es) is served (the class "
              "filter left out every one, see above): every request answers 404"] = "warning"
    # An object of a kind misspelt (``Ingres``) or of an unread apiVersion, which ``check``
    # warns of: its routes do not exist, and a server answering 404 said nothing of why.
    from ._decode import unread_versions

    for note in unread_versions(res.ignored):
        lines[f"warning: {note}"] = "warning"
    if paths and not res.ingresses:
        from ._load import no_ingress_warning

        lines["warning: " + no_ingress_warning(paths)] = "warning"
    return lines


def _regex_host_lines(table: Any) -> list[str]:
    """check's warnings on the Exact and Prefix paths of a host ingress-nginx makes regex
    (proxy/_annotations.py ``regex_host_warnings``; README "Exact and Prefix paths on a host
    where another rule ... has use-regex"), the lines check prints: a table's, not one
    route's (the proxy's per-route warnings, the regex path's among them, are logged by
    ``log_annotation_warnings``)."""
    routes = getattr(table, "routes", None)
    if routes is None:
        return []
    cached = _regex_host_cache.get(table)
    if cached is not None:
        return cached
    try:
        from .proxy._annotations import regex_host_warnings
    except ImportError:  # pragma: no cover - the proxy is optional
        return []
    lines = [f"warning: {w}" for w in regex_host_warnings(routes, lambda _route: "")]
    try:
        _regex_host_cache[table] = lines
    except TypeError:  # pragma: no cover - a custom router's table without weak references
        pass
    return lines


#: table -> ``_regex_host_lines``: a table's routes never change, and ``_table_notes`` runs
#: at every cluster snapshot, endpoint-only ones included, which keep the table (~14 ms at
#: 10,000 rules saved each). Weak: a table replaced is forgotten with it.
_regex_host_cache: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


#: The starts of the lines ``_table_notes`` says of the whole table (not of one object):
#: logged past ``MAX_NOTES_LOGGED``. The line saying that every request answers 404 comes
#: after one note per Ingress left out, so with more Ingresses than the cap it was the one
#: line never logged.
_NONE_SERVED = "warning: none of the "
_NO_INGRESS = "warning: no Ingress in "
_NO_ENDPOINT_INFO = "info: Router: " + _NO_SERVICES


def _table_wide(line: str) -> bool:
    return line.startswith((_NONE_SERVED, _NO_INGRESS, _NO_ENDPOINT_INFO))


def _not_served(line: str, severity: str) -> bool:
    """``line`` is the table's note on an Ingress the class filter leaves out."""
    return severity == "info" and line.endswith(NOT_SERVED)


def _as_warning(line: str, severity: str) -> tuple[str, str]:
    return f"warning: {line.removeprefix('info: ')}", "warning"


#: At most this many table notes are logged per table update, then one line saying how many
#: more: this runs on the event loop, and 8,000 fresh notes (a generated table whose rules all
#: shadow one another) took ~160 ms of it to log.
MAX_NOTES_LOGGED = 100


class _LoggedNotes(set[str]):
    """The notes logged already (``_log_fresh_notes``), and the number of the swap whose table
    they are: the ConfigMap reloader and the cluster watch swap in turn (under one lock) but
    log afterwards, on the loop, each when its own worker thread is done."""

    swap = 0


def _log_fresh_notes(lines: Mapping[str, str], logged: set[str],
                     swap: int | None = None) -> None:
    """Log the ``_table_notes`` not in ``logged``, which becomes ``lines``: each line once, as
    ``fresh_lines`` logs the field warnings, not again at every reload, again if it comes back
    after it was fixed. Past ``MAX_NOTES_LOGGED`` fresh lines, one line counts the rest (they
    count as logged: ``check`` lists them all); the lines said of the whole table
    (``_table_wide``) are logged whatever their number, after the rest.

    ``swap``, the number of the swap that made the table (with a ``_LoggedNotes``): the notes
    of a table older than the ones logged last are not logged at all. With ``--kubernetes
    --config`` a ConfigMap reload whose digest took longer than a later cluster snapshot's
    logged its older table's notes after the newer one's: lines fixed since came back, and
    the next snapshot logged its own again."""
    if swap is not None and isinstance(logged, _LoggedNotes):
        if swap < logged.swap:
            return
        logged.swap = swap
    fresh = 0
    wide: list[tuple[str, str]] = []  # ``_table_wide`` lines: logged last, never capped
    for line, severity in lines.items():
        if line not in logged:
            if _table_wide(line):
                wide.append((line, severity))
                continue
            fresh += 1
            if fresh > MAX_NOTES_LOGGED:
                continue
            _log_note(line, severity)
    if fresh > MAX_NOTES_LOGGED:
        _log.warning("... and %d more notes on this table, not logged (ingresslib check -f ... "
                     "lists them all)", fresh - MAX_NOTES_LOGGED)
    for line, severity in wide:
        _log_note(line, severity)
    logged.clear()
    logged.update(lines)


def _log_note(line: str, severity: str) -> None:
    # The log line has its level: "WARNING ...: Ingress default/web: ...", as check's
    # "warning: Ingress default/web: ..." without the word twice.
    text = line.removeprefix(f"{severity}: ")
    _log.log(logging.INFO if severity == "info" else logging.WARNING, "%s", text)


def _log_route_warnings(server: Any) -> None:
    """Log the new table's annotation warnings now (ignored or denying annotations), as the
    server does at start, not at each route's first request. ``router.update`` keeps the router
    object, so the server's router setter, which does this, is not involved."""
    log = getattr(getattr(server, "proxy", None), "log_annotation_warnings", None)
    if log is not None:
        log()
    passthrough = getattr(server, "passthrough_routes", None)
    if passthrough is not None:
        passthrough.hosts(server.router)  # ssl-passthrough's warnings, once per table
