# Events out (CONTRACT section 8): the ledger_events function, fed by two Eventarc Firestore
# triggers, publishes transaction.created, balance.updated and balance.low to the events topic.
# BigQuery subscriptions copy transaction.created into credits_transactions and balance.updated
# into users_credits (one row per delivered change); views remove duplicate deliveries, give each
# user's latest row, and the pool-usage figures finance reads.

resource "google_project_service" "eventarc" {
  project            = var.project_id
  service            = "eventarc.googleapis.com"
  disable_on_destroy = false
}

# --- Source bundle (the same module as the other functions) ---------------------------------

module "ledger_events_source" {
  source = "./modules/function_source"

  repo_root = local.repo_root
  function  = "ledger_events"
}

data "archive_file" "ledger_events_source" {
  type             = "zip"
  output_path      = "${path.module}/build/ledger_events-${module.ledger_events_source.sha256}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = module.ledger_events_source.files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket_object" "ledger_events_source" {
  name   = "ledger_events/${module.ledger_events_source.sha256}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.ledger_events_source.output_path
}

# --- Topics -----------------------------------------------------------------------------------

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83: events hold user ids and credit counts only; Google-managed encryption is enough.
  name                       = "${var.name_prefix}-events"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

# Messages BigQuery keeps refusing (a row that does not fit the table) land here for review.
resource "google_pubsub_topic" "events_dead_letter" {
  # checkov:skip=CKV_GCP_83: dead-lettered events hold user ids and credit counts only; Google-managed encryption is enough.
  name                       = "${var.name_prefix}-events-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "events_dead_letter" {
  name  = "${var.name_prefix}-events-dead-letter"
  topic = google_pubsub_topic.events_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# --- The function -----------------------------------------------------------------------------

resource "google_service_account" "ledger_events" {
  account_id   = "${var.name_prefix}-ledger-events"
  display_name = "Runtime of the ledger_events function"
}

# It reads nothing from Firestore (the event carries the committed document) and only publishes.
resource "google_pubsub_topic_iam_member" "ledger_events_publishes" {
  topic  = google_pubsub_topic.events.id
  role   = "roles/pubsub.publisher"
  member = google_service_account.ledger_events.member
}

resource "google_cloudfunctions2_function" "ledger_events" {
  name        = "${var.name_prefix}-ledger-events"
  location    = var.region
  description = "Publishes ledger changes (transactions, balances, low balances) to the events topic."

  build_config {
    runtime           = "python311"
    entry_point       = "ledger_events"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.ledger_events_source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.ledger_events.email
    # Only Eventarc calls it.
    ingress_settings = "ALLOW_INTERNAL_ONLY"
    # Two CPUs served by two functions-framework worker processes (WORKERS below): the work is
    # CPU in Python, so one process uses one CPU at most. benchmarks/bench_events.py reads WORKERS
    # and the request concurrency from here and measures this configuration.
    available_memory   = "1Gi"
    available_cpu      = "2"
    timeout_seconds    = 60
    max_instance_count = var.max_instances_ledger_events
    min_instance_count = 0
    # Concurrent events share each process's publisher batches (the async handler holds no
    # thread while it waits for Pub/Sub, so more at once means bigger batches, less CPU each).
    max_instance_request_concurrency = 32
    all_traffic_on_latest_revision   = true

    environment_variables = {
      GOOGLE_CLOUD_PROJECT = var.project_id
      CREDITS_EVENTS_TOPIC = google_pubsub_topic.events.name
      CREDITS_LOW_BALANCE  = tostring(var.low_balance_threshold)
      WORKERS              = "2"
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_sources,
    google_artifact_registry_repository_iam_member.builder_images,
    google_pubsub_topic_iam_member.ledger_events_publishes,
  ]
}

# --- Eventarc triggers ------------------------------------------------------------------------

# The identity the triggers deliver as: it may receive Eventarc events and invoke the function.
resource "google_service_account" "events_trigger" {
  account_id   = "${var.name_prefix}-events-trigger"
  display_name = "Delivers Firestore events to ledger_events"
}

resource "google_project_iam_member" "events_trigger_receives" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = google_service_account.events_trigger.member
}

resource "google_cloud_run_v2_service_iam_member" "events_trigger_invokes" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.ledger_events.name
  role     = "roles/run.invoker"
  member   = google_service_account.events_trigger.member
}

locals {
  # The three triggers in one place: Eventarc's Firestore event type and the document pattern
  # (the top-up attempts' writes publish topup.* events, CONTRACT section 9).
  events_triggers = {
    transactions = {
      type     = "google.cloud.firestore.document.v1.created"
      document = "credits_transactions/{transaction_id}"
    }
    balances = {
      type     = "google.cloud.firestore.document.v1.written"
      document = "users_credits/{user_id}"
    }
    topups = {
      type     = "google.cloud.firestore.document.v1.written"
      document = "credits_topups/{attempt_id}"
    }
  }
}

# Retry is on: an Eventarc trigger with a Cloud Run destination redelivers every event the
# function fails (a transient publish fault raises) with exponential backoff, 10 s to 600 s, for
# 24 hours. An event that can never be published is acknowledged by the function itself.
resource "google_eventarc_trigger" "ledger_events" {
  for_each = local.events_triggers

  name            = "${var.name_prefix}-events-${each.key}"
  location        = google_firestore_database.credits.location_id
  service_account = google_service_account.events_trigger.email
  # Google's DocumentEventData protobuf, as the function decodes it.
  event_data_content_type = "application/protobuf"

  matching_criteria {
    attribute = "type"
    value     = each.value.type
  }
  matching_criteria {
    attribute = "database"
    value     = google_firestore_database.credits.name
  }
  matching_criteria {
    attribute = "document"
    value     = each.value.document
    operator  = "match-path-pattern"
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.ledger_events.service_config[0].service
      region  = var.region
    }
  }

  depends_on = [
    google_project_service.eventarc,
    google_project_iam_member.events_trigger_receives,
    google_cloud_run_v2_service_iam_member.events_trigger_invokes,
  ]
}

