"""``_serve.config_digest``'s machinery (the ``config_hash`` of every reload), and ``serve``'s
signal handling at start-up.

1. The per-object cache: a digest through the cache equals a cold one over sequences of watch
   events (hypothesis), equals the digest of the same objects read as files, keeps exactly the
   objects of the last call, and hashes again only the objects that are new.
2. The encoding: every field of every model is hashed (``ObjectMeta``'s ``resourceVersion``,
   ``uid`` and ``creationTimestamp`` excepted), the generated per-class encoders give what the
   generic walk gives, values that do not match a model's annotations still hash, and the
   digest is the same in processes with different string-hash salts.
3. ``serve``: a SIGTERM or SIGINT that arrives after "listening on" but before the first
   digest is done stops gracefully: the request in flight finishes, exit 0. Defect: the
   handlers were installed only after the first digest, so a SIGTERM in between killed the
   process (-15) with the request in flight cut (the SIGTERM case fails on the code before the
   fix, checked; SIGINT went through asyncio's own handler, which cancels the main task, and
   passes either way here). The cold digest builds its encoders on its first call, which made
   the window wide enough for test_serve_cli's signal test to hit it.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import _models, _serve, _serve_digest
from ingresslib._models import ObjectMeta
from ingresslib._resources import Resources
from ingresslib._serve import (
    _SKIPPED_FIELDS,
    _canon,
    _DigestCache,
    _encode,
    _make_encoder,
    config_digest,
)
from ingresslib._store import ResourceStore
from ingresslib._table import served_ingresses
from tests._process_helpers import stderr_until_exit

NAMES = ["a", "b", "c"]
NAMESPACES = ["default", "x"]
KINDS = ["Ingress", "Service", "Secret", "IngressClass"]


def make(kind: str, name: str, ns: str, variant: int, rv: int = 0) -> dict[str, Any]:
    """One object; ``variant`` changes what a table reads, ``rv`` only the resourceVersion."""
    meta: dict[str, Any] = {"name": name, "resourceVersion": str(rv), "uid": f"uid-{name}-{rv}"}
    if kind != "IngressClass":
        meta["namespace"] = ns
    if kind == "Ingress":
        meta["creationTimestamp"] = f"2024-01-0{1 + variant % 3}T00:00:00Z"
        meta["annotations"] = {"z": str(variant), "a": "1"} if variant % 2 else {"a": "1"}
        spec = {"rules": [{"host": f"{name}.example", "http": {"paths": [
            {"path": f"/p{variant}", "pathType": "Prefix",
             "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}
        if variant == 2:
            spec["tls"] = [{"hosts": [f"{name}.example"], "secretName": name}]
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
                "spec": spec}
    if kind == "Service":
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
                "spec": {"ports": [{"port": 80 + variant, "targetPort": 8080}],
                         "selector": {"app": name, "v": str(variant)}}}
    if kind == "Secret":
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
                "data": {"k": "eA==" if variant == 0 else "eQ==", "b": "eg=="}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": f"example.com/c{variant}"}}


def digest(res: Resources, cache: _DigestCache | None = None, config: Any = None) -> str:
    return config_digest(res, served_ingresses(res, None, None)[0], config,
                         cache=cache if cache is not None else _DigestCache())


def objects_of(res: Resources) -> list[Any]:
    return [*res.ingresses, *res.ingress_classes, *res.services, *res.secrets]


def cached(cache: _DigestCache) -> dict[int, Any]:
    """``id -> object`` of every object the cache holds (each entry: object, key, digest)."""
    out = {k: e[0] for run in cache.runs.values() for k, e in run.entries.items()}
    assert all(k == id(e[0]) for run in cache.runs.values() for k, e in run.entries.items())
    return out


# --- 1. the cache ---------------------------------------------------------------------------------

EVENT = st.tuples(st.sampled_from(KINDS), st.sampled_from(NAMES), st.sampled_from(NAMESPACES),
                  st.integers(0, 2), st.sampled_from(["ADDED", "MODIFIED", "DELETED", "STATUS"]))


@given(events=st.lists(EVENT, min_size=1, max_size=14), rnd=st.randoms(use_true_random=False))
def test_cached_digest_equals_a_cold_one_over_watch_events(events: list[Any],
                                                           rnd: random.Random) -> None:
    store = ResourceStore()
    cache = _DigestCache()
    files: dict[tuple[str, str, str], dict[str, Any]] = {}
    current: dict[tuple[str, str, str], int] = {}
    rv = 0
    for kind, name, ns, variant, event in events:
        rv += 1
        key = (kind, "" if kind == "IngressClass" else ns, name)
        if event == "DELETED":
            store.apply("DELETED", make(kind, name, ns, current.get(key, variant), rv))
            files.pop(key, None)
            current.pop(key, None)
        else:
            if event == "STATUS":  # the same object with a new resourceVersion only
                variant = current.get(key, variant)
            current[key] = variant
            obj = make(kind, name, ns, variant, rv)
            store.apply("ADDED" if event == "ADDED" else "MODIFIED", obj)
            files[key] = make(kind, name, ns, variant)  # as a file has it: rv "0", another uid
        snap = store.snapshot()
        warm = digest(snap, cache)
        assert warm == digest(snap), "the cache changed the digest"
        # Exactly this snapshot's objects stay cached, each held by its entry.
        assert cached(cache) == {id(o): o for o in objects_of(snap)}
        # The same objects read from files, in another order, with other uids: the same digest.
        listed = list(files.values())
        rnd.shuffle(listed)
        assert digest(Resources.from_dicts(listed)) == warm


def test_only_new_objects_are_hashed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    objs = [make(k, n, "default", 0) for k in KINDS for n in NAMES]
    res = Resources.from_dicts(objs)
    cache = _DigestCache()
    first = digest(res, cache)
    encoded: list[Any] = []
    real = _serve._encode

    def counting(value: Any) -> bytes:
        encoded.append(value)
        return real(value)

    monkeypatch.setattr(_serve_digest, "_encode", counting)
    assert digest(res, cache) == first
    assert encoded == [None]  # the config only: every object came from the cache
    # One Ingress changes (a new object, as a store snapshot gives): only it is hashed again.
    changed = Resources.from_dicts([make("Ingress", "b", "default", 1)]).ingresses[0]
    ings = [changed if i.metadata.name == "b" else i for i in res.ingresses]
    after = dataclasses.replace(res, ingresses=tuple(ings))
    encoded.clear()
    second = digest(after, cache)
    assert encoded == [changed, None] and second != first
    assert second == digest(after)
    # Back to the first configuration: the old "b" was evicted, so it is hashed again.
    encoded.clear()
    assert digest(res, cache) == first
    old_b = next(i for i in res.ingresses if i.metadata.name == "b")
    assert encoded == [old_b, None]


def test_an_object_equal_to_a_cached_one_but_new_is_hashed_and_agrees() -> None:
    res = Resources.from_dicts([make("Service", "a", "default", 0)])
    cache = _DigestCache()
    d = digest(res, cache)
    again = Resources.from_dicts([make("Service", "a", "default", 0)])
    assert again.services[0] is not res.services[0]
    assert digest(again, cache) == d
    assert cached(cache) == {id(again.services[0]): again.services[0]}


def test_evicted_objects_are_released() -> None:
    # Models take no weak references (slots), so the cache holds them: it must let go of the
    # objects a reload dropped, or it would keep every configuration ever served alive.
    import gc

    res = Resources.from_dicts([make("Service", "a", "default", 0)])
    cache = _DigestCache()
    digest(res, cache)
    svc = res.services[0]
    assert cached(cache) == {id(svc): svc}
    held = sys.getrefcount(svc)
    digest(Resources.from_dicts([make("Service", "b", "default", 0)]), cache)
    gc.collect()
    assert sys.getrefcount(svc) == held - 1  # the cache's reference is gone
    assert id(svc) not in cached(cache) and len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_order_and_duplicates_with_a_warm_cache() -> None:
    objs = [make(k, n, ns, 1) for k in KINDS for n in NAMES for ns in NAMESPACES]
    res = Resources.from_dicts(objs)
    cache = _DigestCache()
    d = digest(res, cache)
    rev = dataclasses.replace(res, **{f: tuple(reversed(getattr(res, f))) for f in
                                      ("ingresses", "services", "secrets", "ingress_classes")})
    assert digest(rev, cache) == d
    twice = dataclasses.replace(res, services=res.services + res.services[:1])
    assert digest(twice, cache) == d


def test_digests_from_several_threads_at_once_are_right() -> None:
    configs = [Resources.from_dicts([make(k, n, "default", v) for k in KINDS for n in NAMES])
               for v in range(3)]
    want = [digest(r) for r in configs]
    assert len(set(want)) == 3
    cache = _DigestCache()
    errors: list[str] = []

    def work(seed: int) -> None:
        rnd = random.Random(seed)
        for _ in range(200):
            i = rnd.randrange(3)
            if digest(configs[i], cache) != want[i]:
                errors.append(f"config {i}")

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- 2. the encoding ------------------------------------------------------------------------------


def reference(value: Any) -> Any:
    """``_canon`` as its docstring states it, walked generically (no generated code)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skipped = _SKIPPED_FIELDS.get(type(value), frozenset())
        names = [f.name for f in dataclasses.fields(value) if f.name not in skipped]
        return (type(value).__name__, *(reference(getattr(value, n)) for n in names))
    if type(value) in (str, int, bool, float, bytes, type(None)):
        return value
    if type(value) is tuple:
        return tuple(reference(v) for v in value)
    if type(value) is list:
        return [reference(v) for v in value]
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((reference(k), reference(v)) for k, v in value.items())))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(_encode(v) for v in value)))
    return ("repr", repr(value))


