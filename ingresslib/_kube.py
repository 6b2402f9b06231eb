"""Watch a live cluster with lightkube (the ``ingresslib[k8s]`` extra) and feed a ResourceStore.

Per kind: **list** (no resourceVersion: the latest state), then **watch from the list's
resourceVersion**, asking for bookmarks (``allowWatchBookmarks=true``). A watch the server ends
normally is re-opened from the last resourceVersion seen, without a re-list (one that ended at
once with nothing is backed off, so it cannot spin). Each watch asks the server to end it
after a random 5 to 10 minutes (``timeoutSeconds``, as client-go's reflector). ``410 Gone`` ("the
requested resourceVersion is too old", API concepts, *Efficient detection of changes*), as an
``ERROR`` event or as the status of the watch request, is answered by a fresh list after the
backoff (client-go's reflector backs off before every re-list), which also catches up deletes
missed meanwhile (``ResourceStore.replace_all``); 410 after 410 waits longer. So is a
version the server has not reached (``ResourceVersionTooLarge``: etcd restored from a backup),
which is then re-listed too, as client-go's reflector does. A continue token that expires
between the pages of a list (410) is followed at once by one unpaged list (client-go's pager).
Any other
failure (connection refused or dropped, HTTP error, a line that is not JSON) is logged with its
HTTP status, counted, and followed by a reconnect from the last resourceVersion seen, after an
exponential, capped, jittered backoff, or after the server's ``Retry-After`` when longer (429).
An error body that is not a ``Status`` keeps its HTTP status and ``Retry-After``; an ``ERROR``
event whose reason is ``Expired``/``Gone`` is a 410 whatever its code (client-go's reflector).
401/403 are logged as errors naming what to check, and retried. An event whose object is of
another kind, or is no object, is skipped with a warning (client-go's reflector), and so is
such a list item (the rest of the list is used). Bursts of
events are debounced (100 ms by default) into one ``on_snapshot(Resources)`` call, so an
endpoint storm causes one table swap (ecosystem.md §7).

The basic-auth Secrets (``AUTH_SECRETS``: which are named, which are kept, fetching the ones
named later) are ``_kube_auth``'s bookkeeping; the watcher lists and watches them as any kind,
while some served Ingress names one. The two watches of Secrets (``type: kubernetes.io/tls``,
``type: Opaque``) each own the Secrets of their type in the store (``ResourceStore``'s
``where``): their resource versions are not comparable, so neither replaces, deletes or
clears the errors of the other's. Without the TLS watch (``serve`` without ``--tls-listen``),
``AUTH_TLS_SECRETS`` takes its place for the named ``kubernetes.io/tls`` Secrets alone, one
more watch served by the Opaque one's bookkeeping (``with_auth_secrets``).
``with_default_secret`` adds a third, of serve's ``--default-ssl-certificate`` Secret by name
when it is of another type than ``kubernetes.io/tls`` (``named_secret``), which the Opaque
watch leaves to it (``leaves``).

The ConfigMaps (``CONFIG_MAPS``) are watched likewise only while one is named
(``wants_config_maps``: an Ingress's ``custom-headers``; ``serve`` adds its ``--config``
ConfigMap's ``add-headers`` / ``proxy-set-headers``), every one of the watched namespace(s), as
ingress-nginx's informer reads them; the watch stops and its ConfigMaps are dropped once none is.

Nothing here stops the watcher except cancellation or the ``stop`` event: SEMANTICS §11, "an
invalid update keeps the last good table and reports why". An invalid object is kept out of the
snapshot by the store (its last valid version stays).

lightkube is only used for configuration, authentication and transport; objects are kept as the
raw wire dicts (lightkube decodes into dict subclasses here, never into its typed models), so a
field lightkube's models would reject reaches our validator, which reports it in the API
server's words, instead of breaking the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
import random
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from os import PathLike
from typing import Any, Protocol

# auth_secret_refs is re-exported: serve and programs (docs/cluster.md) import it from here.
from ._kube_auth import AuthSecrets, all_auth_refs, auth_secret_refs
from ._log_once import OncePerKind
from ._resources import Resources
from ._store import EVENT_TYPES, ResourceStore

__all__ = ["ClusterWatcher", "WatchStats", "Backoff", "watch_cluster", "WATCHED_KINDS",
           "AUTH_SECRETS", "CONFIG_MAPS", "names_config_maps", "auth_secret_refs", "load_kube_config", "cluster_client",
           "ExecCredentialError", "named_secret", "with_default_secret", "AUTH_TLS_SECRETS",
           "with_auth_secrets"]

_log = logging.getLogger("ingresslib.kube")

SnapshotCallback = Callable[[Resources], "Awaitable[None] | None"]


class WatchObserver(Protocol):
    """Per-kind watch events for a metrics collector (``_metrics.Metrics`` is one)."""

    def watch_event(self, kind: str, event_type: str) -> None: ...
    def watch_error(self, kind: str) -> None: ...
    def watch_reconnect(self, kind: str) -> None: ...
    def watch_relist(self, kind: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial * factor**(attempt-1)``, capped at ``maximum``, then spread by
    ``±jitter`` (a fraction) so that N replicas restarting together do not reconnect in step.
    The defaults follow client-go's reflector (800 ms initial, 30 s cap, reset after a minute
    of health)."""

    initial: float = 0.8
    maximum: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    #: A watch that stayed up this long counts as healthy: its failure starts the count afresh.
    reset_after: float = 60.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        try:
            # In floating point: an int ``factor`` (``Backoff(factor=2)``, as users write it)
            # made the power an exact integer, its cost growing with the attempt (a kind
            # failing for a year: ~10**6 attempts, 0.13 s of the event loop per attempt at
            # factor 3), before the multiplication raised the OverflowError below anyway.
            base = min(self.maximum,
                       self.initial * float(self.factor) ** max(0, attempt - 1))
        except OverflowError:
            # ``2.0 ** 1024`` does not fit a float: a kind failing for ~8.5 hours (30 s per
            # attempt: a missing RBAC grant, an API group the cluster does not serve) reached
            # it, and the OverflowError, raised while handling the failure, ended the watcher.
            base = self.maximum
        spread = base * self.jitter
        return max(0.0, base + (rng or random).uniform(-spread, spread))


@dataclass(frozen=True, slots=True)
class _Kind:
    """One watched collection: lightkube's resource (for its URL) and our selectors."""

    kind: str
    api_version: str
    module: str
    namespaced: bool
    fields: Mapping[str, str] | None = None
    labels: Mapping[str, Any] | None = None
    #: How logs and ``WatchStats.resource_versions`` name the collection, when the kind alone
    #: does not (two watches of Secrets).
    label: str = ""
    #: The Secrets of ``auth-type: basic``: watched once a served Ingress names one, and only
    #: those named are kept (``_kube_auth.AuthSecrets``).
    auth: bool = False
    #: Watched only while ``ClusterWatcher.wants_config_maps`` says a ConfigMap is named
    #: (``CONFIG_MAPS``); the first table waits for its first list attempt only.
    gated: bool = False
    #: Fields the objects do not have (``fieldSelector`` ``!=``), as ``fields`` those they have.
    fields_not: Mapping[str, str] | None = None
    #: The one namespace watched, whatever the watcher's (``named_secret``'s).
    namespace: str | None = None
    #: ``(namespace, name)`` of objects this watch's selectors match but another watch owns
    #: (``with_default_secret``): left alone by its lists, deletes and errors.
    leaves: frozenset[tuple[str, str]] = frozenset()
    #: The first table waits for its first list, or its refusal (401 / 403), not for a success
    #: after a refusal (``named_secret``: a Role of the watched namespace may not grant the
    #: Secret's, and nothing else may wait on it).
    optional: bool = False

    @property
    def name(self) -> str:
        return self.label or self.kind


#: What ``serve --kubernetes`` watches. Secrets only of ``type: kubernetes.io/tls``, by field
#: selector, so other Secrets are never read (the API server filters them out).
#: EndpointSlices only with the ``kubernetes.io/service-name`` label: the ones that belong to a
#: Service (ecosystem.md §7).
WATCHED_KINDS: tuple[_Kind, ...] = (
    _Kind("Ingress", "networking.k8s.io/v1", "networking_v1", True),
    _Kind("IngressClass", "networking.k8s.io/v1", "networking_v1", False),
    _Kind("Service", "v1", "core_v1", True),
    _Kind("EndpointSlice", "discovery.k8s.io/v1", "discovery_v1", True,
          labels={"kubernetes.io/service-name": "__exists__"}),
    _Kind("Secret", "v1", "core_v1", True, fields={"type": "kubernetes.io/tls"}),
)

#: The Secrets ``auth-type: basic`` reads (``auth-secret``), of ``type: Opaque``: what ``kubectl
#: create secret generic`` makes, ingress-nginx's documented recipe (docs/examples/auth/basic).
#: Not in ``WATCHED_KINDS``: pass ``kinds=WATCHED_KINDS + (AUTH_SECRETS,)``. The watch runs
#: only while some Ingress names an auth Secret, and every other Secret it brings is dropped on
#: receipt, never cached (``_kube_auth``); ``serve --kubernetes`` adds it unless told not to.
AUTH_SECRETS = _Kind("Secret", "v1", "core_v1", True, fields={"type": "Opaque"},
                     label="auth Secret", auth=True)

