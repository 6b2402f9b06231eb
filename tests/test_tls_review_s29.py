"""Session 29 review (R9) of the day's TLS changes: the off-loop rebuild of the ``ssl-*``
settings, ``ssl-dh-param`` and a host-less rule's ``ssl-ciphers``. Handshakes on 127.0.0.1.

- ``serve --kubernetes``: a ConfigMap edit adding ``ssl-dh-param`` did not read its Secret
  until an Ingress or class changed (``_kube_auth.AuthSecrets.refresh`` skipped working out the
  named Secrets): now the reload tells the watch (``_kube_auth.refs_changed``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme

from test_tls_s29 import DHE, FFDHE3072, _dhe, _settings

pytestmark = pytest.mark.network


@pytest.fixture(scope="module")
def rsa_ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA)


def _b64(data: bytes | str) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _tls_secret_dict(name: str, cert: trustme.LeafCert) -> dict[str, Any]:
    crt = b"".join(p.bytes() for p in cert.cert_chain_pems)
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"tls.crt": _b64(crt), "tls.key": _b64(cert.private_key_pem.bytes())}}


def _tls_ingress_dict(name: str, host: str, secret: str) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"tls": [{"hosts": [host], "secretName": secret}],
                     "rules": [{"host": host}]}}


# --- ssl-dh-param under serve --kubernetes ---------------------------------------------------


@pytest.mark.asyncio
async def test_fix_kubernetes_configmap_edit_adding_ssl_dh_param_reads_its_secret(
        tmp_path: Path, rsa_ca: trustme.CA) -> None:
    # Before: the named Secrets were worked out again only when the Ingresses or classes
    # changed; the ConfigMap edit naming the DH Secret left it unread (no DHE) until then.
    from tests._fake_kube import FakeKube, kubeconfig_dict
    from tests.test_serve_cli import _start_serve, _stop

    kube = FakeKube()
    url = await kube.start()
    for obj in (_tls_ingress_dict("a", "a.test", "a"),
                _tls_secret_dict("a", rsa_ca.issue_cert("a.test", key_type=trustme.KeyType.RSA)),
                {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                 "metadata": {"name": "dh", "namespace": "default"},
                 "data": {"dhparam.pem": _b64(FFDHE3072)}}):
        kube.put(obj)
    kc = tmp_path / "kubeconfig"
    kc.write_text(json.dumps(kubeconfig_dict(url)))
    conf = tmp_path / "configmap.yaml"
    conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n")
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(kc), "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--config", str(conf), "--reload-interval", "0.05")
    err = ""
    try:
        loop = asyncio.get_running_loop()
        port = ports["https"]
        # The first table is in (a.test's own certificate), without DH parameters.
        deadline = loop.time() + 10
        while True:
            try:
                ctx = ssl.create_default_context()
                rsa_ca.configure_trust(ctx)
                r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                     server_hostname="a.test")
                w.close()
                break
            except (ssl.SSLError, OSError):
                assert loop.time() < deadline
                await asyncio.sleep(0.05)
        assert await _dhe(port, rsa_ca) is None
        conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                        "data: {ssl-dh-param: default/dh}\n")
        deadline = loop.time() + 8   # (at once here; a loaded machine is slow)
        while await _dhe(port, rsa_ca) != DHE:
            assert loop.time() < deadline, "the DH Secret was never read"
            await asyncio.sleep(0.05)
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
    assert "Traceback" not in err, err


# --- ssl-dh-param: what the contexts load, what check says -----------------------------------


def _dh_res(rsa_ca: trustme.CA, n: int = 2) -> Any:
    """Resources of ``n`` hosts with certificates, and a function giving them with a DH
    Secret of a given ``dhparam.pem``."""
    from ingresslib._resources import Resources
    from test_tls_s29 import _dh_secret, _ing, _secret

    ings = tuple(_ing(f"h{i}", f"h{i}.test", f"h{i}") for i in range(n))
    certs = tuple(_secret(f"h{i}", rsa_ca.issue_cert(f"h{i}.test", key_type=trustme.KeyType.RSA))
                  for i in range(n))
    return lambda pem: Resources(ingresses=ings, secrets=(*certs, _dh_secret("dh", pem)))


def test_fix_dhparam_pem_contexts_load_the_parameters_block_alone(
        rsa_ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: whatever followed the DH PARAMETERS block in the Secret (here 1 MiB, a
    # Kubernetes Secret's limit; from files, no limit) was written into every context's file
    # and kept in the settings: 1,000 certificates with 10 MB loaded 10 GB. Now the block
    # alone, as OpenSSL reads it; the parameters are the same (DHE is offered).
    from ingresslib import _tls
    from ingresslib._tls import CertificateStore

    sizes: list[int] = []
    real = _tls._load_dh

    def load(ctx: ssl.SSLContext, pem: bytes) -> None:
        sizes.append(len(pem))
        real(ctx, pem)
    monkeypatch.setattr(_tls, "_load_dh", load)
    with_dh = _dh_res(rsa_ca)
    store = CertificateStore()
    store.update(with_dh(FFDHE3072 + "\n" + "x" * (1 << 20) + "\n" + FFDHE3072))
    store.configure_tls(_settings(ssl_dh_param="default/dh"))
    assert sizes and max(sizes) <= len(FFDHE3072) + 64, sizes[:5]
    assert len(store._tls.dh_pem) <= len(FFDHE3072) + 64
    # The same parameters as the Secret holding the block alone: an update with it changes
    # nothing (no rebuild), and DHE is negotiated with them.
    before = store.context_for("h0.test")
    assert not store.update(with_dh(FFDHE3072))
    assert store.context_for("h0.test") is before
    assert _memory_handshake(store, "h0.test", DHE)[1] == DHE


def _memory_handshake(store: Any, sni: str | None, ciphers: str | None = None
                      ) -> tuple[bytes, str]:
    """A handshake in memory (no socket) with the context ``store`` answers ``sni`` with
    (TLS 1.2 when ``ciphers`` are given): (the served certificate, DER; the cipher)."""
    server_ctx = store.context_for(sni)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    if ciphers:
        client_ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        client_ctx.set_ciphers(ciphers)
    cin, cout, sin, sout = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(cin, cout, server_hostname=sni)
    server = server_ctx.wrap_bio(sin, sout, server_side=True)
    for _ in range(10):
        for obj in (client, server):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
        sin.write(cout.read())
        cin.write(sout.read())
        if client.version() is not None and server.version() is not None:
            try:
                client.do_handshake()
                server.do_handshake()
            except ssl.SSLWantReadError:
                continue
            break
    der = client.getpeercert(binary_form=True)
    assert der is not None
    cipher = client.cipher()
    assert cipher is not None
    return der, cipher[0]


def test_fix_check_reports_the_ssl_dh_param_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before: ingresslib check --config said nothing of an ssl-dh-param Secret serve would
    # warn about (missing, no dhparam.pem, not DH PARAMETERS, refused by OpenSSL).
    from ingresslib._cli import main

    man = tmp_path / "m.yaml"
    man.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a, namespace: "
        "default}\nspec:\n  rules: [{host: a.test}]\n---\napiVersion: v1\nkind: Secret\n"
        "metadata: {name: dh, namespace: default}\ntype: Opaque\nstringData:\n"
        "  dhparam.pem: |\n    -----BEGIN DSA PARAMETERS-----\n    MIIB\n"
        "    -----END DSA PARAMETERS-----\n")
    cases = {"default/dh": "must start with a '-----BEGIN DH PARAMETERS-----' block",
             "default/nope": "Secret default/nope not found"}
    for ref, said in cases.items():
        conf = tmp_path / "c.yaml"
        conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                        f"data: {{ssl-dh-param: {ref}}}\n")
        assert main(["check", "-f", str(man), "--config", str(conf)]) == 0
        out, err = capsys.readouterr()
        assert "warning: ConfigMap: data.ssl-dh-param: " in err and said in err, err
        assert "1 warning(s)" in out, out
    # No ssl-dh-param: nothing said of it.
    conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n")
    assert main(["check", "-f", str(man), "--config", str(conf)]) == 0
    assert "ssl-dh-param" not in capsys.readouterr().err


# --- the off-loop rebuild --------------------------------------------------------------------


def test_fix_a_failing_tls_build_is_a_failed_reload_keeping_the_contexts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Before: an exception building the new contexts (EMFILE writing a certificate's file)
    # escaped Reloader.check: no failure counted or reported (on_reload, the reload metric),
    # and the poll loop logged "polling the files failed; trying again". Now a failed reload:
    # said, counted, the contexts and settings in use kept; the next reload applies the edit.
    from ingresslib import Router, _tls
    from ingresslib._config import load_config
    from ingresslib._load import load_manifests
    from ingresslib._serve_reload import Reloader
    from ingresslib._tls import CertificateStore
    from ingresslib.proxy._server import ProxyServer
    from test_tls_s29 import _bump, _configmap_yaml, _ingress_yaml, _secret_yaml

    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    man = tmp_path / "m"
    man.mkdir()
    (man / "a.yaml").write_text(_ingress_yaml("a", "a.test", "a") + "---\n"
                                + _secret_yaml("a", ca.issue_cert("a.test")))
    conf = tmp_path / "c.yaml"
    conf.write_text(_configmap_yaml({"ssl-protocols": "TLSv1.2 TLSv1.3"}))
    real = _tls._new_context
    broken = [True]

    def new_context(*a: Any, **kw: Any) -> ssl.SSLContext:
        tls = kw.get("tls")
        if broken[0] and tls is not None and tls.protocols == ("tlsv1.3",):
            raise OSError(24, "Too many open files")
        return real(*a, **kw)
    monkeypatch.setattr(_tls, "_new_context", new_context)
    said: list[tuple[bool, str]] = []

    async def main() -> None:
        res = load_manifests(str(man))
        cfg = load_config(str(conf))
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), cfg.settings, cert_store=store)
        reloader = Reloader(server, [str(man)], ingress_class=None, controller=None,
                            config=cfg, config_path=str(conf), settle=0,
                            on_reload=lambda ok, msg: said.append((ok, msg)))
        _bump(conf, _configmap_yaml({"ssl-protocols": "TLSv1.3"}))
        assert await reloader.check() is False
        assert reloader.failures == 1 and said == [(False, reloader.last_error)]
        assert "Too many open files" in (reloader.last_error or "")
        assert "building the contexts failed" in caplog.text
        for ctx in (store.context_for("a.test"), store.default_context):
            assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
        assert store.hosts == {"a.test"}
        assert server.settings.ssl_protocols == "TLSv1.2 TLSv1.3"
        # The next reload (SIGHUP) works.
        broken[0] = False
        assert await reloader.check(force=True) is True
        for ctx in (store.context_for("a.test"), store.default_context):
            assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
        assert server.settings.ssl_protocols == "TLSv1.3"
    asyncio.run(main())


def _signature(store: Any, names: list[str | None]) -> dict[str | None, Any]:
    """What each name gets from ``store``: the certificate served, the cipher negotiated and
    the context's protocol bounds; and the listed hosts."""
    out: dict[str | None, Any] = {}
    for name in names:
        ctx = store.context_for(name)
        out[name] = (_memory_handshake(store, name)[0], ctx.minimum_version,
                     ctx.maximum_version, [c["name"] for c in ctx.get_ciphers()])
    out["hosts"] = store.hosts
    return out


