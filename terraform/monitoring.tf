# What an on-call engineer must hear about, as Cloud Monitoring alert policies. The functions log
# one JSON line per outcome (shared/common/log.py); Cloud Run turns each into an entry whose
# jsonPayload carries `message` and `outcome`, so log-based metrics count the lines that matter:
# events kept in webhook_unapplied, messages kept in promo_rejected, commits whose outcome stayed
# unknown, and drift found by the scheduled reconcile or `credits reconcile`; and the absence of
# completed reconcile passes, which means reconciliation stopped happening. Request metrics of Cloud Run give each
# function's 5xx and 503 rates; Pub/Sub's own metric gives the promo dead-letter backlog.
# Every policy notifies var.notification_channels (none: the incidents show in the console only).

locals {
  # The Cloud Run service behind each function (2nd-gen functions are Cloud Run services).
  monitored_services = merge(
    { for key, f in local.functions : key => f.name },
    { ledger_events = google_cloudfunctions2_function.ledger_events.name },
  )

  log_metrics = {
    stripe_event_unapplied = {
      message       = "stripe event unapplied"
      description   = "Stripe events kept in webhook_unapplied (replay with credits replay)."
      documentation = "A Stripe event could not be applied and is kept in webhook_unapplied with its reason. Fix the cause (an unknown customer, a price missing from the catalog...), then `credits replay --list` and `credits replay --event-id ID`. `credits health` counts them."
    }
    promo_message_rejected = {
      message       = "promo message rejected"
      description   = "Promo messages that can never be valid, kept in promo_rejected."
      documentation = "A promo campaign message was refused and kept in promo_rejected with its reason; nobody in it was granted anything. Fix the data, then `credits replay --message-id ID`. `credits health` counts them."
    }
    commit_outcome_unknown = {
      message       = "commit outcome unknown"
      description   = "Commits whose outcome stayed unknown after the function's 30 s of checking."
      documentation = "Firestore stayed unreachable while a function tried to learn whether a commit landed; it answered 503 with outcome unknown. Check Firestore's status; retries with the same idempotency key are safe."
    }
    ledger_drift = {
      message       = "ledger drift"
      description   = "Users whose pools differ from their transactions, found by the scheduled reconcile or credits reconcile."
      documentation = "The scheduled reconcile (POST /sweep/reconcile) or `credits reconcile` found a user whose pool or totals differ from the sum of their transaction records, or whose spend refund totals, holds or add-on payments disagree with their records (confirmed by a consistent re-read); the log line names the user, the kind of drift, its subject and field. Run `credits reconcile` to see every drift; after finding the cause, `credits reconcile --fix` proposes ledger corrections of pool drift (other kinds are reported, never corrected). `credits health` shows the last scheduled pass."
    }
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) every alert policy notifies; empty: incidents show in the console only."
  type        = list(string)
  default     = []
}

variable "alert_5xx_per_second" {
  description = "A function answering more 5xx than this per second, over 5 minutes, raises an alert (a 500 should never happen; 503s count too)."
  type        = number
  default     = 0.05
}

variable "alert_503_per_second" {
  description = "A function answering more 503 than this per second, over 5 minutes, raises an alert (contention or Firestore unavailable)."
  type        = number
  default     = 0.2
}

resource "google_project_service" "monitoring" {
  project            = var.project_id
  service            = "monitoring.googleapis.com"
  disable_on_destroy = false
}

resource "google_logging_metric" "outcome" {
  for_each = local.log_metrics

  name        = "${var.name_prefix}/${each.key}"
  description = each.value.description
  # Any resource: the functions run on Cloud Run, a scheduled reconcile wherever it is run from.
  filter = "jsonPayload.message=\"${each.value.message}\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.api]
}

resource "google_monitoring_alert_policy" "outcome" {
  for_each = local.log_metrics

  display_name          = "${var.name_prefix}: ${each.value.description}"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "at least one \"${each.value.message}\" log line in 5 minutes"
    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.outcome[each.key].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "86400s"
  }

  documentation {
    content   = each.value.documentation
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_logging_metric" "reconcile_pass_complete" {
  name        = "${var.name_prefix}/reconcile_pass_complete"
  description = "Completed passes of the scheduled reconcile over every user."
  filter      = "jsonPayload.message=\"reconcile pass complete\""

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }

  depends_on = [google_project_service.api]
}

resource "google_monitoring_alert_policy" "reconcile_stopped" {
  display_name          = "${var.name_prefix}: no reconcile pass completed for ${var.reconcile_alert_absent_minutes} minutes"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "no \"reconcile pass complete\" log line for ${var.reconcile_alert_absent_minutes} minutes"
    condition_absent {
      filter   = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.reconcile_pass_complete.name}\""
      duration = "${var.reconcile_alert_absent_minutes * 60}s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "The scheduled reconcile (Cloud Scheduler job ${google_cloud_scheduler_job.reconcile_sweep.name}, POST /sweep/reconcile on the operator function) has not completed a pass over every user in the window, so drift would go unnoticed. Check the job's last runs and the operator function's logs for `reconcile page` (a 503 or a lost race moves nothing); `credits health` shows the current pass's cursor. If the job runs but the pass is slower than the window (more users than reconcile_page_users runs cover, see docs/capacity.md), raise reconcile_page_users or run it more often. `credits reconcile` checks every user at once meanwhile."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "promo_dead_letters" {
  display_name          = "${var.name_prefix}: promo messages in the dead-letter subscription"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "undelivered messages in ${google_pubsub_subscription.promo_dead_letter.name}"
    condition_threshold {
      filter          = "resource.type=\"pubsub_subscription\" AND resource.labels.subscription_id=\"${google_pubsub_subscription.promo_dead_letter.name}\" AND metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "300s"
      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "Promo messages failed ${var.promo_max_delivery_attempts} deliveries and wait in the dead-letter subscription (kept 7 days). Inspect with `gcloud pubsub subscriptions pull ${google_pubsub_subscription.promo_dead_letter.name} --limit=10`, fix the cause, and publish them again to the promo topic (grants are idempotent per grant_id and user)."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "function_errors" {
  for_each = local.monitored_services

  display_name          = "${var.name_prefix}: ${each.key} answers 5xx or 503"
  combiner              = "OR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "${each.key}: more than ${var.alert_5xx_per_second} 5xx per second"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${each.value}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_5xx_per_second
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "${each.key}: more than ${var.alert_503_per_second} 503 per second"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${each.value}\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code=\"503\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_503_per_second
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      trigger {
        count = 1
      }
    }
  }

  documentation {
    content   = "A 503 means nothing was written (contention, or Firestore or the Stripe API unreachable): check Firestore's status and the function's `firestore unavailable` logs. Any other 5xx is a fault the function did not map: look for `unexpected fault` in its logs."
    mime_type = "text/markdown"
  }

  depends_on = [google_project_service.monitoring]
}
