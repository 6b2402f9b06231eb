"""Seams between session 23's landings (A7): where two changes, each reviewed alone, meet.

Each test crosses two landings; each failed on the tree before its fix.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from ingresslib import Resources, ValidationError
from ingresslib._config import parse_configmap

ROOT = Path(__file__).resolve().parent.parent


def _service(**spec: Any) -> dict[str, Any]:
    return {"api_version": "v1", "kind": "Service", "metadata": {"name": "s"},
            "spec": {"ports": [{"port": 80}], **spec}}


# --- X9 (the client's cluster_ips spelling) x Y1 (type checks of unread leaves) ------------------
# X9 made `cluster_ips`/`external_ips` known by adding them to the decoder's shallow set, which
# Y1's checks never see: `clusterIPs: 5` and `cluster_i_ps: 5` were refused as the API server's
# decoder refuses them, `cluster_ips: 5` (the newer client's spelling of the same field) loaded.

@pytest.mark.parametrize("field,json_name", [
    ("clusterIPs", "clusterIPs"), ("cluster_i_ps", "clusterIPs"), ("cluster_ips", "clusterIPs"),
    ("externalIPs", "externalIPs"), ("external_i_ps", "externalIPs"),
    ("external_ips", "externalIPs"),
])
def test_every_spelling_of_cluster_ips_is_type_checked(field: str, json_name: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Resources.from_dicts([_service(**{field: 5})])
    assert f"spec.{json_name}: Invalid value: 5: expected array, got integer" in str(exc.value)
    with pytest.raises(ValidationError) as exc:
        Resources.from_dicts([_service(**{field: ["10.0.0.1", 7]})])
    assert f"spec.{json_name}[1]: Invalid value: 7: expected string, got integer" in str(exc.value)
    # (clusterIPs needs clusterIP, its first value: session 35's x36)
    res = Resources.from_dicts([_service(cluster_ip="10.0.0.1", **{field: ["10.0.0.1"]})])
    assert not res.warnings


def test_newer_client_spelling_still_known_beside_an_unknown_field() -> None:
    res = Resources.from_dicts([_service(cluster_ip="10.0.0.1", cluster_ips=["10.0.0.1"], external_ips=None,
                                         cluster_ipz=["x"])])
    assert [str(w) for w in res.warnings] == [
        'Service default/s: unknown field "spec.cluster_ipz"']


# --- Y3 (use-forwarded-headers without proxy-real-ip-cidr warns) x README's ConfigMap -----------
# README's serve section shows the ConfigMap to pass to --config: it turned on
# use-forwarded-headers alone, which Y3 now (rightly) warns does nothing.

def _doc_configmaps() -> list[tuple[str, dict[str, Any]]]:
    found = []
    docs = [ROOT / "README.md", ROOT / "ingresslib" / "proxy" / "API.md",
            *sorted((ROOT / "docs").glob("*.md"))]
    for path in docs:
        for block in re.findall(r"```ya?ml\n(.*?)```", path.read_text(encoding="utf-8"), re.S):
            try:
                documents = list(yaml.safe_load_all(block))
            except yaml.YAMLError:
                continue  # (a fragment, not a manifest)
            # (a --tcp-services-configmap map is no controller ConfigMap: its keys are ports)
            found += [(path.name, d) for d in documents
                      if isinstance(d, dict) and d.get("kind") == "ConfigMap"
                      and not all(str(k).isdigit() for k in (d.get("data") or {"x": 1}))]
    return found


def test_the_docs_configmaps_load_without_warnings() -> None:
    maps = _doc_configmaps()
    assert any(name == "README.md" for name, _ in maps)
    for name, doc in maps:
        assert parse_configmap(doc).warnings == (), name


# --- Y6 (serve's output with a closed stderr/stdout) x the CLI's other subcommands -------------
# Y6 taught serve that `sys.stderr` is None under `2>&-` (print(file=None) writes to stdout); the
# other subcommands still printed their stderr lines onto stdout: `check -o json` wrote its
# error lines into the JSON document, `demo` its `listening on` lines among its report.

def _run_closed(args: list[str], closed: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    script = 'exec "$0" -m ingresslib "$@" ' + closed
    return subprocess.run(["sh", "-c", script, sys.executable, *args], cwd=tmp_path, env=env,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)


def test_check_json_with_stderr_closed_is_one_json_document(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "spec: {ports: [{port: x}]}\n", encoding="utf-8")
    run = _run_closed(["check", "-f", str(bad), "-o", "json"], "2>&-", tmp_path)
    assert run.returncode == 2
    doc = json.loads(run.stdout)  # (the error lines were written before it)
    assert doc["ok"] is False and doc["errors"][0]["field"] == "spec.ports[0].port"


def test_check_text_with_stdout_closed_keeps_its_errors_on_stderr(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
                   "spec: {ports: [{port: x}]}\n", encoding="utf-8")
    run = _run_closed(["check", "-f", str(bad)], ">&-", tmp_path)
    assert run.returncode == 2
    assert 'Invalid value: "x"' in run.stderr and "Traceback" not in run.stderr


def test_demo_once_with_stderr_closed_writes_no_listening_lines_to_stdout(tmp_path: Path) -> None:
    run = _run_closed(["demo", "--once"], "2>&-", tmp_path)
    assert run.returncode == 0, run.stdout
    assert "self-check passed" in run.stdout
    assert "listening on" not in run.stdout


# --- Y1 (JSON types of the leaves the decoder skips) x Z5 (YAML integers of any size) ----------
# Y1 checked that `metadata.generation` holds an integer, not that it fits the Go int64 it is:
# go-yaml reads 9223372036854775808 (a uint64) and the API server's decoder then refuses it
# ("cannot unmarshal number 9223372036854775808 into Go struct field ObjectMeta.metadata.
# generation of type int64"); it loaded. Likewise the int32 leaves (healthCheckNodePort...).

_SVC_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: s
  {meta}
spec:
  ports: [{{port: 80}}]
  {spec}
"""