#: The ConfigMaps ``custom-headers`` (an Ingress annotation) and the controller ConfigMap's
#: ``add-headers`` / ``proxy-set-headers`` name (``Resources.config_maps``, proxy/_header_sets.py).
#: As ingress-nginx's informer (internal/ingress/controller/store/store.go: ``infFactoryConfigmaps``,
#: the watched namespace or all of them), every ConfigMap of the watched namespace(s), but only
#: while one is named (``ClusterWatcher.wants_config_maps``): a cluster whose Ingresses name
#: none is never asked for its ConfigMaps (a Role without them keeps working, and the
#: kube-root-ca.crt of every namespace is not held for nothing). Not in ``WATCHED_KINDS``: pass
#: ``kinds=WATCHED_KINDS + (CONFIG_MAPS,)``; ``serve --kubernetes`` adds it.
CONFIG_MAPS = _Kind("ConfigMap", "v1", "core_v1", True, gated=True)

_TLS_TYPE = "kubernetes.io/tls"

#: The ``kubernetes.io/tls`` Secrets the served Ingresses name (``proxy-ssl-secret``,
#: ``auth-tls-secret``: what cert-manager and ``kubectl create secret tls`` make), for a
#: watcher without ``WATCHED_KINDS``' TLS watch (``serve`` without ``--tls-listen``): a second
#: watch of named Secrets, beside ``AUTH_SECRETS`` and sharing its bookkeeping (which names are
#: wanted; only those are kept). :func:`with_auth_secrets` adds it when no TLS watch runs.
AUTH_TLS_SECRETS = _Kind("Secret", "v1", "core_v1", True, fields={"type": _TLS_TYPE},
                         label="auth TLS Secret", auth=True)


def with_auth_secrets(kinds: tuple[_Kind, ...]) -> tuple[_Kind, ...]:
    """``kinds`` reading the Secrets the served Ingresses name, as ingress-nginx does whatever
    their type (internal/ingress/controller/store/store.go: its Secret informer lists every
    type; ``syncSecret`` and ``GetAuthCertificate`` read the Secret the authtls / proxyssl
    annotation parsers name): ``AUTH_SECRETS`` (Opaque), and ``AUTH_TLS_SECRETS`` when no watch
    of ``kinds`` already brings every ``kubernetes.io/tls`` Secret (two watches never own one
    object). Two types only: field selectors cannot say "Opaque or kubernetes.io/tls", and
    listing every type would read every other Secret (service account tokens, Helm
    releases) only to drop it."""
    tls_watched = any(k.kind == "Secret" and not k.auth
                      and dict(k.fields or {}) == {"type": _TLS_TYPE} for k in kinds)
    return (*kinds, AUTH_SECRETS) if tls_watched else (*kinds, AUTH_SECRETS, AUTH_TLS_SECRETS)


def named_secret(namespace: str, name: str, label: str = "default Secret") -> _Kind:
    """The watch of the one Secret ``namespace/name`` when it is not of ``type:
    kubernetes.io/tls`` (one of that type comes with ``WATCHED_KINDS``' TLS watch):
    ``fieldSelector=metadata.name=NAME,type!=kubernetes.io/tls`` in its own namespace, which
    RBAC ``resourceNames`` can grant alone (the API server takes the name of a list or watch
    from an exact ``metadata.name`` field selector: k8s.io/apiserver requestinfo.go,
    ``RequiresExactMatch("metadata.name")``)."""
    return _Kind("Secret", "v1", "core_v1", True, fields={"metadata.name": name},
                 fields_not={"type": _TLS_TYPE}, namespace=namespace, label=label,
                 optional=True)


def with_default_secret(kinds: tuple[_Kind, ...], namespace: str, name: str
                        ) -> tuple[_Kind, ...]:
    """``kinds`` reading serve's ``--default-ssl-certificate`` Secret whatever its type, as
    ingress-nginx does (internal/ingress/controller/store/store.go: its Secret informer lists
    every type, and ``secrEventHandler`` syncs the Secret whose key is its
    ``defaultSSLCertificate``, which nginx.go ``getDefaultSSLCertificate`` reads): the watch
    of that one Secret (:func:`named_secret`) added, and the other Secret watches that could
    select it (of a type other than ``kubernetes.io/tls``: ``AUTH_SECRETS``) leaving it to
    that watch, so that two watches never own one object (the auth watch's list, its deletes
    of a Secret no longer named, would drop it)."""
    ref = (namespace, name)
    others = tuple(
        replace(k, leaves=k.leaves | {ref})
        if k.kind == "Secret" and (k.fields or {}).get("type") != _TLS_TYPE else k
        for k in kinds)
    return (*others, named_secret(namespace, name))


_CUSTOM_HEADERS = "nginx.ingress.kubernetes.io/custom-headers"
_AUTH_PROXY_SET_HEADERS = "nginx.ingress.kubernetes.io/auth-proxy-set-headers"


def names_config_maps(res: Resources | Iterable[Any]) -> bool:
    """Whether an Ingress of ``res`` (a ``Resources``, or Ingresses: the served ones) names a
    ConfigMap (a ``custom-headers`` or an ``auth-proxy-set-headers`` annotation):
    ``ClusterWatcher``'s default ``wants_config_maps``."""
    ingresses = res.ingresses if isinstance(res, Resources) else res
    return any(_CUSTOM_HEADERS in ing.metadata.annotations
               or _AUTH_PROXY_SET_HEADERS in ing.metadata.annotations for ing in ingresses)


def _model_test(spec: _Kind) -> Callable[[Any], bool] | None:
    """The kind's field selector as a test on a stored object (a decoded model, or the wire
    dict of an invalid one): which objects of the kind are this watch's, so that its lists,
    deletes and errors leave the other watch's alone (``ResourceStore.apply``'s ``where``)."""
    if not (spec.fields or spec.fields_not or spec.leaves):
        return None

    def test(obj: Any) -> bool:
        return _fields_match(spec, obj)

    return test


def _any_test(specs: tuple[_Kind, ...]) -> Callable[[Any], bool] | None:
    """Which stored objects are one of ``specs``' watches' (:func:`_model_test` of each);
    None: every object of the kind."""
    tests = [_model_test(spec) for spec in specs]
    if any(test is None for test in tests):
        return None
    return lambda obj: any(test(obj) for test in tests if test is not None)


def _field(obj: Any, path: str) -> Any:
    """The value of a field selector's ``path`` (``type``, ``metadata.name``) in a wire dict
    or a decoded model; None when missing."""
    for part in path.split("."):
        obj = obj.get(part) if isinstance(obj, Mapping) else getattr(obj, part, None)
    return obj


def _fields_match(spec: _Kind, obj: Any) -> bool:
    """Whether ``obj`` (a wire dict or a decoded model) is of ``spec``'s field selection, and
    not an object it leaves to another watch (``leaves``)."""
    if any(_field(obj, k) != v for k, v in (spec.fields or {}).items()):
        return False
    if any(_field(obj, k) == v for k, v in (spec.fields_not or {}).items()):
        return False
    if spec.leaves:
        ns = _field(obj, "metadata.namespace")
        return ((ns if isinstance(ns, str) and ns else "default"),
                _field(obj, "metadata.name")) not in spec.leaves
    return True


@dataclass(slots=True)
class WatchStats:
    """Counters a metrics collector can read (all monotonic except the timestamps and ``synced``).
    """

    #: ADDED/MODIFIED/DELETED events applied.
    events: int = 0
    bookmarks: int = 0
    #: Full lists (the first one per kind included).
    lists: int = 0
    #: Re-lists caused by an unusable resourceVersion: ``410 Gone`` (an expired continue token
    #: included: its unpaged list), or one the server has not reached (``ResourceVersionTooLarge``).
    relists: int = 0
    #: Watch or list attempts that failed (HTTP errors, refused or dropped connections).
    stream_errors: int = 0
    #: Lines that were not a watch event (not JSON, wrong shape) and events that could not be keyed.
    garbage: int = 0
    #: Objects that failed validation (the store keeps their last valid version).
    invalid_objects: int = 0
    #: Reconnects after an error (each preceded by a backoff sleep).
    reconnects: int = 0
    #: Reconnects of watches that were silent for ``idle_timeout`` (no backoff, not an error).
    idle_reconnects: int = 0
    #: ``on_snapshot`` calls, and those that raised.
    snapshots: int = 0
    callback_errors: int = 0
    #: ``time.time()`` of the last delivered snapshot and of the last error, or 0.
    last_snapshot_time: float = 0.0
    last_error_time: float = 0.0
    last_error: str = ""
    #: Per kind, the resourceVersion the next watch starts from ("" before the first list).
    resource_versions: dict[str, str] = field(default_factory=dict)


def _without_lightkube(e: ImportError) -> ImportError:
    # lightkube is an optional extra: say how to get it, where a bare "No module named
    # 'lightkube'" would leave a library user guessing. Not "pip install 'ingresslib[k8s]'":
    # ingresslib is not on PyPI (that would fail, or install someone else's package). The
    # bounds are pyproject.toml's k8s extra (tests/test_user_s19m.py checks they agree).
    return ImportError("watching a cluster needs lightkube (the k8s extra): pip install "
                       "'lightkube>=1.0.1,<1.1', or pip install '.[k8s]' from an ingresslib "
                       f"checkout ({e})")


def load_kube_config(kubeconfig: str | PathLike[str] | None = None, *,
                     context: str | None = None) -> Any:
    """A lightkube ``SingleConfig``: from ``kubeconfig`` when given (one file), else in-cluster
    (the pod's service account) when run in a pod, else ``$KUBECONFIG`` (one file or several,
    merged as kubectl merges them) or ``~/.kube/config``. Every file is read as kubectl reads
    it (``_kubeconfig.py``): relative paths from the file's own folder. ``context`` is a
    context of the merged files, whichever of them names it; one naming a cluster or user no
    file defines is a ``ConfigError`` saying so."""
    try:
        from lightkube import KubeConfig
    except ImportError as e:
        raise _without_lightkube(e) from e

    from ._kubeconfig import load_file, select_context

    if kubeconfig is not None:
        conf = load_file(KubeConfig, kubeconfig)
    else:
        conf = _from_env(KubeConfig)
    return select_context(conf, context)