# --- BigQuery subscriptions -------------------------------------------------------------------

locals {
  # Which event type fills which table. The message data is the record or balance as the API
  # shows it; columns it lacks are null, fields the table lacks (balance) are dropped, and the
  # metadata columns (schemas/*.json) keep message_id, publish_time and the attributes, whose
  # event_id the views deduplicate on.
  events_to_bigquery = {
    transactions = {
      event_type = "transaction.created"
      table      = google_bigquery_table.credits_transactions
    }
    balances = {
      event_type = "balance.updated"
      table      = google_bigquery_table.users_credits
    }
  }
}

resource "google_bigquery_table_iam_member" "pubsub_writes_events" {
  for_each = local.events_to_bigquery

  dataset_id = each.value.table.dataset_id
  table_id   = each.value.table.table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_service_agent
}

resource "google_bigquery_table_iam_member" "pubsub_reads_event_tables" {
  for_each = local.events_to_bigquery

  dataset_id = each.value.table.dataset_id
  table_id   = each.value.table.table_id
  role       = "roles/bigquery.metadataViewer"
  member     = local.pubsub_service_agent
}

resource "google_pubsub_subscription" "events_to_bigquery" {
  for_each = local.events_to_bigquery

  name   = "${var.name_prefix}-events-${each.key}-bigquery"
  topic  = google_pubsub_topic.events.id
  filter = "attributes.event_type = \"${each.value.event_type}\""

  message_retention_duration = "604800s"

  bigquery_config {
    table               = "${each.value.table.project}.${each.value.table.dataset_id}.${each.value.table.table_id}"
    use_table_schema    = true
    write_metadata      = true
    drop_unknown_fields = true
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.events_dead_letter.id
    max_delivery_attempts = var.events_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_bigquery_table_iam_member.pubsub_writes_events,
    google_bigquery_table_iam_member.pubsub_reads_event_tables,
  ]
}