@pytest.mark.parametrize("meta,spec,where,value,gotype", [
    ("generation: 9223372036854775808", "", "metadata.generation", 2**63, "int64"),
    ("deletionGracePeriodSeconds: 18446744073709551615", "",
     "metadata.deletionGracePeriodSeconds", 2**64 - 1, "int64"),
    ("", "healthCheckNodePort: 2147483648", "spec.healthCheckNodePort", 2**31, "int32"),
    ("", "sessionAffinityConfig: {clientIP: {timeoutSeconds: -2147483649}}",
     "spec.sessionAffinityConfig.clientIP.timeoutSeconds", -2**31 - 1, "int32"),
])
def test_an_unread_integer_past_its_go_type_is_refused(meta: str, spec: str, where: str,
                                                        value: int, gotype: str) -> None:
    from ingresslib import parse_manifests

    with pytest.raises(ValidationError) as exc:
        parse_manifests(_SVC_YAML.format(meta=meta, spec=spec))
    assert str(exc.value) == (f"Service default/s: {where}: Invalid value: {value}: "
                              f"out of range: the field is an {gotype}")


@pytest.mark.parametrize("meta,spec", [
    ("generation: 9223372036854775807", ""), ("generation: -9223372036854775808", ""),
    ("", "healthCheckNodePort: 2147483647"),
    ("", "sessionAffinityConfig: {clientIP: {timeoutSeconds: -2147483648}}"),
])
def test_an_unread_integer_at_its_go_types_bounds_loads(meta: str, spec: str) -> None:
    from ingresslib import parse_manifests

    assert not parse_manifests(_SVC_YAML.format(meta=meta, spec=spec)).warnings


def test_an_ingress_status_port_past_int32_from_a_client_dict_is_refused() -> None:
    ing = {"api_version": "networking.k8s.io/v1", "kind": "Ingress",
           "metadata": {"name": "w", "generation": 3},
           "spec": {"default_backend": {"service": {"name": "s", "port": {"number": 80}}}},
           "status": {"load_balancer": {"ingress": [{"ip": "192.0.2.1",
                                                     "ports": [{"port": 2**31}]}]}}}
    with pytest.raises(ValidationError) as exc:
        Resources.from_dicts([ing])
    assert "status.loadBalancer.ingress[0].ports[0].port: Invalid value: 2147483648: " \
           "out of range: the field is an int32" in str(exc.value)
    ing["status"]["load_balancer"]["ingress"][0]["ports"][0]["port"] = 443
    Resources.from_dicts([ing])


def test_demo_once_goes_on_when_its_stderr_reader_has_left(tmp_path: Path) -> None:
    # Y6 made serve drop a stderr line it cannot write (`serve ... 2>&1 | grep -m1 'listening
    # on'`: the reader leaves after the first line); demo's `listening on` line raised
    # BrokenPipeError, which ended the demo (exit 1) before its self-check ran.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.Popen([sys.executable, "-m", "ingresslib", "demo", "--once"], cwd=tmp_path,
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None and p.stdout is not None
    p.stderr.close()  # (before the child writes anything there)
    try:
        out = p.stdout.read()
    finally:
        p.stdout.close()
        code = p.wait(timeout=60)
    assert code == 0, out
    assert "self-check passed" in out and "Traceback" not in out


