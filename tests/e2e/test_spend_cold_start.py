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


ONLY_ON_FIRST_USE = """
import sys
from functions_framework import create_app
create_app("spend", source="functions/spend/main.py")
later = ("shared.operations", "shared.spending.holds_service", "shared.spending.settings_service",
         "shared.spending.schemas", "shared.store.group", "shared.store.pipeline", "shared.spending.page_tokens")
print(sorted(name for name in sys.modules if name.startswith(later)))
"""


def test_loading_spend_imports_no_operator_module_and_no_module_only_other_routes_need():
    result = subprocess.run([sys.executable, "-c", ONLY_ON_FIRST_USE], cwd=ROOT, env={"PYTHONPATH": str(ROOT)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
