"""The default-certificate Secret the ``--default-ssl-certificate`` tests build (session 19),
shared by tests/test_default_cert_s19.py and tests/test_default_cert_metrics_s19.py."""

from __future__ import annotations

import base64

import trustme

from ingresslib._models import ObjectMeta, Secret, freeze_map


def default_secret(leaf: trustme.LeafCert | None, crt: bytes | None = None) -> Secret:
    """Secret ingresslib/default-cert holding ``leaf`` (or ``crt`` with a broken key)."""
    if leaf is not None:
        crt = leaf.cert_chain_pems[0].bytes()
        key = leaf.private_key_pem.bytes()
    else:
        key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    assert crt is not None
    return Secret(metadata=ObjectMeta(name="default-cert", namespace="ingresslib"),
                  type="kubernetes.io/tls",
                  data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                                   "tls.key": base64.b64encode(key).decode()}))


def secret_yaml(name: str, leaf: trustme.LeafCert, ns: str = "ingresslib") -> str:
    """A kubernetes.io/tls Secret manifest holding ``leaf``."""
    crt = base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(leaf.private_key_pem.bytes()).decode()
    return (f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {ns}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {crt}\n  tls.key: {key}\n")