def _from_env(kube_config: Any) -> Any:
    """lightkube's ``KubeConfig.from_env`` (in-cluster, else ``$KUBECONFIG``, else
    ``~/.kube/config``), with ``KUBECONFIG`` read as kubectl reads it: empty, as unset
    (client-go's loader.go ``NewDefaultClientConfigLoadingRules``: "envVarFiles :=
    os.Getenv(RecommendedConfigPathEnvVar); if len(envVarFiles) != 0 { ... } else { chain =
    append(chain, RecommendedHomeFile) }"; lightkube opened the file "", "Configuration file
    not found", no name to go on), and a list of files (``a:b``) merged, where lightkube
    looked for one file named ``a:b``."""
    from lightkube.config.kubeconfig import DEFAULT_KUBECONFIG
    from lightkube.core.exceptions import ConfigError

    from ._kubeconfig import kubeconfig_paths, load_file, load_merged

    # A service account token but no ``KUBERNETES_SERVICE_HOST``/``_PORT``, or an empty one (a
    # token mounted into a container run outside Kubernetes): not in a pod, as client-go's
    # ``rest.InClusterConfig`` decides ("if len(host) == 0 || len(port) == 0 { return nil,
    # ErrNotInCluster }"), so the kubeconfig is used. lightkube reads the token first, then
    # raised the bare KeyError of a missing variable out of serve, or made the server
    # ``https://:443`` of an empty one.
    if all(os.environ.get(v) != "" for v in ("KUBERNETES_SERVICE_HOST",
                                             "KUBERNETES_SERVICE_PORT")):
        try:
            return kube_config.from_service_account()
        except (ConfigError, KeyError):
            pass
    value = os.environ.get("KUBECONFIG", "")
    if not value:
        return load_file(kube_config, DEFAULT_KUBECONFIG)
    paths = kubeconfig_paths(value)
    if len(paths) == 1:
        # One file, read as one of a list is; only its "not found" names it alone.
        return load_file(kube_config, paths[0])
    return load_merged(kube_config, paths)


_EXEC_V1 = "client.authentication.k8s.io/v1"
_EXEC_V1BETA1 = "client.authentication.k8s.io/v1beta1"
#: The clock an exec credential's ``status.expirationTimestamp`` is compared with (wall time,
#: as the timestamp is): a module attribute, so that tests set it.
_exec_now: Callable[[], float] = time.time


#: The client's timeouts: 10 s to connect, write and get a pooled connection (lightkube's
#: default for everything), and 65 s between two reads of an answer. lightkube's 10 s read
#: limit failed a list whose first byte took longer (an unpaged list of a large cluster: the
#: API server reads it all from etcd before answering), retried for ever with the same result.
#: client-go sets none (``rest.Config.Timeout`` 0); the API server ends a request itself after
#: its ``--request-timeout`` (60 s by default) with a ``504`` that says so, which a limit a
#: little longer lets through. Watches have no read limit (lightkube's ``_watch_timeout``; a
#: silent watch is ``idle_timeout``'s).
_READ_TIMEOUT = 65.0


def cluster_client(config: Any) -> Any:
    """A lightkube ``AsyncClient`` for ``config`` (a ``SingleConfig`` or ``KubeConfig``), as
    ``ClusterWatcher`` and ``serve --kubernetes`` make theirs: its exec credential plugin run
    as ``_fit_exec`` runs it, and the read timeout of ``_READ_TIMEOUT`` (``_fit_timeout``)."""
    from lightkube import AsyncClient, KubeConfig
    from lightkube.core.exceptions import ConfigError

    from ._kubeconfig import unusable

    # Refused here, before any request: a file the kubeconfig names that cannot be read was
    # "[Errno 2] No such file or directory" (no file named) or, a token file, a failure of
    # every request retried for ever.
    problem = unusable(config.get() if isinstance(config, KubeConfig) else config)
    if problem is not None:
        raise ConfigError(problem)
    client = AsyncClient(config=config)
    _fit_timeout(client)
    _fit_exec(client)
    return client


def _http_of(client: Any) -> Any:
    """The httpx client inside a lightkube ``AsyncClient`` (None when it is not built as
    lightkube 1.0 builds it)."""
    return getattr(getattr(client, "_client", None), "_client", None)


def _fit_timeout(client: Any) -> None:
    """The read timeout of ``_READ_TIMEOUT`` on a lightkube ``AsyncClient``; the others stay
    lightkube's 10 s."""
    try:
        http = _http_of(client)
        timeout = http.timeout
        http.timeout = type(timeout)(connect=timeout.connect, read=_READ_TIMEOUT,
                                     write=timeout.write, pool=timeout.pool)
    except Exception:  # noqa: BLE001 - another lightkube release: its own timeout stays
        return


def _fit_exec(client: Any) -> None:
    """A lightkube ``AsyncClient``'s exec credential plugin, if it has one: run as
    ``v1beta1`` when it is of ``client.authentication.k8s.io/v1``, and its answer read by
    ``_exec_token`` (in words when it holds no token). Done on any client the watcher is
    given too: neither can work otherwise.

    lightkube runs only v1alpha1 and v1beta1 plugins: with v1 (GA since Kubernetes 1.22, what
    recent ``aws eks update-kubeconfig``, gke-gcloud-auth-plugin and kubelogin setups write),
    every request raised "auth exec api version ... not implemented", retried for ever, and the
    first table never came. Only ``status.token`` of the plugin's answer is read, the same
    field in v1 as in v1beta1 (client-go's ``ExecCredentialStatus``), and the plugin gets no
    ``KUBERNETES_EXEC_INFO`` in either version, so it runs as kubectl runs it. The
    configuration ``load_kube_config`` returns is left as lightkube reads it.

    The token is kept until a 401, or until the answer's ``status.expirationTimestamp`` (EKS
    tokens live 15 minutes): a request made at or after it runs the plugin again before it
    is sent, as client-go does (``plugin/pkg/client/auth/exec/exec.go``: ``getCreds`` re-runs
    the plugin when ``credsExpired``, ``a.now().After(a.exp)``). lightkube read no expiry:
    every request past it was sent once with the dead token, answered 401, and only then
    sent again."""
    try:
        import msgspec
        from lightkube.config import client_adapter

        http = _http_of(client)
        auth = http.auth
        base = client_adapter.ExecAuth
        if type(auth) is not base:
            return
        exec_ = auth._exec
        if getattr(exec_, "apiVersion", None) == _EXEC_V1:
            exec_ = msgspec.structs.replace(exec_, apiVersion=_EXEC_V1BETA1)
    except Exception:  # noqa: BLE001 - another lightkube release: its own reading stays
        return

    class _ExecAuth(base):  # type: ignore[misc, valid-type]
        async def async_auth_flow(self, request: Any) -> Any:
            # lightkube's flow (the token kept until a 401), reading the answer with words.
            # An expired token is not sent (``_fit_exec``): the plugin runs first.
            me: Any = self
            expiry = getattr(me, "_expiry", None)
            if me._last_bearer and (expiry is None or _exec_now() < expiry):
                request.headers["Authorization"] = me._last_bearer
                response = yield request
                if response.status_code != 401:
                    return
            command, env = me._prepare()
            output = await client_adapter.async_check_output(command, env=env)
            token = _exec_token(command[0], output)
            me._expiry = _exec_expiry(output)
            request.headers["Authorization"] = me._last_bearer = f"Bearer {token}"
            yield request

    http.auth = _ExecAuth(exec_)


