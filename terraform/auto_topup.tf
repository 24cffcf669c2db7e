# Auto top-up (CONTRACT section 9): the auto_topup function charges each attempt the spend path
# creates (credits_topups/{attempt_id}), fed by an Eventarc trigger on the attempt's creation; a
# second function from the same bundle, auto_topup_sweep, charges attempts whose trigger was lost,
# every 5 minutes from Cloud Scheduler. Both run as one service account that may use Firestore's
# credits database and read the Stripe API key, and nothing else (not the webhook secret).

module "auto_topup_source" {
  source = "./modules/function_source"

  repo_root = local.repo_root
  function  = "auto_topup"
}

data "archive_file" "auto_topup_source" {
  type             = "zip"
  output_path      = "${path.module}/build/auto_topup-${module.auto_topup_source.sha256}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = module.auto_topup_source.files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket_object" "auto_topup_source" {
  name   = "auto_topup/${module.auto_topup_source.sha256}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.auto_topup_source.output_path
}

resource "google_service_account" "auto_topup" {
  account_id   = "${var.name_prefix}-auto-topup"
  display_name = "Runtime of the auto_topup functions (charges top-ups through Stripe)"
}

resource "google_project_iam_member" "auto_topup_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.auto_topup.member

  condition {
    title      = "credits-database-only"
    expression = "resource.name == \"${google_firestore_database.credits.id}\""
  }
}

# The Stripe API key only: the webhook's signing secret stays the webhook's.
resource "google_secret_manager_secret_iam_member" "auto_topup_reads_stripe_key" {
  secret_id = google_secret_manager_secret.stripe["STRIPE_API_KEY"].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.auto_topup.member
}

locals {
  auto_topup_targets = {
    auto_topup = {
      name        = "${var.name_prefix}-auto-topup"
      description = "Charges an auto top-up attempt when it is created (Eventarc)."
    }
    auto_topup_sweep = {
      name        = "${var.name_prefix}-auto-topup-sweep"
      description = "Charges auto top-up attempts pending for over five minutes (Cloud Scheduler only)."
    }
  }
}

resource "google_cloudfunctions2_function" "auto_topup" {
  for_each = local.auto_topup_targets

  name        = each.value.name
  location    = var.region
  description = each.value.description

  build_config {
    runtime           = "python311"
    entry_point       = each.key
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.auto_topup_source.name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.auto_topup.email
    # Only Eventarc and Cloud Scheduler call them.
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    available_memory                 = "512Mi"
    timeout_seconds                  = 120
    max_instance_count               = 5
    min_instance_count               = 0
    max_instance_request_concurrency = 1
    all_traffic_on_latest_revision   = true

    environment_variables = {
      GOOGLE_CLOUD_PROJECT = var.project_id
    }

    secret_environment_variables {
      key        = "STRIPE_API_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.stripe["STRIPE_API_KEY"].secret_id
      version    = var.stripe_secret_versions["STRIPE_API_KEY"]
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_sources,
    google_artifact_registry_repository_iam_member.builder_images,
    google_secret_manager_secret_iam_member.auto_topup_reads_stripe_key,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "events_trigger_invokes_auto_topup" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.auto_topup["auto_topup"].name
  role     = "roles/run.invoker"
  member   = google_service_account.events_trigger.member
}

# Retry is on: a transient Stripe or Firestore fault raises, Eventarc redelivers, and the attempt
# id as Stripe's idempotency key makes the redelivery the same charge.
resource "google_eventarc_trigger" "auto_topup" {
  name                    = "${var.name_prefix}-auto-topup-attempts"
  location                = google_firestore_database.credits.location_id
  service_account         = google_service_account.events_trigger.email
  event_data_content_type = "application/protobuf"

  matching_criteria {
    attribute = "type"
    value     = "google.cloud.firestore.document.v1.created"
  }
  matching_criteria {
    attribute = "database"
    value     = google_firestore_database.credits.name
  }
  matching_criteria {
    attribute = "document"
    value     = "credits_topups/{attempt_id}"
    operator  = "match-path-pattern"
  }

  destination {
    cloud_run_service {
      service = google_cloudfunctions2_function.auto_topup["auto_topup"].service_config[0].service
      region  = var.region
    }
  }

  depends_on = [
    google_project_service.eventarc,
    google_project_iam_member.events_trigger_receives,
    google_cloud_run_v2_service_iam_member.events_trigger_invokes_auto_topup,
  ]
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_auto_topup_sweep" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.auto_topup["auto_topup_sweep"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}

resource "google_cloud_scheduler_job" "auto_topup_sweep" {
  name             = "${var.name_prefix}-auto-topup-sweep"
  description      = "Charge auto top-up attempts whose trigger was lost (pending for over five minutes)."
  region           = var.region
  schedule         = "*/5 * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "120s"

  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.auto_topup["auto_topup_sweep"].url
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ limit = 100 }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.auto_topup["auto_topup_sweep"].url
    }
  }

  depends_on = [google_project_service.api, google_cloud_run_v2_service_iam_member.scheduler_invokes_auto_topup_sweep]
}

# --- The failure rate -------------------------------------------------------------------------

resource "google_logging_metric" "auto_topup_settled" {
  name        = "${var.name_prefix}/auto_topup_settled"
  description = "Auto top-up attempts settled, by outcome (succeeded, failed, action_required, canceled)."
  filter      = "jsonPayload.message=\"auto top-up attempt settled\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    labels {
      key        = "outcome"
      value_type = "STRING"
    }
  }
  label_extractors = {
    outcome = "EXTRACT(jsonPayload.outcome)"
  }
}

resource "google_monitoring_alert_policy" "auto_topup_failure_rate" {
  display_name          = "${var.name_prefix}: auto top-up failure rate above ${var.auto_topup_failure_ratio * 100}% over an hour"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "failed attempts / settled attempts over 1 hour"
    condition_monitoring_query_language {
      duration = "0s"
      query    = <<-EOT
        fetch global
        | metric 'logging.googleapis.com/user/${google_logging_metric.auto_topup_settled.name}'
        | align delta(1h)
        | every 5m
        | group_by [], [failed: sum(if(metric.outcome == 'failed', val(), 0)), all: sum(val())]
        | value [ratio: cast_double(failed) / cast_double(if(all == 0, 1, all))]
        | condition ratio > ${var.auto_topup_failure_ratio}
      EOT
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = "Many auto top-up charges are failing (declines, missing payment methods). Check the auto_topup logs (`auto top-up attempt settled` with `outcome` failed and its `reason`) and `credits health` for settings disabled by failures."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.monitoring]
}
