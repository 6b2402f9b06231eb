"""Review of session 15's store, Secret-watch, YAML and validation changes (R15b).

Each test failed on the code before its fix (the docstring of each says how)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS, _model_test
from ingresslib._store import ResourceStore

TLS = _model_test(next(k for k in WATCHED_KINDS if k.kind == "Secret"))
OPAQUE = _model_test(AUTH_SECRETS)
GVK = "v1/Secret"
TYPES = ("kubernetes.io/tls", "Opaque")


def _secret(type_: str, n: int, valid: bool, name: str = "s") -> dict[str, Any]:
    data = {"n": base64.b64encode(str(n).encode()).decode()}
    if type_ == "kubernetes.io/tls":
        data |= {"tls.crt": "eA==", "tls.key": "eA=="}
    if not valid:
        data["not a key"] = "eA=="  # ValidateSecret: an invalid data key
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": "default"}, "type": type_, "data": data}


# -- the store: what two Secret watches leave behind ---------------------------------------------


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(st.tuples(st.sampled_from(TYPES), st.sampled_from(["write", "delete"]),
                                st.booleans(), st.sampled_from(["s", "t"])), max_size=14),
       order=st.lists(st.booleans(), max_size=40),
       relist=st.lists(st.sampled_from([None, *TYPES]), max_size=40))
def test_two_watches_leave_nothing_behind_and_generation_follows_the_snapshot(
        steps: list[tuple[str, str, bool, str]], order: list[bool],
        relist: list[str | None]) -> None:
    # Two names, deleted and re-created with either type, each change reported by its type's
    # watch, the two streams interleaved in any order, a watch re-listing (its own type's
    # objects as they are at that point of its stream) at any time. Checked after every step:
    # ``generation`` moves exactly when the snapshot changes; no object kept behind another
    # (``_hidden``) or rejected object (``_rejected``) outlives what it stands for. Once both
    # streams are through and everything deleted: nothing at all is left (memory that grew
    # with churn).
    live: dict[str, tuple[str, int, bool] | None] = {"s": None, "t": None}
    streams: dict[str, list[tuple[str, dict[str, Any]]]] = {t: [] for t in TYPES}
    n = 0
    for type_, op, valid, name in [*steps, *[(t, "delete", True, x) for x in "st" for t in TYPES]]:
        n += 1
        cur = live[name]
        if op == "delete":
            if cur is not None:
                streams[cur[0]].append(("DELETED", _secret(cur[0], cur[1], cur[2], name)))
                live[name] = None
            continue
        if cur is not None:
            type_ = cur[0]
        streams[type_].append(("MODIFIED" if cur else "ADDED", _secret(type_, n, valid, name)))
        live[name] = (type_, n, valid)
    store = ResourceStore()
    where = {TYPES[0]: TLS, TYPES[1]: OPAQUE}
    seen: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in TYPES}  # each watch's view
    queues = {t: list(s) for t, s in streams.items()}
    picks, relists = iter(order), iter(relist)
    while queues[TYPES[0]] or queues[TYPES[1]]:
        before, gen = store.snapshot(), store.generation
        again = next(relists, None)
        if again is not None:
            store.replace_all(GVK, list(seen[again].values()), where=where[again])
        else:
            first = TYPES[0] if next(picks, True) else TYPES[1]
            t = first if queues[first] else next(k for k in queues if queues[k])
            etype, obj = queues[t].pop(0)
            name = obj["metadata"]["name"]
            if etype == "DELETED":
                seen[t].pop(name, None)
            else:
                seen[t][name] = obj
            store.apply(etype, obj, kind=GVK, where=where[t])
        after = store.snapshot()
        assert (store.generation != gen) == (after != before), (before, after)
        assert set(store._hidden) <= set(store._entries)
        assert set(store._rejected) == set(store._errors)
        for key, rejected in store._rejected.items():
            assert len(rejected) <= 2 and len({id(where_of(o)) for o, _ in rejected}) == len(
                rejected), "one rejected object per watch"
    assert store.snapshot().secrets == ()
    assert (store._entries, store._hidden, store._errors, store._rejected) == ({}, {}, {}, {})


def where_of(obj: dict[str, Any]) -> Any:
    return TLS if TLS(obj) else OPAQUE


# -- validation: a docker config nested deeper than Python's decoder goes ---------------------


def _docker_secret(config: str) -> str:
    encoded = base64.b64encode(config.encode()).decode()
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: pull}\n"
            f"type: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {encoded}\n")


def test_a_deeply_nested_docker_config_loads_as_the_api_server_reads_it() -> None:
    # Before: json.loads recursed once per level and raised RecursionError near 1,000 levels,
    # out of parse_manifests (a traceback from ``check``/``serve``, not a ValidationError).
    # Go's encoding/json nests up to 10,000 levels (maxNestingDepth): the API server takes
    # this Secret, and refuses one level more with "exceeded max depth".
    deep = '{"auths": ' + "[" * 3000 + "]" * 3000 + "}"
    res = ingresslib.parse_manifests(_docker_secret(deep), source="pull.yaml")
    assert [s.metadata.name for s in res.secrets] == ["pull"]
    with pytest.raises(ingresslib.ValidationError, match="exceeded max depth"):
        ingresslib.parse_manifests(_docker_secret("[" * 10001 + "]" * 10001), source="pull.yaml")
    with pytest.raises(ingresslib.ValidationError, match="cannot unmarshal array"):
        ingresslib.parse_manifests(_docker_secret("[" * 3000 + "]" * 3000), source="pull.yaml")
    with pytest.raises(ingresslib.ValidationError, match="invalid JSON"):
        ingresslib.parse_manifests(_docker_secret("{" * 3000 + "}" * 3000), source="pull.yaml")


def test_a_docker_config_number_out_of_float64_range_is_refused() -> None:
    # Before: Python read 1e400 as inf (and a 400-digit integer as an int): the Secret loaded.
    # Go decodes a number into interface{} as a float64 and refuses one out of its range
    # (encoding/json decode.go, convertNumber: UnmarshalTypeError{Value: "number " + s, Type:
    # float64}), so the API server refuses the Secret.
    for config in ('{"auths": {"r": {"n": 1e400}}}', '{"n": -1' + "0" * 400 + "}",
                   '{"a": ' + "[" * 3000 + "1e999" + "]" * 3000 + "}"):
        with pytest.raises(ingresslib.ValidationError,
                           match="cannot unmarshal number .* into Go value of type float64"):
            ingresslib.parse_manifests(_docker_secret(config), source="pull.yaml")
    res = ingresslib.parse_manifests(_docker_secret('{"n": 1e308, "m": 12345678901234567890}'))
    assert len(res.secrets) == 1


# -- YAML: merges of merges ----------------------------------------------------------------------


def test_merges_of_merges_take_time_linear_in_the_text() -> None:
    # Before: every merge went through the merged map's pairs again, its own merges included:
    # eight short lines, each merging the line before ten times, took about 25 s (ten times as
    # long per line more; twelve lines, hours) -- a manifest that stalls ``check`` and
    # ``serve``. Each map is now flattened once. The result is go-yaml's (the first of a list
    # of maps wins, a key written in the map wins over a merged one).
    import time

    lines = ["a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k9: 9}"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} {{<<: [{', '.join([f'*a{i - 1}'] * 10)}], k{i}: x}}")
    lines.append("kind: Service\napiVersion: v1\nmetadata: {name: web, labels: {<<: *a7}}")
    start = time.monotonic()
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.parse_manifests("\n".join(lines) + "\n", source="bomb.yaml")
    assert time.monotonic() - start < 5
    # The labels are the merged map: integers where a label value must be a string, reported
    # per key with the values go-yaml's order gives (k1..k7 written as "x" along the way).
    text = str(info.value)
    assert "metadata.labels[k0]" in text and "metadata.labels[k8]" in text
    assert "metadata.labels[k1]" not in text and "metadata.labels[k7]" not in text


def test_a_merge_of_an_alias_of_a_list_of_maps_is_refused_as_kubectl_does() -> None:
    # go-yaml v2 decode.go, merge: "case aliasNode: if n.alias != nil && n.alias.kind !=
    # mappingNode { failWantMap() }": an alias merged must name a map; a sequence of maps is
    # taken only written in place. Before: PyYAML's composer hands both over as the same
    # sequence node, and the labels loaded (kubectl refuses the file).
    svc = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  labels:\n    <<: {}\n"
           "spec:\n  ports: [{port: 80}]\n")
    aliased = "x-common: &common [{app: web}, {tier: front}]\n" + svc.replace(
        "<<: {}", "<<: *common")
    with pytest.raises(ingresslib.ValidationError,
                       match=r"aliased\.yaml: line 7, column 5: .*map merge requires map or "
                             r"sequence of maps"):
        ingresslib.parse_manifests(aliased, source="aliased.yaml")
    inline = svc.replace("<<: {}", "<<: [{app: web}, {tier: front}]")
    res = ingresslib.parse_manifests(inline, source="inline.yaml")
    assert dict(res.services[0].metadata.labels) == {"app": "web", "tier": "front"}
    each = "x-app: &app {app: web}\n" + svc.replace("<<: {}", "<<: [*app, {tier: front}]")
    res = ingresslib.parse_manifests(each, source="each.yaml")
    assert dict(res.services[0].metadata.labels) == {"app": "web", "tier": "front"}
