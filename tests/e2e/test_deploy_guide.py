"""The deployment guide against terraform/: every secret a function reads at `latest` gets its first
version in the guide's "First deployment" steps, before the apply that starts the functions.

Terraform creates secrets but never their values, and a function whose secret has no version
cannot start. The guide is found wherever it lives (README.md or docs/**/*.md). terraform/ is
read statically (the providers cannot be downloaded here, so `terraform console` cannot evaluate
the root module): secrets are `google_secret_manager_secret` resources, and a function reads one in
a `secret_environment_variables` (or Cloud Run's `secret_key_ref`) block whose `version` is
`"latest"` or a variable whose default is, or holds, `"latest"`.
"""

from __future__ import annotations

import re

from tests.support import deploy, docs

_RESOURCE = re.compile(r'^resource\s+"google_secret_manager_secret"\s+"(\w+)"\s*\{', re.M)
_VARIABLE = re.compile(r'^variable\s+"(\w+)"\s*\{', re.M)
_READER = re.compile(r'(?:dynamic\s+"(?:secret_environment_variables|secret_key_ref)"|\b(?:secret_environment_variables|secret_key_ref))\s*\{')


def _block(text: str, open_brace: int) -> str:
    """The text from the `{` at `open_brace` to its matching `}`."""
    depth = 0
    for index in range(open_brace, len(text)):
        if text[index] == "{":
            depth += 1
        elif text[index] == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace : index + 1]
    raise AssertionError("unbalanced braces in terraform/")


def _terraform() -> str:
    return "\n".join(path.read_text() for path in sorted(deploy.TERRAFORM_DIR.glob("*.tf")))


def _defaults(text: str) -> dict[str, str]:
    """Each variable's default, as written."""
    out = {}
    for match in _VARIABLE.finditer(text):
        body = _block(text, match.end() - 1)
        default = re.search(r"^\s*default\s*=\s*(\{.*?\}|\S.*?)\s*$", body, re.M | re.S)
        if default:
            out[match.group(1)] = default.group(1)
    return out


def _secret_names(text: str, prefix: str) -> dict[str, list[str]]:
    """resource name -> the secret ids it creates, with the default name prefix."""
    out = {}
    for match in _RESOURCE.finditer(text):
        body = _block(text, match.end() - 1)
        names = re.findall(r'"\$\{var\.name_prefix\}(-[a-z0-9-]+)"', body)
        out[match.group(1)] = [prefix + name for name in names]
    return out


def secrets_read_at_latest() -> set[str]:
    text = _terraform()
    defaults = _defaults(text)
    prefix = defaults["name_prefix"].strip('"')
    names = _secret_names(text, prefix)
    read = set()
    for match in _READER.finditer(text):
        # A dynamic block's for_each names the secrets; its content holds the version.
        body = _block(text, match.end() - 1)
        version = re.search(r"\bversion\s*=\s*(\S+)", body)
        assert version, f"a secret read without a version: {body[:200]}"
        expression = version.group(1)
        variable = re.match(r"var\.(\w+)", expression)
        value = defaults.get(variable.group(1), "") if variable else expression
        if '"latest"' not in value:
            continue
        for resource in re.findall(r"google_secret_manager_secret\.(\w+)", body):
            read.update(names[resource])
    return read


def test_terraform_reads_the_stripe_secrets_and_the_page_token_key_at_latest():
    # The static reading above finds what it must: if this fails, it no longer understands terraform/.
    assert secrets_read_at_latest() == {
        "credits-stripe-webhook-secret", "credits-stripe-api-key", "credits-page-token-key"}


def test_every_secret_read_at_latest_gets_a_version_in_the_first_deployment_steps():
    guides = docs.sections("First deployment")
    assert guides, "no guide has a 'First deployment' section (README.md or docs/**/*.md)"
    commands = [line for guide in guides for line in docs.shell_lines(guide.text)]
    full_apply = next(i for i, line in enumerate(commands)
                      if line.startswith("terraform apply") and "-target" not in line)
    for secret in sorted(secrets_read_at_latest()):
        adds = [i for i, line in enumerate(commands) if re.search(rf"gcloud secrets versions add {secret}\b", line)]
        assert adds, f"the first deployment never adds a version of {secret}"
        assert adds[0] < full_apply, f"{secret} gets its version only after the apply that starts the functions"
        created = [i for i, line in enumerate(commands)
                   if line.startswith("terraform apply") and "-target" in line and i < adds[0]]
        assert created, f"{secret} gets a version before any apply creates it"