@pytest.mark.parametrize("seed", range(6))
def test_updates_interleaved_with_off_loop_rebuilds_end_as_a_fresh_build(seed: int) -> None:
    # update() (cluster snapshots, a worker thread) while reloads ask for new settings: the
    # end state is what a fresh store built with the last settings and the last Resources
    # serves (certificates added meanwhile served, removed ones gone, the last settings).
    import random
    import threading

    from ingresslib._resources import Resources
    from ingresslib._tls import CertificateStore
    from ingresslib._tls_reconfigure import configure_tls_off_loop
    from test_tls_s29 import _ing, _secret

    rnd = random.Random(seed)
    ca = _interleave_ca()
    hosts = [f"h{i}.test" for i in range(5)]
    secrets = {h: _secret(h, ca.issue_cert(h)) for h in hosts}

    def res_of(names: list[str]) -> Resources:
        return Resources(ingresses=tuple(_ing(n, n, n) for n in names),
                         secrets=tuple(secrets[n] for n in names))
    choices = [_settings(ssl_protocols="TLSv1.3"), _settings(ssl_protocols="TLSv1.2"),
               _settings(ssl_ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")]
    last_names: list[str] = ["h0.test"]
    store = CertificateStore()
    store.update(res_of(last_names))

    def updates() -> None:
        for _ in range(8):
            names = rnd.sample(hosts, rnd.randint(0, len(hosts)))
            store.update(res_of(names))
            last_names[:] = names

    async def main() -> Any:
        worker = asyncio.create_task(asyncio.to_thread(updates))
        last = choices[0]
        for _ in range(4):
            last = choices[rnd.randrange(len(choices))]
            await configure_tls_off_loop(store, last)
            await asyncio.sleep(0)
        await worker
        return last
    last = asyncio.run(main())
    fresh = CertificateStore()
    fresh.configure_tls(last)
    fresh.update(res_of(last_names))
    names: list[str | None] = [*hosts, "unknown.test", None]
    # The generated default certificates differ (one per store): compared by what they are.
    got, want = _signature(store, names), _signature(fresh, names)
    for name in names:
        if name not in last_names:
            assert got[name][0] == store_default_der(store)
            assert want[name][0] == store_default_der(fresh)
            got[name] = got[name][1:]
            want[name] = want[name][1:]
    assert got == want


_CA: list[trustme.CA] = []


def _interleave_ca() -> trustme.CA:
    if not _CA:
        _CA.append(trustme.CA(key_type=trustme.KeyType.ECDSA))
    return _CA[0]


def store_default_der(store: Any) -> bytes:
    return ssl.PEM_cert_to_DER_cert(store._default_cert[0].decode().split(
        "-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")


def test_serve_stopping_mid_build_leaves_the_contexts_and_logs_no_error(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # The reload task cancelled while the worker thread builds (serve stopping): nothing is
    # swapped in, no error is logged, and a later request for the settings applies them.
    import threading

    from ingresslib._resources import Resources
    from ingresslib._tls import CertificateStore
    from ingresslib._tls_reconfigure import configure_tls_off_loop
    from test_tls_s29 import _ing, _secret, _slow_builder

    entered, release = threading.Event(), threading.Event()
    _slow_builder(monkeypatch, ("tlsv1.3",), entered, release, wait=1.0)
    ca = _interleave_ca()
    res = Resources(ingresses=(_ing("a", "a.test", "a"),),
                    secrets=(_secret("a", ca.issue_cert("a.test")),))
    store = CertificateStore()
    store.update(res)

    async def main() -> None:
        task = asyncio.create_task(configure_tls_off_loop(
            store, _settings(ssl_protocols="TLSv1.3")))
        async with asyncio.timeout(2):
            while not entered.is_set():
                await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
    asyncio.run(main())   # (waits for the worker thread: its build is dropped)
    assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_2
    assert "building the contexts failed" not in caplog.text

    async def again() -> None:
        await configure_tls_off_loop(store, _settings(ssl_protocols="TLSv1.3"))
    asyncio.run(again())
    assert store.context_for("a.test").minimum_version == ssl.TLSVersion.TLSv1_3
    assert store.hosts == {"a.test"}


def test_default_server_ciphers_with_reject_handshake_twins_and_aliases() -> None:
    # A host-less rule's ssl-ciphers are the default server's: no SNI and unknown names (and
    # a name that is not ASCII) get them; with ssl-reject-handshake those are refused (nginx
    # writes ssl_reject_handshake in that same server). Every name with a server of its own
    # keeps the ConfigMap's: rule hosts, server-alias names, www twins, names under a "*."
    # rule host.
    from ingresslib import parse_manifests
    from ingresslib._resources import Resources
    from ingresslib._tls import CertificateStore
    from test_tls_s29 import AES256, P, _secret

    def ing(name: str, host: str | None, annotations: dict[str, str], tls: str = "") -> str:
        anns = "".join(f"    {k}: \"{v}\"\n" for k, v in annotations.items()) or "    {}\n"
        head = f"host: '{host}'\n    " if host else ""
        return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: {name}\n"
                f"  namespace: default\n  annotations:\n{anns}spec:\n{tls}  rules:\n"
                f"  - {head}http: {{paths: [{{path: /, pathType: Prefix, backend: "
                "{service: {name: s, port: {number: 80}}}}]}\n---\n")
    text = (ing("catch", None, {P + "ssl-ciphers": AES256})
            + ing("a", "a.test", {P + "server-alias": "alias.test",
                                  P + "from-to-www-redirect": "true"},
                  "  tls: [{hosts: [a.test], secretName: a}]\n")
            + ing("plain", "plain.test", {P + "from-to-www-redirect": "true"})
            + ing("w", "*.w.test", {}))
    ca = _interleave_ca()
    res = Resources(ingresses=parse_manifests(text).ingresses,
                    secrets=(_secret("a", ca.issue_cert("a.test", "www.a.test")),))
    own = ["a.test", "www.a.test", "alias.test", "plain.test", "www.plain.test", "x.w.test"]
    for reject in (False, True):
        store = CertificateStore()
        store.configure_tls(_settings(ssl_reject_handshake=str(reject).lower()))
        assert store.update(res) == []
        default_server = store._default_server
        assert default_server is not None
        for name in own:
            ctx = store.context_for_hello(name.encode())
            assert ctx is not default_server and (store._reject is None
                                                  or ctx not in store._reject), name
        for raw in (None, b"unknown.test", b"w.test", "\u00ff".encode()):
            ctx = store.context_for_hello(raw)
            if reject:
                assert store._reject is not None and ctx in store._reject, raw
            else:
                assert ctx is default_server, raw


def test_fix_ssl_dh_param_with_spaces_as_proxysettings_accepts_it(rsa_ca: trustme.CA) -> None:
    # ProxySettings(ssl_dh_param=" default/dh ") is accepted (its check strips the value, as
    # the ConfigMap's reading does); the store then refused it ("the namespace ' default' is
    # not ...": no DH parameters). Now read as the ConfigMap's "default/dh".
    from ingresslib._tls import CertificateStore
    from ingresslib.proxy import ProxySettings

    store = CertificateStore()
    store.configure_tls(ProxySettings(ssl_dh_param=" default/dh "))
    assert not [p for p in store.update(_dh_res(rsa_ca, 1)(FFDHE3072)) if "dh-param" in str(p)]
    assert _memory_handshake(store, "h0.test", DHE)[1] == DHE


def test_fix_no_auth_secrets_says_the_dh_secret_is_not_read(
        caplog: pytest.LogCaptureFixture) -> None:
    # serve --kubernetes --no-auth-secrets reads no Opaque Secret, the ssl-dh-param one
    # included (README): the store's only word was "Secret default/dh not found" about a
    # Secret that exists. Now serve says why, once per value (each reload and cluster
    # snapshot asks again).
    from ingresslib._serve import _dh_param_named

    said: list[str] = [""]
    for value in ("default/dh", "default/dh", "", "other/dh"):
        _dh_param_named(_settings(ssl_dh_param=value) if value else _settings(), said)
    lines = [r.getMessage() for r in caplog.records if "--no-auth-secrets" in r.getMessage()]
    assert len(lines) == 2 and "default/dh" in lines[0] and "other/dh" in lines[1], lines


def test_fix_server_alias_of_a_hostless_rule_is_the_default_servers_name() -> None:
    # ingress-nginx: a host-less rule's server-alias names go into the default server "_"'s
    # server_name (createServers: servers[defServerName].Aliases), so a ClientHello naming
    # one gets that server: its ssl-ciphers, and ssl_reject_handshake (written there only).
    # Before: taken for a server of its own: the ConfigMap's ciphers, and never refused.
    from ingresslib import parse_manifests
    from ingresslib._tls import CertificateStore
    from test_tls_s29 import AES128, AES256, P

    res = parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: catch\n"
        f"  namespace: default\n  annotations: {{{P}ssl-ciphers: \"{AES256}\", "
        f"{P}server-alias: dalias.test}}\nspec:\n  rules: [{{http: {{paths: [{{path: /, "
        "pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}]}}]\n")
    plain = CertificateStore()
    plain.update(res)
    assert plain.context_for_hello(b"dalias.test") is plain._default_server is not None
    assert _memory_handshake(plain, "dalias.test", f"{AES128}:{AES256}")[1] == AES256
    rejecting = CertificateStore()
    rejecting.configure_tls(_settings(ssl_reject_handshake="true"))
    rejecting.update(res)
    assert rejecting._reject is not None
    assert rejecting.context_for_hello(b"dalias.test") in rejecting._reject


def test_handshakes_during_dh_rebuilds_in_a_worker_thread_always_get_their_certificate(
        rsa_ca: trustme.CA) -> None:
    # update() rebuilding every context (the ssl-dh-param Secret's parameters changing) in a
    # worker thread assigns the store's attributes one by one: a handshake meanwhile may get
    # an old context and a new one, never one without its certificate (nor another host's).
    import threading

    from ingresslib._tls import CertificateStore

    with_dh = _dh_res(rsa_ca, 2)
    store = CertificateStore()
    store.configure_tls(_settings(ssl_dh_param="default/dh"))
    store.update(with_dh(FFDHE3072))
    want = {name: _memory_handshake(store, name)[0] for name in ("h0.test", "h1.test")}
    default = _memory_handshake(store, None)[0]
    done = threading.Event()

    def churn() -> None:
        try:
            for i in range(12):
                store.update(with_dh("" if i % 2 == 0 else FFDHE3072))
        finally:
            done.set()
    worker = threading.Thread(target=churn)
    worker.start()
    seen = 0
    while not done.is_set() or seen == 0:
        for name, der in want.items():
            assert _memory_handshake(store, name)[0] == der, name
        assert _memory_handshake(store, "unknown.test")[0] == default
        seen += 1
    worker.join()
    assert seen > 0
