# The promo topic and its trigger: a push subscription that delivers each message to promo_grant
# with retries, and moves a message that keeps failing to a dead-letter topic kept for review.
#
# The trigger is a push subscription managed here rather than a function event trigger, because
# the subscription Eventarc creates for an event trigger cannot be given a dead-letter policy.
# The function is still a CloudEvent function: functions-framework turns the push request into
# the google.cloud.pubsub.topic.v1.messagePublished CloudEvent, with the topic taken from the
# endpoint's path.

resource "google_pubsub_topic" "promo" {
  # checkov:skip=CKV_GCP_83: promo messages hold user ids and amounts only; Google-managed encryption is enough.
  name                       = "${var.name_prefix}-promo-grants"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

resource "google_pubsub_topic" "promo_dead_letter" {
  # checkov:skip=CKV_GCP_83: dead-lettered promo messages hold user ids and amounts only; Google-managed encryption is enough.
  name                       = "${var.name_prefix}-promo-grants-dead-letter"
  message_retention_duration = "604800s"

  depends_on = [google_project_service.api]
}

resource "google_pubsub_subscription" "promo_push" {
  name  = "${var.name_prefix}-promo-grants-push"
  topic = google_pubsub_topic.promo.id

  # Longer than the function's timeout, so a slow grant is not redelivered while it runs.
  ack_deadline_seconds       = 310
  message_retention_duration = "604800s"

  push_config {
    push_endpoint = "${google_cloudfunctions2_function.function["promo_grant"].service_config[0].uri}/${google_pubsub_topic.promo.id}"
    oidc_token {
      service_account_email = google_service_account.promo_push.email
      audience              = google_cloudfunctions2_function.function["promo_grant"].service_config[0].uri
    }
  }

  # Retries on: a transient fault makes the function fail, and Pub/Sub redelivers with backoff.
  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  # A message that still fails after this many deliveries goes to the dead-letter topic.
  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.promo_dead_letter.id
    max_delivery_attempts = var.promo_max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [
    google_cloud_run_v2_service_iam_member.promo_push_invoker,
    google_service_account_iam_member.pubsub_signs_as_promo_push,
  ]
}

# Without a subscription a dead-lettered message would be dropped; this one keeps them for
# review and replay (pull, never expires).
resource "google_pubsub_subscription" "promo_dead_letter" {
  name  = "${var.name_prefix}-promo-grants-dead-letter"
  topic = google_pubsub_topic.promo_dead_letter.id

  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Pub/Sub's own service agent forwards dead letters: it publishes to the dead-letter topic and
# acknowledges the original message on the push subscription.
resource "google_pubsub_topic_iam_member" "pubsub_publishes_dead_letters" {
  topic  = google_pubsub_topic.promo_dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "pubsub_acks_dead_letters" {
  subscription = google_pubsub_subscription.promo_push.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
