# The analytics copy of the credit data. The column lists live in schemas/*.json, which the test
# suite compares field by field with the pydantic models in shared/ledger/models.py: users_credits has
# both pools in place of balance (the total is their sum), credits_transactions has pool.

resource "google_bigquery_dataset" "credits" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption; the dataset holds credit counts, no payment data.
  dataset_id    = var.bigquery_dataset_id
  friendly_name = "Credits"
  description   = "Users' credit pools and every transaction on them."
  location      = var.bigquery_location

  delete_contents_on_destroy = false

  depends_on = [google_project_service.api]
}

resource "google_bigquery_table" "users_credits" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption; the table holds credit counts, no payment data.
  dataset_id          = google_bigquery_dataset.credits.dataset_id
  table_id            = "users_credits"
  description         = "One row per change of a user's credits (balance.updated events): both pools and the lifetime totals."
  deletion_protection = true
  schema              = jsonencode(jsondecode(file("${path.module}/schemas/users_credits.json")))

  clustering = ["user_id"]
}

resource "google_bigquery_table" "credits_transactions" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption; the table holds credit counts, no payment data.
  dataset_id          = google_bigquery_dataset.credits.dataset_id
  table_id            = "credits_transactions"
  description         = "Every change to a pool: one row per record (transaction.created events), with the pool it changed."
  deletion_protection = true
  schema              = jsonencode(jsondecode(file("${path.module}/schemas/credits_transactions.json")))

  time_partitioning {
    type  = "DAY"
    field = "created_at"
  }

  clustering = ["user_id", "pool", "type"]
}
