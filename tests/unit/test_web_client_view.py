"""The example page's view rules (clients/web/src/view.js: the balance as the sum of the pools, a
legacy document, no document yet, offline and pending snapshots), run by Node's test runner.
Pure JavaScript: needs `node` (which `scripts/install.sh` requires), not the installed SDK."""

from __future__ import annotations

import re
import subprocess

from tests.support.web_client import WEB


def test_the_pages_view_rules_hold():
    result = subprocess.run(["node", "--test", "test/view.test.mjs"], cwd=WEB, capture_output=True, text=True,
                            timeout=60, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout and int(re.search(r"# pass (\d+)", result.stdout).group(1)) >= 7
