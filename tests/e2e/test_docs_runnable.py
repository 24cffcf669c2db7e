"""The tutorial and the how-to guides work as written: every shell block marked runnable
(`<!-- runnable -->` on the line before its fence; docs/tutorial.md, "Runnable blocks") is run, in
order, against a local stack started by ./scripts/run-local.sh, and must exit 0; a block marked
`<!-- runnable: prints "TEXT" -->` must also print TEXT.

Rules enforced here: each block runs in `bash` with `set -euo pipefail` from the repository root,
with .venv/bin on the PATH; what a block exports is seen by the later blocks of the same guide (one
terminal per guide); the local run's default addresses in a block are rewritten to the free ports
this run chose, so a developer's own run is never touched; the stack is stopped whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import docs
from tests.support.emulators import free_port
from tests.support.servers import outside_environ, read_until

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
DEFAULT_PORTS = {"firestore": 8080, "pubsub": 8085, "stripe_api": 8086, "spend": 8081, "stripe_webhook": 8082,
                 "promo_grant": 8083, "ledger_events": 8084, "operator_sweeps": 8088, "web": 8087,
                 "auto_topup": 8089, "console": 8090}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A local run on free ports, with its own state and logs: the ports it chose, and its environment."""
    base = tmp_path_factory.mktemp("docs-runnable")
    ports = {name: free_port() for name in DEFAULT_PORTS}
    env = {**outside_environ(), **{f"{name.upper()}_PORT": str(number) for name, number in ports.items()},
           "CREDITS_LOCAL_LOGS": str(base / "logs"), "CREDITS_LOCAL_STATE": str(base / "state"),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.Popen([str(ROOT / "scripts" / "run-local.sh"), "--seed"], env=env, cwd=ROOT, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        read_until(run.stdout, "Ctrl-C stops everything.", timeout=120)
        yield ports, env, base
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)  # Ctrl-C: the run stops everything it started
            try:
                run.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()


def _on_ports(block: str, ports: dict[str, int]) -> str:
    """The block with the local run's default addresses moved to this run's ports."""
    moved = {str(DEFAULT_PORTS[name]): str(number) for name, number in ports.items()}
    return re.sub(r"(127\.0\.0\.1|localhost):(\d{4})\b",
                  lambda m: f"{m.group(1)}:{moved.get(m.group(2), m.group(2))}", block)


def test_the_runnable_blocks_are_found_in_the_tutorial_and_the_how_to_guides():
    assert docs.runnable_blocks("<!-- runnable -->\n```sh\necho one\n```\n```sh\necho two\n```\n") == ["echo one"]
    marked = docs.runnable_examples('<!-- runnable: prints "one" -->\n  ```sh\n  echo one\n  ```\n')
    assert marked == [docs.Runnable("echo one", "one")]
    assert len(docs.runnable_blocks((ROOT / "docs" / "tutorial.md").read_text(encoding="utf-8"))) >= 5


@pytest.mark.parametrize("guide", docs.runnable_guides(), ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_runnable_block_of_the_guide_exits_0_against_a_local_stack(stack, guide):
    ports, env, base = stack
    blocks = docs.runnable_examples(guide.read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip("no runnable block")
    exported = base / f"{guide.stem}.env"  # one terminal per guide: what a block exports, the next one sees
    exported.write_text("")
    for number, example in enumerate(blocks, start=1):
        block = example.code
        script = f"set -euo pipefail\nsource {exported}\n{_on_ports(block, ports)}\nexport -p > {exported}\n"
        result = subprocess.run(["bash", "-c", script], env=env, cwd=ROOT, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, (f"{guide.name}, runnable block {number} exited {result.returncode}:\n"
                                        f"{block}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
        if example.prints is not None:
            assert example.prints in result.stdout, (f"{guide.name}, runnable block {number} did not print "
                                                     f"{example.prints!r}:\n{block}\n--- stdout\n{result.stdout}")
