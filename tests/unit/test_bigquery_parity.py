"""The BigQuery tables declared in Terraform match the pydantic models, field by field.

Read statically: bigquery.tf names each table's schema file (terraform/schemas/*.json), and
each column's name, type and mode must be what the model's field says (no more columns, no
fewer), so analytics cannot drift from the code.
"""

from __future__ import annotations

import json
import re
import types
from datetime import datetime
from enum import Enum
from typing import Annotated, Union, get_args, get_origin

import pytest
from pydantic import BaseModel

from shared.ledger.models import BaseCreditTransaction, BaseUserCredits
from tests.support.deploy import TERRAFORM_DIR

MODELS = {"users_credits": BaseUserCredits, "credits_transactions": BaseCreditTransaction}
SCALARS = {bool: "BOOLEAN", int: "INTEGER", float: "FLOAT", str: "STRING", datetime: "TIMESTAMP"}
# The columns a BigQuery subscription with write_metadata fills (terraform/events.tf), beside the
# model's own: the attributes JSON carries event_id, which the views deduplicate on.
PUBSUB_METADATA = {
    "subscription_name": ("STRING", "NULLABLE"),
    "message_id": ("STRING", "NULLABLE"),
    "publish_time": ("TIMESTAMP", "NULLABLE"),
    "attributes": ("STRING", "NULLABLE"),
}


def terraform_tables() -> dict[str, dict]:
    """table_id -> {"resource": name, "schema": [columns]} for every google_bigquery_table."""
    source = (TERRAFORM_DIR / "bigquery.tf").read_text()
    tables = {}
    # terraform fmt puts a block's closing brace alone at column 0.
    for name, body in re.findall(r'^resource "google_bigquery_table" "(\w+)" \{\n(.*?)^\}', source, re.M | re.S):
        table_id = re.search(r'^\s*table_id\s*=\s*"([^"]+)"', body, re.M).group(1)
        schema_file = re.search(
            r'^\s*schema\s*=\s*jsonencode\(jsondecode\(file\("\$\{path\.module\}/([^"]+)"\)\)\)', body, re.M
        ).group(1)
        tables[table_id] = {"resource": name, "schema": json.loads((TERRAFORM_DIR / schema_file).read_text())}
    return tables


def column_for(annotation) -> tuple[str, str, type]:
    """(BigQuery type, mode, Python type) of a model field's annotation."""
    nullable = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            assert len(members) == 1, f"no single BigQuery type for {annotation}"
            nullable = nullable or len(members) < len(get_args(annotation))
            annotation = members[0]
        else:
            break
    python_type = annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "RECORD", "NULLABLE" if nullable else "REQUIRED", annotation
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        assert issubclass(annotation, str), f"{annotation} is not stored as a string"
        python_type = str
    return SCALARS[python_type], "NULLABLE" if nullable else "REQUIRED", annotation


def test_terraform_declares_exactly_the_two_tables_of_the_spec():
    assert set(terraform_tables()) == set(MODELS)


@pytest.mark.parametrize("table", sorted(MODELS))
def test_a_table_matches_its_model_field_by_field_names_types_and_modes(table):
    model = MODELS[table]
    columns = terraform_tables()[table]["schema"]
    declared = {column["name"]: (column["type"], column.get("mode", "NULLABLE")) for column in columns}
    expected = {name: column_for(field.annotation)[:2] for name, field in model.model_fields.items()}

    assert len(declared) == len(columns), "a column is declared twice"
    assert declared == {**expected, **PUBSUB_METADATA}
    assert not set(expected) & set(PUBSUB_METADATA), "a model field would collide with Pub/Sub's metadata"
    for column in columns:
        if column["type"] == "RECORD":
            nested = column_for(model.model_fields[column["name"]].annotation)[2]
            assert {c["name"]: (c["type"], c.get("mode", "NULLABLE")) for c in column["fields"]} == {
                name: column_for(field.annotation)[:2] for name, field in nested.model_fields.items()}


def test_the_bigquery_subscriptions_write_the_metadata_columns_and_each_table_its_own_event_type():
    events = (TERRAFORM_DIR / "events.tf").read_text()

    assert "write_metadata      = true" in events and "use_table_schema    = true" in events
    assert re.search(r'event_type = "transaction.created"\s+table\s+= google_bigquery_table.credits_transactions', events)
    assert re.search(r'event_type = "balance.updated"\s+table\s+= google_bigquery_table.users_credits', events)


def test_users_credits_holds_both_pools_in_place_of_balance():
    columns = {column["name"]: column for column in terraform_tables()["users_credits"]["schema"]}

    assert columns["credits_monthly"]["type"] == columns["credits_permanent"]["type"] == "INTEGER"
    # balance is the model's computed sum of the pools, never stored, so never a column.
    assert "balance" in BaseUserCredits.model_computed_fields
    assert "balance" not in columns


def test_credits_transactions_holds_the_pool():
    columns = {column["name"]: column for column in terraform_tables()["credits_transactions"]["schema"]}

    assert columns["pool"] == {**columns["pool"], "type": "STRING", "mode": "NULLABLE"}


@pytest.mark.parametrize("table", sorted(MODELS))
def test_every_enum_column_documents_each_value_the_code_can_write(table):
    columns = {column["name"]: column for column in terraform_tables()[table]["schema"]}
    for name, field in MODELS[table].model_fields.items():
        python_type = column_for(field.annotation)[2]
        if isinstance(python_type, type) and issubclass(python_type, Enum):
            missing = [member.value for member in python_type if member.value not in columns[name]["description"]]
            assert missing == [], f"{table}.{name} does not list {missing}"