def _exec_expiry(output: bytes) -> float | None:
    """``status.expirationTimestamp`` of an exec credential plugin's answer (RFC 3339, as
    ``metav1.Time``) as a POSIX time, or None when it has none (the token then lives until a
    401, as in client-go) or one that does not parse (likewise: the token is not refused for
    it)."""
    import datetime
    import json

    try:
        status = json.loads(output).get("status")
        stamp = status.get("expirationTimestamp")
        if not isinstance(stamp, str):
            return None
        when = datetime.datetime.fromisoformat(stamp)
    except (ValueError, AttributeError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


class ExecCredentialError(Exception):
    """An exec credential plugin's answer that gives no bearer token."""


def _exec_token(command: str, output: bytes) -> str:
    """The bearer token of an exec credential plugin's answer (``ExecCredential``), or
    ``ExecCredentialError`` saying what the answer held instead. lightkube read
    ``["status"]["token"]`` and raised a bare ``KeyError: 'token'`` for a plugin answering with
    a client certificate (``status.clientCertificateData``/``clientKeyData``, client-go's
    other form), ``KeyError: 'status'`` or a JSONDecodeError for other answers: the log said
    only that, on every retry."""
    import json

    try:
        answer = json.loads(output)
    except ValueError:
        raise ExecCredentialError(
            f"the exec credential plugin {command} did not answer with JSON (an "
            f"ExecCredential): {output[:200]!r}") from None
    status = answer.get("status") if isinstance(answer, dict) else None
    if not isinstance(status, dict):
        raise ExecCredentialError(f"the exec credential plugin {command} answered an "
                                  "ExecCredential without a status")
    token = status.get("token")
    if isinstance(token, str) and token:
        return token
    if status.get("clientCertificateData") or status.get("clientKeyData"):
        raise ExecCredentialError(
            f"the exec credential plugin {command} answered with a client certificate "
            "(status.clientCertificateData), which ingresslib cannot use: only a plugin that "
            "answers with a token (status.token) is supported")
    raise ExecCredentialError(f"the exec credential plugin {command} answered no token "
                              "(status.token)")


class _RawMeta:
    __slots__ = ("resourceVersion",)

    def __init__(self, meta: Any) -> None:
        rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
        self.resourceVersion = rv if isinstance(rv, str) else None


class _RawObject(dict[str, Any]):
    """What lightkube decodes watch and list items into: the wire dict itself. lightkube reads
    ``.metadata.resourceVersion`` to resume its own reconnects.

    A list item or event object that is no JSON object (a number, a string, null, an array)
    becomes a ``_Malformed`` instead of raising: lightkube builds every item of a list page
    with this class, so one bad item raised out of the whole list, which failed on every
    retry (the same items come back) and held the kind, and the first table, back for good.
    It is skipped with a warning, as a list item of another kind is."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and not isinstance(args[0], Mapping):
            return _Malformed(f"the object is {_json_type(args[0])}, not an object")
        return super().__new__(cls, *args, **kwargs)

    @property
    def metadata(self) -> _RawMeta:
        return _RawMeta(self.get("metadata"))

    @classmethod
    def from_dict(cls, d: Any, lazy: bool = True) -> Any:
        # How lightkube releases before 1.0 build objects from decoded JSON.
        return cls(d)


def _raw_resource(spec: _Kind) -> Any:
    # One class per collection for the life of the process: lightkube caches a decoder model
    # per resource class it lists (``decoders._list_models``, never emptied), so a class made
    # afresh for each list was kept for good, one more each time the auth Secret watch started
    # again (the last basic-auth Ingress gone, another one named).
    key = (spec.module, spec.kind, spec.namespaced)
    res = _RAW_RESOURCES.get(key)
    if res is None:
        import importlib

        from lightkube.core import resource as lk_res

        typed = getattr(importlib.import_module(f"lightkube.resources.{spec.module}"), spec.kind)
        base = lk_res.NamespacedResourceG if spec.namespaced else lk_res.GlobalResource
        res = type(f"Raw{spec.kind}", (_RawObject, base), {"_api_info": typed._api_info})
        _RAW_RESOURCES[key] = res
    return res


#: ``_raw_resource``'s classes, by (lightkube module, kind, namespaced).
_RAW_RESOURCES: dict[tuple[str, str, bool], Any] = {}


def _rbac_resource(spec: _Kind) -> tuple[str, str]:
    """``(plural, API group)`` as RBAC rules name the kind: ``("ingresses",
    "networking.k8s.io")``, ``("services", "")``."""
    info = _raw_resource(spec)._api_info
    return info.plural, info.resource.group


def _rbac_fix(plural: str, group: str, namespace: str | None, name: str | None = None,
              identity: str | None = None) -> str:
    """The rule to add for a refused ``plural``, as a Role or ClusterRole writes it (the verbs of
    examples/deploy/rbac.yaml), and which of the two may hold it: a ClusterRole for
    cluster-wide reads and cluster-scoped kinds (``namespace`` None; a Role cannot grant
    ingressclasses), a Role in the one namespace watched otherwise. ``name``: the one object a
    watch by name reads (``named_secret``), which ``resourceNames`` grants alone. ``identity``:
    who the binding is for (``_config_identity``; None: not known, said in general terms)."""
    holder = (f"a Role in namespace {namespace} (or a ClusterRole)" if namespace else
              "a ClusterRole (with a ClusterRoleBinding)")
    names = f', resourceNames: ["{name}"]' if name else ""
    return (f'add the rule {{apiGroups: ["{group}"], resources: ["{plural}"]{names}, verbs: '
            f'["get", "list", "watch"]}} to {holder} bound to '
            f'{identity or "the ServiceAccount or user ingresslib runs as"}')


def _config_identity(config: Any) -> str | None:
    """Who a lightkube ``SingleConfig`` asks the API server as, in the words a 403's advice
    binds a Role to: the ServiceAccount of the token it sends (``_sent_token``; in a pod, or a
    kubeconfig holding a ServiceAccount token) as a RoleBinding's subject writes it, else its
    kubeconfig user (whose name is the file's, not the API server's: the user or group it
    authenticates as is what RBAC binds), else None. Nothing of the token itself is said."""
    account = _service_account_of(_sent_token(getattr(config, "user", None)))
    if account is not None:
        namespace, name = account
        return f"{{kind: ServiceAccount, name: {name}, namespace: {namespace}}}"
    user_name = getattr(getattr(config, "context", None), "user", None)
    if getattr(config, "fname", None) is None or not isinstance(user_name, str) or not user_name:
        # (lightkube's in-pod configuration names its user "default": no file's name.)
        return None
    from ._kubeconfig import _q

    return f"the user or group kubeconfig user {_q(user_name)} authenticates as"


#: The most of a ``tokenFile`` read to name its ServiceAccount: such a token is about 1 KiB, and
#: a file past this (a mistyped ``/dev/zero``) is none, not to be read whole for a message.
_TOKEN_FILE_LIMIT = 64 * 1024


def _sent_token(user: Any) -> str | None:
    """The bearer token lightkube sends as ``user``: its ``tokenFile``'s when it names one
    (lightkube client_adapter.py ``user_auth`` takes ``token_file`` before ``token`` and reads
    the file at each request, stripped: a pod's configuration has both, a kubeconfig may), else
    its ``token``. None when that file cannot be read or is longer than any such token: the
    ``token`` beside it is never sent, so it names nobody."""
    path = getattr(user, "token_file", None)
    if path is None:
        token = getattr(user, "token", None)
        return token if isinstance(token, str) else None
    try:
        with open(path, "rb") as f:
            data = f.read(_TOKEN_FILE_LIMIT + 1)
    except (OSError, TypeError, ValueError):
        return None
    return None if len(data) > _TOKEN_FILE_LIMIT else data.decode("utf-8", "replace").strip()


def _service_account_of(token: Any) -> tuple[str, str] | None:
    """``(namespace, name)`` of a ServiceAccount token (a JWT whose ``sub`` claim is
    ``system:serviceaccount:NS:NAME``, as k8s.io/apiserver
    pkg/authentication/serviceaccount/util.go ``MakeUsername`` writes it), read without
    checking the signature: it only names the account in a message. None for any other
    token."""
    import base64
    import json
    import re

    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    try:
        payload = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        # UTF-8 only (RFC 7519 section 7.2): json.loads of bytes would guess UTF-16 or -32 too.
        claims = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        # (binascii.Error, json's and UnicodeDecodeError are ValueErrors; a payload nested
        # past the interpreter's limit is json's RecursionError: no crash for a message.)
        return None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    found = re.fullmatch(r"system:serviceaccount:([a-z0-9.-]+):([a-z0-9.-]+)",
                         sub if isinstance(sub, str) else "")
    return (found[1], found[2]) if found else None


def _selectors(spec: _Kind) -> dict[str, Any]:
    from lightkube import operators

    out: dict[str, Any] = {}
    if spec.fields or spec.fields_not:
        unlike = {k: operators.not_equal(v) for k, v in (spec.fields_not or {}).items()}
        out["fields"] = {**(spec.fields or {}), **unlike}
    if spec.labels:
        out["labels"] = {k: operators.exists() if v == "__exists__" else v
                         for k, v in spec.labels.items()}
    return out


def _selected(spec: _Kind, obj: Any) -> bool:
    """Whether ``obj`` matches the kind's selectors, checked again on our side: a server or
    proxy that ignores ``fieldSelector``/``labelSelector`` must not bring other Secrets (an
    Opaque one holds passwords) into the process, nor EndpointSlices that belong to no
    Service."""
    if not isinstance(obj, Mapping):
        return True  # not ours to judge: the store reports it
    if not _fields_match(spec, obj):
        return False
    if spec.labels:
        meta = obj.get("metadata")
        labels = meta.get("labels") if isinstance(meta, Mapping) else None
        labels = labels if isinstance(labels, Mapping) else {}
        for key, want in spec.labels.items():
            if key not in labels or (want != "__exists__" and labels[key] != want):
                return False
    return True


async def _watch_once(client: Any, res: Any, rv: str, ns: dict[str, str],
                      sel: dict[str, Any], timeout_seconds: int | None = None) -> Any:
    """One watch request, from ``rv``, yielding ``(type, object)`` until the server ends it.

    Not ``AsyncClient.watch``, for two reasons. It cannot ask for bookmarks (API concepts,
    *Watch bookmarks*; the API reference: "allowWatchBookmarks requests watch events with type
    "BOOKMARK""): without the parameter the server sends none, and a quiet kind's resourceVersion
    ages until its watch resumes into ``410 Gone`` and a full re-list. And it re-opens a watch that
    ended normally by itself, at once and forever, out of our sight: a server that closes every
    watch straight away becomes a busy loop. Here a normal end returns to the caller, which
    re-watches from the last resourceVersion (no re-list) and backs off when watches are very
    short. lightkube still builds the URL, authenticates, sends, and decodes the lines (an
    ``ERROR`` event raises its ``ApiError``, e.g. 410).

    ``timeout_seconds`` asks the server to end the watch after that long (client-go's reflector
    asks for a random 5 to 10 minutes), so that a watch stuck on a connection that died
    silently ends on the server's side too, and replicas do not reconnect in step.
    """
    from lightkube.core.generic_client import WatchDriver
    from lightkube.core.selector import build_selector

    gc = client._client
    labels, fields = sel.get("labels"), sel.get("fields")
    br = gc.prepare_request(
        "list", res=res, namespace=ns.get("namespace"), watch=True,
        params={"resourceVersion": rv, "allowWatchBookmarks": "true",
                "timeoutSeconds": str(timeout_seconds) if timeout_seconds else None,
                "labelSelector": build_selector(labels) if labels else None,
                "fieldSelector": build_selector(fields, for_fields=True) if fields else None})
    wd: Any = WatchDriver(br, gc._client.build_request)
    resp = await gc.send(wd.get_request(timeout=gc._watch_timeout), stream=True)
    try:
        if resp.is_error:
            await resp.aread()  # the Status body, so the error says what the server said
            gc.raise_for_status(resp)
        # Lines split here rather than with ``aiter_lines``, which buffers until a newline
        # comes: a server that never sends one must not make us buffer without end.
        limit = _MAX_EVENT_BYTES
        buf = bytearray()
        scanned = 0
        async for chunk in resp.aiter_bytes():
            buf += chunk
            while (i := buf.find(b"\n", scanned)) >= 0:
                line = bytes(buf[:i])
                del buf[:i + 1]
                scanned = 0
                if line.strip():
                    yield _event_of(wd, line)
            scanned = len(buf)
            if scanned > limit:
                raise _EventTooLarge(f"watch event longer than {limit} bytes without a newline")
        if buf.strip():
            yield _event_of(wd, bytes(buf))
    finally:
        await resp.aclose()


async def _received(listing: Any) -> list[Any]:
    """The items of a list, as plain dicts; a ``_Malformed`` item (no JSON object) goes on
    as is, to be skipped by the caller."""
    return [o if isinstance(o, _Malformed) else dict(o) async for o in listing]


class _Malformed:
    """A watch event whose object is not an object (a list, a string, null): skipped with a
    warning, as client-go's reflector skips an event it cannot understand ("unable to
    understand watch event"), where failing the stream would replay the event on every
    reconnect (the watch resumes from before it) and stop the kind for good."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why

    @property
    def metadata(self) -> _RawMeta:
        # lightkube reads the version of every event's object: none here.
        return _RawMeta(None)


def _json_type(value: Any) -> str:
    """How JSON names the type of a decoded value (what a list item or event object was)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _event_of(wd: Any, line: bytes) -> tuple[str, Any]:
    try:
        return wd.process_one_line(line)  # type: ignore[no-any-return]
    except (TypeError, ValueError) as exc:
        # lightkube builds the object with ``dict(value)``: a value that is not an object fails
        # there. A line that is not a JSON event at all is the caller's error, as before.
        import json

        try:
            event = json.loads(line)
        except ValueError:
            raise exc from None
        if (not isinstance(event, dict) or not isinstance(event.get("type"), str)
                or event["type"] == "ERROR" or "object" not in event
                or isinstance(event["object"], dict)):
            raise
        return event["type"], _Malformed(
            f"{event['type']} event whose object is {type(event['object']).__name__}, "
            "not an object")


class _EventTooLarge(ValueError):
    pass


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or while handling. An error response whose
    body is not a ``Status`` (an HTML page from a proxy, a cut body, labelled JSON) makes
    lightkube's ``ApiError`` fail to decode it: what reaches us is then a ``JSONDecodeError``
    raised while handling the ``HTTPStatusError`` that still holds the response."""
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _status_of(exc: BaseException) -> Any:
    for e in _chain(exc):
        status = getattr(e, "status", None)
        if status is not None and not isinstance(status, (int, str)):
            return status
    return None


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of an error: the ``Status`` of an ``ERROR`` event or of an ``ApiError``,
    else the response's own status (a watch request may itself be answered ``410 Gone``, and
    its body may be no ``Status`` at all)."""
    code = getattr(_status_of(exc), "code", None)
    if isinstance(code, int) and code:
        return code
    for e in _chain(exc):
        code = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(code, int):
            return code
    return None


def _is_expired(exc: BaseException) -> bool:
    """``410 Gone``: the resourceVersion (or a list's continue token) was compacted away.

    As client-go's reflector decides it (``tools/cache/reflector.go``, ``isExpiredError``: "In
    Kubernetes 1.17 and earlier, the api server returns both apierrors.StatusReasonExpired and
    apierrors.StatusReasonGone for HTTP 410 (Gone) status code responses. In 1.18 the kube
    server is more consistent and always returns apierrors.StatusReasonExpired" ... ``return
    apierrors.IsResourceExpired(err) || apierrors.IsGone(err)``): by the ``Status`` reason,
    ``Expired`` or ``Gone``, or by the code 410."""
    reason = getattr(_status_of(exc), "reason", None)
    return reason in ("Expired", "Gone") or _status_code(exc) == 410


def _is_too_large(exc: BaseException) -> bool:
    """The watch asked for a resourceVersion the API server has not reached: etcd was restored
    from a backup (versions went back in time), or this API server's cache lags behind the one
    that served the list. kube-apiserver answers after waiting 3 s: ``504``, reason ``Timeout``,
    cause ``ResourceVersionTooLarge``. Retrying the same version can wait forever (a restore
    never catches up, and serves stale objects if it does); client-go's reflector re-lists with
    ``resourceVersion=""`` instead. Recognised as it does (``isTooLargeResourceVersionError``:
    the cause, or a ``Timeout`` whose cause message or message says "Too large resource
    version", from 1.17.0-1.18.5 servers)."""
    status = _status_of(exc)
    if status is None:
        return False
    causes = getattr(getattr(status, "details", None), "causes", None) or []
    if any(getattr(c, "reason", None) == "ResourceVersionTooLarge" for c in causes):
        return True
    if getattr(status, "reason", None) != "Timeout":
        return False
    return (any(getattr(c, "message", None) == "Too large resource version" for c in causes)
            or "Too large resource version" in (getattr(status, "message", None) or ""))


def _retry_after(exc: BaseException) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (429 Too Many Requests, some 503s)."""
    value = None
    for e in _chain(exc):
        headers = getattr(getattr(e, "response", None), "headers", None)
        if headers is not None:
            value = headers.get("Retry-After")
            break
    try:
        return min(_RETRY_AFTER_CAP, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from the API server; the backoff applies


#: How the watcher waits between attempts (a module attribute so tests can record the delays).
_backoff_sleep = asyncio.sleep
#: The longest watch event line accepted. An object is at most about 1.5 MiB (etcd's default
#: request limit, ``--max-request-bytes``); 16 MiB leaves room for any real event.
_MAX_EVENT_BYTES = 16 * 1024 * 1024
#: Never wait longer than this for a ``Retry-After``, whatever the server says.
_RETRY_AFTER_CAP = 300.0
#: A watch that ends normally sooner than this with no event is a "very short watch" (client-go's
#: reflector): re-watching at once would spin, so it is backed off like an error.
_SHORT_WATCH = 1.0


class ClusterWatcher:
    """List-then-watch the kinds ingresslib needs and call ``on_snapshot(Resources)`` after each
    debounced burst of changes (``Router.update`` fits; a coroutine function is awaited).

    ``namespace=None`` watches every namespace (so does ``""``, the API's and client-go's
    ``NamespaceAll``). ``config`` is a lightkube ``SingleConfig`` or
    ``KubeConfig`` (default: :func:`load_kube_config` of ``kubeconfig``); ``client`` an existing
    lightkube ``AsyncClient``. ``backoff`` and ``debounce`` are injectable for tests.

    The first snapshot is delivered once every kind has been listed, so a table is never built
    from Ingresses without their Services. ``synced`` is set then; ``stats`` holds the counters.

    With :data:`AUTH_SECRETS` among ``kinds``, the Secrets of ``auth-type: basic`` are read too,
    and only those: ``auth_refs(resources)`` names them (default: :func:`auth_secret_refs` of
    every Ingress; ``serve`` passes the served ones). That watch starts once a Secret is named
    (no Ingress with basic auth: no Opaque Secret is ever read) and stops once none is (a
    later one starts it again, with a fresh list); a Secret no Ingress names is dropped on
    receipt, one that stops being named is dropped from the store, and one newly named is
    fetched by name (``get``). The first snapshot waits for that watch's first list
    attempt only: a failing one (RBAC) leaves the routes answering 503, as a missing Secret.
    :data:`AUTH_TLS_SECRETS` beside it (:func:`with_auth_secrets`) does the same for the named
    ``kubernetes.io/tls`` Secrets, with the same bookkeeping (one ``get`` whatever the type).

    With :data:`CONFIG_MAPS` among ``kinds``, the ConfigMaps of the watched namespace(s) are
    listed and watched while ``wants_config_maps(resources)`` is true (default:
    :func:`names_config_maps`, an Ingress with ``custom-headers``; ``serve`` adds its
    ``--config`` ConfigMap's ``add-headers`` / ``proxy-set-headers``), and dropped when it turns
    false; the first snapshot waits for their first list attempt only.

    Watches ask the server to end them after a random ``min_watch_timeout`` to twice that
    (client-go's reflector: 5 to 10 minutes).
    """

    def __init__(
        self,
        on_snapshot: SnapshotCallback,
        *,
        namespace: str | None = None,
        kubeconfig: str | PathLike[str] | None = None,
        config: Any = None,
        client: Any = None,
        store: ResourceStore | None = None,
        debounce: float = 0.1,
        backoff: Backoff = Backoff(),
        kinds: tuple[_Kind, ...] = WATCHED_KINDS,
        seed: int | None = None,
        idle_timeout: float | None = 300.0,
        list_chunk_size: int | None = 500,
        metrics: WatchObserver | None = None,
        auth_refs: Callable[[Resources], AbstractSet[tuple[str, str]]] | None = None,
        min_watch_timeout: float | None = 300.0,
        wants_config_maps: Callable[[Resources], bool] | None = None,
    ) -> None:
        self.on_snapshot = on_snapshot
        #: Told about each event, error, reconnect and re-list per kind (``_metrics.Metrics``
        #: implements this), on top of the aggregate ``stats``.
        self.metrics = metrics
        #: None for every namespace (``""`` too: client-go's ``metav1.NamespaceAll``).
        self.namespace = namespace or None
        self.store = store if store is not None else ResourceStore()
        self.debounce = debounce
        self.backoff = backoff
        self.kinds = kinds
        #: Reconnect a watch that delivered nothing (not even a bookmark) for this long.
        self.idle_timeout = idle_timeout
        #: Page size of lists (client-go pages by 500), so huge clusters list in pieces.
        self.list_chunk_size = list_chunk_size
        self.stats = WatchStats()
        self.synced = asyncio.Event()
        self._kubeconfig = kubeconfig
        self._config = config
        self._client = client
        self._rng = random.Random(seed)
        self._dirty = asyncio.Event()
        self._listed: set[str] = set()
        self._delivered_generation = -1
        #: ``on_snapshot``'s traceback is logged once per kind of failure.
        self._snapshot_failures = OncePerKind()
        #: Asked of the server per watch: a random value in [min, 2 * min) seconds.
        self.min_watch_timeout = min_watch_timeout
        self.auth_refs = auth_refs if auth_refs is not None else all_auth_refs
        auth_specs = tuple(k for k in kinds if k.auth)
        #: The bookkeeping of the named Secrets (one for their watches: ``AUTH_SECRETS``, and
        #: ``AUTH_TLS_SECRETS``), when they are watched.
        self._auth = None if not auth_specs else AuthSecrets(
            self.store, _AuthHooks(self, auth_specs), where=_any_test(auth_specs),
            watches=[k.name for k in auth_specs])
        #: Whether the ConfigMaps (``CONFIG_MAPS``, a ``gated`` kind) are to be watched, asked
        #: of each snapshot before it is delivered.
        self.wants_config_maps = (wants_config_maps if wants_config_maps is not None
                                  else names_config_maps)
        #: The gated kind's state: wanted (its watch runs), not wanted (set: it does not), and
        #: whether its first list since it was wanted has been tried.
        self._gate_on = asyncio.Event()
        self._gate_off = asyncio.Event()
        self._gate_off.set()
        self._gate_tried = False
        #: The ``optional`` kinds whose first list was refused.
        self._tried: set[str] = set()
        self._run_client: Any = None
        #: The API server's URL (the config's), named when a list or watch fails.
        self._server: str | None = _config_server(config)
        #: Who the API server is asked as, named by a 403's advice (``_config_identity``).
        self._identity: str | None = _config_identity(config)

    @property
    def delivered_generation(self) -> int:
        """The store generation of the snapshot ``on_snapshot`` was last given (-1: none yet):
        what :meth:`redeliver` compares."""
        return self._delivered_generation

    def redeliver(self, generation: int) -> bool:
        """Deliver the latest snapshot again (the same one, or a newer one that came meanwhile,
        never an older one) if the last one delivered is still ``generation``
        (:attr:`delivered_generation` when its ``on_snapshot`` failed): a newer delivery has
        its own outcome. ``serve --kubernetes`` retries a failed swap this way
        (``SnapshotRetry``), as ingress-nginx requeues a failed sync. True: it will be."""
        if self._delivered_generation != generation:
            return False
        self._delivered_generation = -1   # (the same generation: ``_deliver`` delivers it)
        self._dirty.set()
        return True

    # -- running -----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch until ``stop`` is set (or the task is cancelled)."""
        client = self._client
        own_client = client is None
        if client is None:
            try:
                from lightkube import KubeConfig
            except ImportError as e:
                raise _without_lightkube(e) from e

            config = self._config if self._config is not None else load_kube_config(
                self._kubeconfig)
            if isinstance(config, KubeConfig):
                # A KubeConfig (docs/cluster.md): its current context, as AsyncClient would take
                # it (``config.get()``), but through select_context, so that a context naming
                # an undefined cluster or user is said as load_kube_config says it (lightkube:
                # a bare KeyError), and the server is known for the messages.
                from ._kubeconfig import select_context

                config = select_context(config, None)
            self._server = _config_server(config)
            self._identity = _config_identity(config)
            client = cluster_client(config)
        else:
            # A client made elsewhere (``serve`` makes its own before listening): its exec
            # plugin is run as ours is (a v1 one failed every request), its timeouts are its
            # maker's, and its configuration's server is named by every failure as with our
            # own client (a line that is not JSON said none: only httpx's errors carry their
            # request's URL).
            _fit_exec(client)
            client_config = getattr(getattr(client, "_client", None), "config", None)
            if self._server is None:
                self._server = _config_server(client_config)
            if self._identity is None:
                self._identity = _config_identity(client_config)
        self._run_client = client
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(self._run_kind(client, spec)) for spec in self.kinds]
                tasks.append(tg.create_task(self._flusher()))
                stopper = tg.create_task((stop or asyncio.Event()).wait())
                await stopper
                for t in tasks:
                    t.cancel()
                if self._auth is not None:
                    self._auth.cancel()
        finally:
            if self._auth is not None:
                await self._auth.close()
            if own_client:
                await client.close()

    async def _run_kind(self, client: Any, spec: _Kind) -> None:
        if spec.gated:
            await self._run_gated(client, spec)
            return
        auth = self._auth_of(spec)
        if auth is None:
            await self._list_and_watch(client, spec)
            return
        while True:
            # No Opaque Secret is read until an Ingress names one (``AuthSecrets.refresh``),
            # nor once none does any more: the watch stops then (every event it brought would
            # be dropped) and, named again, lists afresh (it missed the changes meanwhile).
            await auth.started.wait()
            await self._watch_until(client, spec, auth.idle)

    async def _watch_until(self, client: Any, spec: _Kind, stop: asyncio.Event) -> None:
        """List and watch ``spec`` until ``stop`` is set (the watch's own failure raised);
        its resource version is then forgotten, so the next start lists afresh."""
        watch = asyncio.ensure_future(self._list_and_watch(client, spec))
        off = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((watch, off), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
            off.cancel()
            await asyncio.gather(watch, off, return_exceptions=True)
        failure = None if watch.cancelled() else watch.exception()
        if failure is not None:
            raise failure
        self.stats.resource_versions.pop(spec.name, None)

    async def _run_gated(self, client: Any, spec: _Kind) -> None:
        """The ConfigMaps' watch: run while they are wanted (``_refresh_gate``); stopped once
        they are not, its objects are dropped (they would go stale) and the next start lists
        afresh."""
        gvk = f"{spec.api_version}/{spec.kind}"
        while True:
            await self._gate_on.wait()
            await self._watch_until(client, spec, self._gate_off)
            self._gate_tried = False
            self._listed.discard(spec.name)
            self.store.replace_all(gvk, [], namespace=self.namespace)
            self._dirty.set()

    def _refresh_gate(self) -> None:
        """Open or close the gated kind's watch for the current objects (``wants_config_maps``
        of the store's snapshot); a callback that raises changes nothing."""
        try:
            wanted = bool(self.wants_config_maps(self.store.snapshot()))
        except Exception as exc:  # noqa: BLE001 - a failing callback keeps the watch going
            self._callback_failed("wants_config_maps", exc)
            _log.exception("wants_config_maps failed; keeping the ConfigMap watch as it is")
            return
        if wanted and not self._gate_on.is_set():
            # Every reason serve has (names_config_maps, _serve._watch's wants_config_maps):
            # the reader of --tcp-services-configmap alone was told of three others.
            _log.info("a ConfigMap is named (custom-headers, auth-proxy-set-headers, "
                      "add-headers, proxy-set-headers, tcp-services-configmap, "
                      "udp-services-configmap): watching ConfigMaps")
            self._gate_off.clear()
            self._gate_on.set()
        elif not wanted and self._gate_on.is_set():
            _log.info("no ConfigMap is named any more: no longer watching ConfigMaps")
            self._gate_on.clear()
            self._gate_off.set()

    async def _list_and_watch(self, client: Any, spec: _Kind) -> None:
        res = _raw_resource(spec)
        sel = _selectors(spec)
        ns: dict[str, str] = {}
        if spec.namespaced:
            # lightkube reads namespace=None as "the config's default namespace"; "*" is all.
            ns["namespace"] = self._namespace_of(spec) or "*"
        gvk = f"{spec.api_version}/{spec.kind}"
        where = _model_test(spec)
        auth = self._auth_of(spec)
        rv: str | None = None
        failures = 0
        #: 410s in a row with no event between them (each re-lists; from the second on, with
        #: backoff, so a server that answers 410 to everything is not hammered with lists).
        gone_streak = 0
        #: The last re-list was for a version the server had not reached: its success does not
        #: reset the backoff, so a lagging API server is not re-listed every few seconds.
        unreached = False
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            delivered = 0
            phase = "list"
            try:
                if rv is None:
                    try:
                        rv = await self._list(client, res, spec, gvk, ns, sel)
                    except Exception as exc:
                        if (spec.optional and spec.name not in self._tried
                                and _status_code(exc) in (401, 403)):
                            # Refused (a Role that does not reach that namespace): the first
                            # table goes without it; a transient failure (a 500, a cut
                            # connection) holds it back as for every kind (x56, s36).
                            self._tried.add(spec.name)
                            self._dirty.set()
                        raise
                    finally:
                        if auth is not None:
                            auth.tried(spec.name)
                        if spec.gated and not self._gate_tried:
                            self._gate_tried = True  # the first table waits for this only
                            self._dirty.set()
                    if not unreached:
                        failures = 0
                phase = "watch"
                stream = _watch_once(client, res, rv, ns, sel, self._watch_timeout())
                async for etype, obj in _idle_guard(stream, self.idle_timeout):
                    wrong = _wrong_object(spec, obj)
                    if wrong is not None:
                        # Another kind's object, or none (client-go's reflector: "expected gvk
                        # ..., but watch event object had gvk ...", skipped): it must not enter
                        # this kind's cache, nor any other, nor stop the watch. Its version is
                        # not taken either, and it is no event delivered (client-go skips it
                        # before ``eventCount++``): a watch that brought only such events and
                        # ended at once is a "very short watch", backed off, and a 410 after
                        # it is still a 410 in a row. Counted, a server replaying one stray
                        # event and closing every watch was re-watched in a busy loop.
                        self.stats.garbage += 1
                        self._note(f"{spec.name} watch: skipped {etype} event: {wrong}")
                        _log.warning("%s watch: skipping a %s event: %s", spec.name, etype,
                                     wrong)
                        continue
                    delivered += 1
                    gone_streak = 0
                    unreached = False
                    new_rv = obj.metadata.resourceVersion if isinstance(obj, _RawObject) else None
                    if etype == "BOOKMARK":
                        self.stats.bookmarks += 1
                    elif etype in ("ADDED", "MODIFIED") and not _selected(spec, obj):
                        # Outside the selection: what the API server reports as DELETED when
                        # an object stops matching a selector.
                        self._apply("DELETED", obj, gvk, where)
                    elif auth is not None and not auth.admit(etype, obj, spec.name):
                        pass  # a Secret no served Ingress names: dropped, never cached
                    else:
                        self._apply(etype, obj, gvk, where)
                    if self.metrics is not None and etype in EVENT_TYPES:
                        # Only the known types: the type is a metric label, and a server that
                        # sends made-up types must not grow the metrics without bound.
                        self.metrics.watch_event(spec.kind, etype)
                    if new_rv:
                        rv = new_rv
                        self.stats.resource_versions[spec.name] = rv
                # A normal end: the server closes watches after their timeout (API concepts,
                # *Efficient detection of changes*). Resume from the last resourceVersion, no
                # re-list; but a watch that ended at once with nothing is backed off, not spun.
                if delivered == 0 and loop.time() - started < _SHORT_WATCH:
                    failures += 1
                    _log.debug("%s watch ended at once with no event; backing off", spec.name)
                    await _backoff_sleep(self.backoff.delay(failures, self._rng))
                else:
                    failures = 0
                continue
            except asyncio.CancelledError:
                raise
            except _Idle:
                # Nothing for idle_timeout: the connection may be half-open (a NAT or load
                # balancer forgot it), which TCP alone would never notice. Resume at once.
                self.stats.idle_reconnects += 1
                _log.debug("%s watch idle for %.0f s; reconnecting", spec.name, self.idle_timeout)
                continue
            except Exception as exc:  # noqa: BLE001 - nothing stops the watcher (SEMANTICS §11)
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # stopping: an error raised while unwinding is not a reason to retry
                if _is_expired(exc):
                    # "410 Gone": our resourceVersion was compacted away (API concepts: clients
                    # "must handle the case by recognizing the status code 410 Gone, clearing
                    # their local cache, performing a new get or list operation, and starting the
                    # watch from the resourceVersion that was returned"). It comes as an ERROR
                    # event or as the watch response's own status. Re-list; the list is the
                    # catch-up. After the backoff, as client-go's reflector: its watch returns
                    # on an expired error, and Run's wait.BackoffUntil waits for the backoff
                    # manager (800 ms doubling to 30 s, jittered) before the next ListAndWatch.
                    # Replicas that all see a compaction at once then do not re-list in step.
                    # 410 after 410 (nothing in between) waits longer each time.
                    self._relisting(spec)
                    _log.info("%s watch expired (410 Gone); re-listing", spec.name)
                    rv = None
                    gone_streak += 1
                    await _backoff_sleep(self.backoff.delay(gone_streak, self._rng))
                    continue
                if loop.time() - started > self.backoff.reset_after:
                    failures = 0
                failures += 1
                self._error(spec, exc, phase)
                if self.metrics is not None:
                    self.metrics.watch_error(spec.kind)
                delay = self.backoff.delay(failures, self._rng)
                asked = _retry_after(exc)
                if asked is not None and asked > delay:
                    # 429 Too Many Requests (API priority and fairness) says when to come back.
                    delay = asked
                await _backoff_sleep(delay)
                if _is_too_large(exc):
                    # The version is unusable, not just early: re-list (the list asks for the
                    # latest state, so it cannot be "too large"), after the backoff, as
                    # client-go's reflector does.
                    rv = None
                    unreached = True
                    self._relisting(spec)
                    continue
                self.stats.reconnects += 1
                if self.metrics is not None:
                    self.metrics.watch_reconnect(spec.kind)

    async def _list(self, client: Any, res: Any, spec: _Kind, gvk: str, ns: dict[str, str],
                    sel: dict[str, Any]) -> str:
        auth = self._auth_of(spec)
        listing = client.list(res, chunk_size=self.list_chunk_size, **ns, **sel)
        try:
            received = await _received(listing)
        except Exception as exc:
            if not (self.list_chunk_size and _is_expired(exc)):
                raise
            # A continue token expired (410) between two pages: etcd compacted the first
            # page's version. Restarting the paged list could fail the same way for ever on a
            # cluster whose pages take longer than a compaction interval (5 minutes); list once
            # more, unpaged, at once, as client-go's pager does (tools/pager/pager.go,
            # ``ListPager.List``: "the list expired while we were processing, fall back to a
            # full list at the requested ResourceVersion", ``options.Limit = 0``). A 410 on
            # that list too is the caller's (a re-list after the backoff).
            self._relisting(spec)
            _log.info("%s list: continue token expired (410); listing again, unpaged",
                      spec.name)
            listing = client.list(res, chunk_size=None, **ns, **sel)
            received = await _received(listing)
        kept: list[dict[str, Any]] = []
        for o in received:
            if not _selected(spec, o):
                continue
            wrong = _wrong_object(spec, o)
            if wrong is not None:
                # As on the watch: another kind's object would enter that kind's cache.
                self.stats.garbage += 1
                self._note(f"{spec.name} list: skipped item: {wrong}")
                _log.warning("%s list: skipping an item: %s", spec.name, wrong)
            elif auth is None or auth.wants(o):
                kept.append(o)  # auth Secrets: only those named; the others are dropped here
        items = kept
        try:
            rv: str = listing.resourceVersion
        except Exception:  # noqa: BLE001 - lightkube's NotReadyError: the list carried none
            # A list without metadata.resourceVersion (a broken server or proxy). Retrying
            # would get the same list forever; watch from "" instead: "Start at most recent",
            # which begins with a synthetic ADDED of every object (API concepts, *Semantics for
            # watch*), so nothing that exists is missed.
            _log.warning("%s list carried no resourceVersion; watching from the most recent",
                         spec.name)
            rv = ""
        invalid = self.store.invalid_total
        # (Every namespace is None, ``""`` made None in __init__: as a namespace, "" would
        # make the list complete for no object, and a re-list would drop nothing deleted
        # while the watch was down.)
        namespace = self._namespace_of(spec)
        unkeyable: list[str] = []
        # A list item that cannot even be keyed (no name) is skipped and counted, like such a
        # watch event: failing the whole list would hold the kind (and the first table) back
        # forever, since every re-list returns it again.
        self.store.replace_all(gvk, items, namespace=namespace, unkeyable=unkeyable,
                               where=_model_test(spec))
        for why in unkeyable:
            self.stats.garbage += 1
            self._note(f"unusable {spec.name} list item: {why}")
            _log.warning("ignoring unusable %s list item: %s", spec.name, why)
        self.stats.invalid_objects += self.store.invalid_total - invalid
        self.stats.lists += 1
        self.stats.resource_versions[spec.name] = rv
        _log.debug("listed %d %s at resourceVersion %s", len(items), spec.name, rv)
        self._listed.add(spec.name)
        if auth is not None:
            auth.listed(spec.name)
        self._dirty.set()
        return rv

    def _auth_of(self, spec: _Kind) -> AuthSecrets | None:
        return self._auth if spec.auth else None

    def _namespace_of(self, spec: _Kind) -> str | None:
        """The namespace ``spec`` is watched in: its own (``named_secret``), else the
        watcher's; None: every namespace, or a cluster-scoped kind."""
        return (spec.namespace or self.namespace) if spec.namespaced else None

    def _relisting(self, spec: _Kind) -> None:
        self.stats.relists += 1
        if self.metrics is not None:
            self.metrics.watch_relist(spec.kind)

    def _watch_timeout(self) -> int | None:
        # client-go's reflector: "timeoutSeconds := int64(r.minWatchTimeout.Seconds() *
        # (rand.Float64() + 1.0))", "We want to avoid situations of hanging watchers. Stop any
        # watchers that do not receive any events within the timeout window."
        if not self.min_watch_timeout:
            return None
        return int(self.min_watch_timeout * (self._rng.random() + 1.0))

    def _apply(self, etype: str, obj: Any, gvk: str,
               where: Callable[[Any], bool] | None = None) -> None:
        invalid = self.store.invalid_total
        try:
            self.store.apply(etype, obj, kind=gvk, where=where)
        except ValueError as exc:
            self.stats.garbage += 1
            self._note(f"unusable {etype} event: {exc}")
            _log.warning("ignoring unusable %s event: %s", etype, exc)
            return
        self.stats.events += 1
        self.stats.invalid_objects += self.store.invalid_total - invalid
        self._dirty.set()

    def _error(self, spec: _Kind, exc: Exception, phase: str = "watch") -> None:
        transport = _is_transport_error(exc)
        if transport:
            self.stats.stream_errors += 1
        else:
            self.stats.garbage += 1
        code = _status_code(exc)
        # docs/cluster.md: "The failures are logged with the HTTP status."
        what = f"HTTP {code} {type(exc).__name__}" if code is not None else type(exc).__name__
        detail = str(exc) or "no detail"  # httpx's timeouts carry no message
        self._note(f"{spec.name} {phase}: {what}: {detail}")
        if code in (401, 403):
            # Not transient: credentials or RBAC. Still retried (a fixed Role takes effect
            # without a restart), but said loudly, with what to fix in RBAC's own terms (the
            # resource, its API group, the verb, the scope): an error body from a proxy in
            # front of the API server says none of it.
            plural, group = _rbac_resource(spec)
            namespace = self._namespace_of(spec)
            scope = f"in namespace {namespace}" if namespace else "cluster-wide"
            by_name = (spec.fields or {}).get("metadata.name")
            if code == 401:
                fix = (f"the API server did not accept the credentials for the {phase} of "
                       f"{plural} (token, client certificate, kubeconfig user)")
            else:
                fix = (f'{phase} of {plural} (API group "{group}") {scope} was refused: '
                       f"{_rbac_fix(plural, group, namespace, by_name, self._identity)}")
            _log.error("%s list/watch denied (%s: %s): %s; retrying", spec.name, what, detail, fix)
        else:
            # Which server: a refused or unresolvable one says nothing else ("All connection
            # attempts failed"), and the kubeconfig picked may not be the one meant.
            server = _server_url(exc) or self._server
            where = f"; API server {server}" if server else ""
            _log.warning("%s %s failed (%s: %s%s); retrying", spec.name, phase, what, detail,
                         where)

    def _note(self, msg: str) -> None:
        self.stats.last_error = msg
        self.stats.last_error_time = time.time()

    def _callback_failed(self, name: str, exc: Exception) -> None:
        self.stats.callback_errors += 1
        self._note(f"{name}: {type(exc).__name__}: {exc}")

    # -- debounce ----------------------------------------------------------------------------

    async def _flusher(self) -> None:
        while True:
            await self._dirty.wait()
            # Trailing-edge debounce: everything arriving in this window is one swap.
            await asyncio.sleep(self.debounce)
            self._dirty.clear()
            if any(k.name not in self._listed for k in self.kinds
                   if not k.auth and not k.gated
                   and not (k.optional and k.name in self._tried)):
                continue  # wait for every kind's first list: no table without its Services
            gated = any(k.gated for k in self.kinds)
            if gated:
                self._refresh_gate()
                if (self._gate_on.is_set() and not self._gate_tried
                        and not self.synced.is_set()):
                    # The first table waits for the ConfigMaps' first list attempt (it wakes
                    # us), so that custom-headers is not missing from its first answers; a
                    # failing list (a Role without configmaps) does not hold it back: the
                    # headers are then missing, with a warning, as for a missing ConfigMap.
                    continue
            if self._auth is not None:
                await self._auth.refresh()
                if not self._auth.ready and not self.synced.is_set():
                    # The first table waits for the auth Secrets' first list (it wakes us).
                    # A later one does not: when the first basic-auth Ingress comes after the
                    # first table, that list (every Opaque Secret, paged) must not hold back
                    # every other change, endpoints included; its routes answer 503 until
                    # it is in, as a Secret fetched by name later does.
                    continue
            await self._deliver()

    async def _deliver(self) -> None:
        generation = self.store.generation
        if generation == self._delivered_generation and self.synced.is_set():
            return
        snapshot = self.store.snapshot()
        self._delivered_generation = generation
        try:
            result = self.on_snapshot(snapshot)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # noqa: BLE001 - a failing callback keeps the watch going
            self._callback_failed("on_snapshot", exc)
            # A failure repeating the last one (serve delivers a snapshot whose swap failed
            # again, 1 s doubling to 60 s): its traceback was logged, one line now. This is
            # the one traceback of a failure: serve's callback logs only what it does about
            # it (its retry) and re-raises it here.
            if self._snapshot_failures.first(exc):
                _log.exception("on_snapshot failed; keeping the watch going")
            else:
                _log.warning("on_snapshot failed again: %r; keeping the watch going", exc)
        else:
            self._snapshot_failures.reset()
            self.stats.snapshots += 1
            self.stats.last_snapshot_time = time.time()
        self.synced.set()


class _AuthHooks:
    """What ``AuthSecrets`` asks of the watcher (``_kube_auth.AuthWatch``): its client, counters,
    backoff and flusher, for the watches of ``specs`` (``AUTH_SECRETS``, ``AUTH_TLS_SECRETS``:
    Secrets all, one resource to ``get`` from)."""

    __slots__ = ("_watcher", "_spec", "_specs")

    def __init__(self, watcher: ClusterWatcher, specs: tuple[_Kind, ...]) -> None:
        self._watcher = watcher
        #: What ``get`` reads and its failures are logged as (every one is a Secret).
        self._spec = specs[0]
        self._specs = specs

    def refs(self, res: Resources) -> AbstractSet[tuple[str, str]]:
        return self._watcher.auth_refs(res)

    def refs_failed(self, exc: Exception) -> None:
        self._watcher._callback_failed("auth_refs", exc)

    async def get(self, namespace: str, name: str) -> Any:
        return await self._watcher._run_client.get(_raw_resource(self._spec), name,
                                                   namespace=namespace)

    def retry_get(self, exc: Exception) -> bool:
        if _status_code(exc) == 404:
            return False
        self._watcher._error(self._spec, exc, "get")
        return True

    def keep(self, obj: Any) -> None:
        # Not a Secret of a watched type: no watch would ever follow it.
        spec = self._owner(obj)
        if spec is not None:
            self._watcher._apply("ADDED", obj, f"{spec.api_version}/{spec.kind}",
                                 _model_test(spec))

    def owner(self, obj: Any) -> str | None:
        spec = self._owner(obj)
        return None if spec is None else spec.name

    def _owner(self, obj: Any) -> _Kind | None:
        """The watch whose selection ``obj`` (a fetched Secret) is."""
        return next((spec for spec in self._specs
                     if _wrong_object(spec, obj) is None and _selected(spec, obj)), None)

    def retry_delay(self, failures: int) -> float:
        return self._watcher.backoff.delay(failures, self._watcher._rng)

    def wake(self) -> None:
        self._watcher._dirty.set()


class _Idle(Exception):
    pass


def _wrong_object(spec: _Kind, obj: Any) -> str | None:
    """Why ``obj`` cannot be an object of ``spec``'s watch, or None. An object without
    ``kind``/``apiVersion`` (list items) is taken as the watched kind."""
    if isinstance(obj, _Malformed):
        return obj.why
    if not isinstance(obj, Mapping):
        return f"the object is {type(obj).__name__}, not an object"
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if (kind is not None and kind != spec.kind) or (
            api_version is not None and api_version != spec.api_version):
        return (f"a {api_version or '?'} {kind or '?'} on the watch of "
                f"{spec.api_version} {spec.kind}")
    return None


async def _idle_guard(stream: Any, timeout: float | None) -> Any:
    """Yield from ``stream``, raising ``_Idle`` when nothing arrives for ``timeout`` seconds.

    ``asyncio.timeout``, not ``wait_for``: on Python 3.11, ``wait_for`` returns the inner
    result when the awaited item is ready at the moment the task is cancelled, swallowing the
    cancellation -- with a busy stream, nearly every time. The watcher then ignored ``stop``
    and ``asyncio.run`` hung at exit waiting for it."""
    it = stream.__aiter__()
    try:
        while True:
            deadline = asyncio.timeout(timeout)
            try:
                async with deadline:
                    item = await it.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                if deadline.expired():
                    raise _Idle() from None
                raise  # the stream's own (a socket timeout): an error, not silence
            yield item
    finally:
        aclose = getattr(it, "aclose", None)
        if aclose is not None:
            # A stream interrupted mid-item may still be winding down: aclose() then says
            # "already running", and that must not mask the cancel.
            with contextlib.suppress(RuntimeError):
                await aclose()


def _server_url(exc: BaseException) -> str | None:
    """``scheme://host:port`` of the request ``exc`` failed on: httpx's errors carry it
    (``exc.request``; a RuntimeError when none was attached); None otherwise."""
    try:
        url = exc.request.url  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - no request, or not an httpx error
        return None
    scheme, netloc = getattr(url, "scheme", None), getattr(url, "netloc", None)
    if isinstance(netloc, bytes):
        netloc = netloc.decode("ascii", "replace")
    return f"{scheme}://{netloc}" if scheme and netloc else None


def _config_server(config: Any) -> str | None:
    """``scheme://host:port`` of the API server of a lightkube ``SingleConfig``
    (``cluster.server``), else None. Only those parts, as ``_server_url``: the URL is logged,
    and a kubeconfig's may carry credentials (``https://user:password@host``, a token in the
    query)."""
    server = getattr(getattr(config, "cluster", None), "server", None)
    if not isinstance(server, str) or not server:
        return None
    try:
        parts = urllib.parse.urlsplit(server)
        host, port = parts.hostname, parts.port
    except ValueError:  # a port out of range or not a number, a bad IPv6 literal
        return None
    if not parts.scheme or not host:
        return None
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + ("" if port is None else f":{port}")


def _is_transport_error(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, ExecCredentialError)):
        return True  # (the credentials, as lightkube's ConfigError of a failing plugin)
    if _status_code(exc) is not None:
        return True  # an HTTP error response, whatever its body
    # lightkube 1.x talks through httpx2, older releases through httpx; ApiError (an HTTP status)
    # derives from their HTTPError too.
    for mod in type(exc).__mro__:
        if mod.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "lightkube"):
            return True
    return False


async def watch_cluster(
    on_snapshot: SnapshotCallback,
    *,
    namespace: str | None = None,
    kubeconfig: str | PathLike[str] | None = None,
    stop: asyncio.Event | None = None,
    **options: Any,
) -> ClusterWatcher:
    """Watch the cluster until ``stop`` is set; ``serve --kubernetes`` calls this with
    ``on_snapshot=router.update``. Returns the watcher (its ``stats``) once stopped. ``options``
    go to :class:`ClusterWatcher`."""
    watcher = ClusterWatcher(on_snapshot, namespace=namespace, kubeconfig=kubeconfig, **options)
    await watcher.run(stop)
    return watcher
