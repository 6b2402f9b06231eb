"""A failed list names the API server (U18) without the credentials a kubeconfig's server URL
may carry: userinfo (``https://user:password@host``) or a token in the query (R18b)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from ingresslib._kube import WATCHED_KINDS, ClusterWatcher


@pytest.mark.parametrize("server", ["https://admin:s3cret@api.example:6443",
                                    "https://api.example:6443/k8s?access_token=s3cret"])
def test_failed_list_log_has_no_credentials(server: str, caplog: pytest.LogCaptureFixture) -> None:
    config = SimpleNamespace(cluster=SimpleNamespace(server=server))
    watcher = ClusterWatcher(lambda res: None, config=config)
    caplog.set_level(logging.WARNING)
    # A failure that is no httpx error (no request to take the URL from): the config's is named.
    watcher._error(WATCHED_KINDS[0], ConnectionRefusedError(111, "Connection refused"), "list")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "API server https://api.example:6443" in text
    assert "s3cret" not in text and "admin" not in text