def model_classes() -> list[type]:
    return [c for c in (getattr(_models, n) for n in _models.__all__)
            if isinstance(c, type) and dataclasses.is_dataclass(c)]


@pytest.mark.parametrize("cls", model_classes(), ids=lambda c: c.__name__)
def test_every_field_of_every_model_is_encoded(cls: type) -> None:
    # A field added to a model later is hashed without touching _serve: the encoder follows
    # dataclasses.fields(). Each field holds a marker string here (annotations not enforced).
    obj: Any = object.__new__(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for n in names:
        object.__setattr__(obj, n, f"marker-{n}")
    skipped = _SKIPPED_FIELDS.get(cls, frozenset())
    assert _canon(obj) == (cls.__name__, *(f"marker-{n}" for n in names if n not in skipped))
    assert cls is not ObjectMeta or skipped == {"resource_version", "uid", "creation_timestamp"}
    base = _encode(obj)
    for n in names:
        other = copy.copy(obj)
        object.__setattr__(other, n, "changed")
        assert (_encode(other) == base) == (n in skipped), n


def test_generated_encoders_agree_with_the_generic_walk() -> None:
    objs = [make(k, n, ns, v) for k in KINDS for n in NAMES for ns in NAMESPACES
            for v in range(3)]
    res = Resources.from_dicts(objs)
    for obj in objects_of(res):
        assert _canon(obj) == reference(obj)


@dataclasses.dataclass(frozen=True)
class _Leaf:
    x: int
    tag: str | None = None


@dataclasses.dataclass(frozen=True)
class _Node:
    leaf: _Leaf
    maybe: _Leaf | None
    leaves: tuple[_Leaf, ...]
    labels: Mapping[str, str]
    when: datetime | None
    either: int | str
    tags: frozenset[str]
    child: _Node | None = None
    loose: Any = None


def test_values_that_do_not_match_the_annotations_are_still_encoded() -> None:
    when = datetime(2024, 1, 1, tzinfo=timezone.utc)
    good = _Node(_Leaf(1), None, (_Leaf(2, "t"),), {"b": "2", "a": "1"}, when, 3,
                 frozenset({"q", "p"}), _Node(_Leaf(0), _Leaf(5), (), {}, None, "s", frozenset()),
                 loose={"k": [1, (2, 3)]})
    # Annotations are not enforced: a hand-built model may hold anything.
    wrong: list[Any] = ["not a leaf", [_Leaf(1)], [_Leaf(3), "x"], {"k": {"n": 1}}, "noon", 2.5,
                        {"only"}, _Leaf(9), object]
    odd = _Node(*wrong)
    for value in (good, odd):
        assert _canon(value) == reference(value)
    assert _make_encoder(_Node)(good) == reference(good)
    # Map and set order do not count; the values do.
    flipped = dataclasses.replace(good, labels={"a": "1", "b": "2"}, tags=frozenset({"p", "q"}))
    assert _encode(flipped) == _encode(good)
    assert _encode(dataclasses.replace(good, labels={"a": "1", "b": "3"})) != _encode(good)
    assert _encode(dataclasses.replace(good, either="3")) != _encode(good)  # 3 is not "3"


def test_the_digest_is_the_same_in_processes_with_other_string_hash_salts() -> None:
    # No id(), no str hash: a frozenset in the settings and maps in the objects, which iterate
    # in a salt-dependent order, give one digest across processes.
    script = textwrap.dedent("""
        import sys
        sys.path.insert(0, %r)
        from test_reload_digest import KINDS, NAMES, digest, make
        from ingresslib._resources import Resources
        objs = [make(k, n, ns, 1) for k in KINDS for n in NAMES for ns in ("default", "x")]
        cfg = frozenset("abcdefghij")
        print(digest(Resources.from_dicts(objs), config=cfg))
    """) % str(Path(__file__).parent)
    out = set()
    for seed in ("1", "2", "3"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        out.add(run.stdout.strip())
    objs = [make(k, n, ns, 1) for k in KINDS for n in NAMES for ns in ("default", "x")]
    assert out == {digest(Resources.from_dicts(objs), config=frozenset("abcdefghij"))}


# --- 3. serve: signals during start-up ------------------------------------------------------------


def manifest(up_port: int) -> str:
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {up_port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


#: ``ingresslib serve`` whose first digest (which runs after "listening on" is printed, while
#: requests are served) lasts until the file named by $DIGEST_GATE exists: a big configuration
#: on a busy machine, held open as long as the test needs.
SLOW_FIRST_DIGEST = """\
import os, sys, time
import ingresslib._serve as s
real = s.config_digest
def slow(*a, **k):
    print("digest started", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.environ["DIGEST_GATE"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return real(*a, **k)
s.config_digest = slow
from ingresslib._cli import main
raise SystemExit(main(sys.argv[1:]))
"""


class SlowUpstream:
    """A backend on 127.0.0.1 that answers one request once ``release`` is set."""

    def __init__(self) -> None:
        import socket

        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.got_request = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.got_request.set()
            self.release.wait(30)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nslow")

    def close(self) -> None:
        self.release.set()
        self.sock.close()


@pytest.mark.network
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_before_the_first_digest_is_done_stops_gracefully(
        tmp_path: Path, sig: signal.Signals) -> None:
    import socket

    upstream = SlowUpstream()
    m = tmp_path / "m.yaml"
    m.write_text(manifest(upstream.port))
    gate = tmp_path / "gate"
    p = subprocess.Popen([sys.executable, "-c", SLOW_FIRST_DIGEST, "serve", "-f", str(m),
                          "--listen", "127.0.0.1:0", "--access-log", "off"],
                         env=dict(os.environ, DIGEST_GATE=str(gate)),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    client = None
    try:
        assert p.stderr is not None
        lines = []
        while True:
            line = p.stderr.readline()
            lines.append(line)
            if not line or line.startswith("digest started"):
                break
        assert lines[-1].startswith("digest started"), lines
        port = int(next(x for x in lines if x.startswith("listening on ")).rsplit(":", 1)[1])
        # A request in flight while the first digest runs, then the signal.
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert upstream.got_request.wait(30)
        p.send_signal(sig)
        time.sleep(0.3)  # let the signal land while the digest is still running
        gate.touch()
        upstream.release.set()
        response = b""
        while chunk := client.recv(4096):
            response += chunk
        err = stderr_until_exit(p, 30)  # not communicate(): it drops what readline() buffered
    finally:
        if client is not None:
            client.close()
        upstream.close()
        if p.poll() is None:
            p.kill()
            p.wait()
    # The request in flight finished, and the process stopped on its own.
    assert response.startswith(b"HTTP/1.1 200") and response.endswith(b"slow"), response
    assert p.returncode == 0, (p.returncode, err)
    assert "Traceback" not in err
