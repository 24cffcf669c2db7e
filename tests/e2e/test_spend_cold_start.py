"""What the `spend` function loads when an instance starts."""

import subprocess
import sys

from tests.support.functions import ROOT

PROBE = """
import sys
from functions_framework import create_app
create_app("spend", source="functions/spend/main.py")
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("stripe", "matplotlib"))
pubsub = sorted(name for name in sys.modules if name.startswith("google.cloud.pubsub"))
print(heavy + pubsub)
"""


def test_loading_the_spend_function_imports_neither_stripe_nor_pubsub():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