resource "google_pubsub_topic_iam_member" "pubsub_publishes_event_dead_letters" {
  topic  = google_pubsub_topic.events_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_acks_event_dead_letters" {
  for_each = google_pubsub_subscription.events_to_bigquery

  subscription = each.value.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- Views ------------------------------------------------------------------------------------

locals {
  dataset_ref = "`${var.project_id}.${google_bigquery_dataset.credits.dataset_id}`"

  # Every transaction once: a redelivered message is the same record (same transaction_id).
  # Inlined where it is used, so no view depends on another being created first.
  transactions_unique = <<-SQL
    SELECT * EXCEPT (delivery)
    FROM (
      SELECT t.*, ROW_NUMBER() OVER (PARTITION BY transaction_id ORDER BY publish_time) AS delivery
      FROM ${local.dataset_ref}.credits_transactions AS t
    )
    WHERE delivery = 1
  SQL

  views = {
    credits_transactions_unique = {
      description = "credits_transactions with duplicate deliveries removed: one row per transaction record."
      query       = local.transactions_unique
    }
    # Every change of a user document once: a redelivery carries the same event_id.
    users_credits_changes = {
      description = "users_credits with duplicate deliveries removed: one row per change of a user's balance."
      query       = <<-SQL
        SELECT * EXCEPT (delivery)
        FROM (
          SELECT u.*, JSON_VALUE(u.attributes, '$.event_id') AS event_id,
                 ROW_NUMBER() OVER (PARTITION BY JSON_VALUE(u.attributes, '$.event_id') ORDER BY publish_time) AS delivery
          FROM ${local.dataset_ref}.users_credits AS u
        )
        WHERE delivery = 1
      SQL
    }
    # Each user's balance now: the change with the latest last_updated (publish order is not
    # commit order, so the document's own time decides).
    users_credits_latest = {
      description = "Each user's latest row of users_credits: both pools and the totals as they are now."
      query       = <<-SQL
        SELECT * EXCEPT (latest)
        FROM (
          SELECT u.*, ROW_NUMBER() OVER (PARTITION BY user_id ORDER BY last_updated DESC, publish_time DESC) AS latest
          FROM ${local.dataset_ref}.users_credits AS u
        )
        WHERE latest = 1
      SQL
    }
    # Finance: credits spent per pool per UTC day, net of refunds.
    credits_spent_per_pool_daily = {
      description = "Credits spent per pool per UTC day (spent records, less refunds)."
      query       = <<-SQL
        SELECT DATE(created_at) AS day, pool,
               -SUM(amount) AS credits_spent,
               COUNTIF(type = 'spent') AS spends
        FROM (${local.transactions_unique})
        WHERE type IN ('spent', 'refund')
        GROUP BY day, pool
      SQL
    }
    # Finance: monthly credits that expired unused (renewal resets, cancellations, pauses) per day.
    monthly_credits_expired_daily = {
      description = "Monthly credits expired unused per UTC day (monthly_expired records)."
      query       = <<-SQL
        SELECT DATE(created_at) AS day,
               -SUM(amount) AS credits_expired,
               COUNT(DISTINCT user_id) AS users
        FROM (${local.transactions_unique})
        WHERE type = 'monthly_expired'
        GROUP BY day
      SQL
    }
  }
}

resource "google_bigquery_table" "views" {
  # checkov:skip=CKV_GCP_80: a view stores no data; its tables' encryption applies.
  for_each = local.views

  dataset_id          = google_bigquery_dataset.credits.dataset_id
  table_id            = each.key
  description         = each.value.description
  deletion_protection = true

  view {
    query          = each.value.query
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.users_credits, google_bigquery_table.credits_transactions]
}
