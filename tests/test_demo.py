"""``ingresslib demo``: the shipped manifests, the self-check, and the demo through the real Router."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from ingresslib._cli import main
from ingresslib._demo import DEMO_PODS, demo_manifests, http_get, start_demo

ROOT = Path(__file__).resolve().parent.parent


def test_examples_copy_matches_packaged_manifests() -> None:
    # examples/demo/ is what users read; ingresslib/examples/ is what the wheel ships.
    assert (ROOT / "examples/demo/demo.yaml").read_text() == (
        ROOT / "ingresslib/examples/demo.yaml").read_text()


def test_demo_manifests_are_valid() -> None:
    from ingresslib._resources import Resources

    res = Resources.from_dicts(demo_manifests())
    assert {i.metadata.name for i in res.ingresses} == {"fanout", "fanout-canary", "wildcard"}
    assert {s.metadata.name for s in res.services} == set(DEMO_PODS)


@pytest.mark.network
def test_demo_once_cli(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--once", "--seed", "1"]) == 0
    out, err = capsys.readouterr()
    assert "self-check passed" in out and "BAD" not in out
    assert err.count("listening on http") == 2  # http:// and https://


@pytest.mark.network
@pytest.mark.asyncio
async def test_round_robin_visible_and_canary_split() -> None:
    demo = await start_demo(seed=7)
    try:
        pods = Counter()
        for _ in range(6):
            r = await http_get(demo.http_port, "example.test", "/admin")
            pods[r.echo["pod"]] += 1
        assert pods == {"admin-0": 2, "admin-1": 2, "admin-2": 2}
        split = Counter()
        for _ in range(100):
            split[(await http_get(demo.http_port, "example.test", "/")).echo["service"]] += 1
        assert 3 <= split["web-v2"] <= 20 and split["web"] + split["web-v2"] == 100
    finally:
        await demo.stop()


@pytest.mark.network
def test_demo_once_as_subprocess() -> None:
    """What the README's first command (and the fresh-machine check) runs."""
    p = subprocess.run([sys.executable, "-m", "ingresslib", "demo", "--once"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "self-check passed" in p.stdout


def test_curl_lines_mention_every_feature() -> None:
    from ingresslib._demo import Demo, _curl_lines

    lines = "\n".join(_curl_lines(Demo(http_port=1, https_port=2)))
    for needle in ("/guest", "/admin", "a.example.test", "a.b.example.test", "https://example.test:2"):
        assert needle in lines