# --- Z1 (a canary Prefix / pairs with the host's defaultBackend) x the Router's endpoint-only
# update (Y4's entries) and IngressASGI: guards (they held on the old tree too) -----------------

_P = "nginx.ingress.kubernetes.io/"


def _root_canary_objects(canary_ip: str, default_ip: str) -> list[dict[str, Any]]:
    def ing(name: str, path: str, svc: str, ts: str, ann: dict[str, str],
            default: str | None) -> dict[str, Any]:
        spec: dict[str, Any] = {"rules": [{"host": "x.test", "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}}]}
        if default:
            spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "annotations": ann, "creationTimestamp": ts},
                "spec": spec}

    def backend(name: str, ip: str) -> list[dict[str, Any]]:
        return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                 "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
                {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                 "metadata": {"name": name + "-1",
                              "labels": {"kubernetes.io/service-name": name}},
                 "addressType": "IPv4", "ports": [{"port": 8080}],
                 "endpoints": [{"addresses": [ip]}]}]

    can = {_P + "canary": "true", _P + "canary-by-header": "X-Canary"}
    return [ing("main", "/a", "m", "2024-01-01T00:00:00Z", {}, "d"),
            ing("can", "/", "c", "2024-01-02T00:00:00Z", can, None),
            *backend("m", "10.0.0.1"), *backend("d", default_ip), *backend("c", canary_ip)]


def _answers(router: Any) -> list[tuple[str, Any, bool]]:
    out = []
    for path in ("/zzz", "/a"):
        for headers in ([], [("X-Canary", "always")]):
            for _ in range(2):  # (the second request takes the compiled entry)
                d = router.route("GET", "x.test", path, headers)
                out.append((d.service, d.endpoint, d.canary))
    return out


@pytest.mark.parametrize("after", [("10.0.0.9", "10.0.0.2"), ("10.0.0.3", "10.0.0.8")])
def test_root_canary_after_an_endpoint_only_update_answers_as_a_fresh_router(
        after: tuple[str, str]) -> None:
    from ingresslib._router import Router

    r = Router(Resources.from_dicts(_root_canary_objects("10.0.0.3", "10.0.0.2")), seed=0)
    assert _answers(r)[2] == ("c", ("10.0.0.3", 8080), True)
    res = Resources.from_dicts(_root_canary_objects(*after))
    r.update(res)
    assert _answers(r) == _answers(Router(res, seed=0))


def test_ingress_asgi_sends_the_hosts_misses_to_the_root_canary() -> None:
    import asyncio

    from ingresslib import IngressASGI
    from ingresslib._router import Router

    router = Router(Resources.from_dicts(_root_canary_objects("10.0.0.3", "10.0.0.2")), seed=0)

    def app(name: str) -> Any:
        async def answer(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": name.encode()})
        return answer

    asgi = IngressASGI(router, backends={f"default/{n}": app(n) for n in "mdc"})

    async def call(path: str, headers: list[tuple[bytes, bytes]]) -> bytes:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "client": ("127.0.0.1", 5),
                 "server": ("127.0.0.1", 80), "headers": [(b"host", b"x.test"), *headers]}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asgi(scope, receive, send)
        return b"".join(m.get("body", b"") for m in sent)

    assert asyncio.run(call("/zzz", [])) == b"d"
    assert asyncio.run(call("/zzz", [(b"x-canary", b"always")])) == b"c"
    assert asyncio.run(call("/a/b", [(b"x-canary", b"always")])) == b"m"


# --- Z5 (!!omap / !!pairs read as sequences; the ConfigMap shares the manifests' reader) x Y3's
# ConfigMap checks: `data` of the wrong type was "Invalid value: "list": must be a map of
# strings", the Python type's name, where the manifests say "expected object, got array".

@pytest.mark.parametrize("data,shown", [
    ('!!omap [{proxy-body-size: "1m"}]', "Invalid value: expected object, got array"),
    ('!!pairs [{proxy-body-size: "1m"}]', "Invalid value: expected object, got array"),
    ("[a]", "Invalid value: expected object, got array"),
    ("5", "Invalid value: 5: expected object, got integer"),
    ('"x"', 'Invalid value: "x": expected object, got string'),
])
def test_configmap_data_of_the_wrong_type_is_named_as_json_types(tmp_path: Path, data: str,
                                                                 shown: str) -> None:
    from ingresslib._config import load_config

    path = tmp_path / "cm.yaml"
    path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {data}\n",
                    encoding="utf-8")
    with pytest.raises(ValidationError) as exc:
        load_config(path)
    text = str(exc.value)
    assert f"ConfigMap default/c: data: {shown}" in text, text
    assert "map[string]string" in text and '"list"' not in text
