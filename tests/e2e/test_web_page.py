"""The local run's balance page (tools/local/web_page.py, clients/web): it serves the page, its
modules, the Firebase SDK's browser modules and its config, and nothing else of the checkout; and
every module the page loads resolves, through its import map, to a file it serves, so the page
needs nothing from the internet. (The page's reads themselves are the SDK's, tested under Node in
test_web_client_live.py.)"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import urljoin

import pytest

from tests.support.web_client import WEB
from tools.local.web_page import WebPage


IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*)["']([^"']+)["']""")


@pytest.fixture(scope="module")
def page():
    server = WebPage("127.0.0.1:18080", "demo-credits", user="user123").start()
    yield server
    server.stop()


def fetch(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def import_map(html: str) -> dict[str, str]:
    block = re.search(r'<script type="importmap">(.*?)</script>', html, re.S).group(1)
    return json.loads(block)["imports"]


def test_the_page_its_modules_the_sdk_and_its_config_are_served(page):
    config = fetch(page.base + "config.json")
    served = {path: fetch(page.base + path)[:2] for path in
              ["", "index.html", "src/page.js", "src/live.js", "src/view.js",
               "vendor/firebase/firebase-app.js", "vendor/firebase/firebase-firestore.js"]}

    assert json.loads(config[2]) == {"projectId": "demo-credits", "firestoreHost": "127.0.0.1", "firestorePort": 18080,
                                     "user": "user123"}
    assert {path: status for path, (status, _) in served.items()} == dict.fromkeys(served, 200)
    assert served["index.html"][1].startswith("text/html")
    assert all(kind.startswith("text/javascript") for path, (_, kind) in served.items() if path.endswith(".js"))


@pytest.mark.parametrize("path", [
    "package.json", "package-lock.json", "node_modules/firebase/package.json", "src/../package.json",
    "src/%2e%2e/package.json", "vendor/firebase/firebase-auth.js", "vendor/firebase/package.json",
    "vendor/firebase/../firebase/firebase-app.js", "test/sdk_driver.mjs", "../../README.md", "src/.hidden.js",
])
def test_nothing_else_of_the_checkout_is_served(page, path):
    assert fetch(page.base + path)[0] == 404


def test_every_module_the_page_loads_resolves_to_a_served_file(page):
    status, _, html = fetch(page.base)
    imports = import_map(html.decode())
    entry = re.search(r'<script type="module" src="([^"]+)"', html.decode()).group(1)
    pending, loaded = [urljoin(page.base, entry)], set()
    while pending:
        url = pending.pop()
        if url in loaded:
            continue
        status, _, body = fetch(url)
        assert status == 200, url
        loaded.add(url)
        for specifier in IMPORT.findall(body.decode()):
            if specifier.startswith(("./", "../", "/")):
                pending.append(urljoin(url, specifier))
            else:
                assert specifier in imports, f"{url} imports {specifier}, which the import map does not name"
                pending.append(urljoin(page.base, imports[specifier]))

    assert {url.removeprefix(page.base) for url in loaded} == {
        "src/page.js", "src/live.js", "src/view.js", "vendor/firebase/firebase-app.js",
        "vendor/firebase/firebase-firestore.js"}


def test_the_import_map_names_the_installed_sdk_version():
    installed = json.loads((WEB / "node_modules" / "firebase" / "package.json").read_text())["version"]
    locked = json.loads((WEB / "package-lock.json").read_text())["packages"]["node_modules/firebase"]["version"]
    cdn = [key for key in import_map((WEB / "index.html").read_text()) if key.startswith("https://")]

    assert installed == locked
    assert installed.split(".")[0] == "12"  # 13 needs a newer Node than the machines have
    assert cdn == [f"https://www.gstatic.com/firebasejs/{installed}/firebase-app.js"]
