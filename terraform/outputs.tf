output "spend_url" {
  description = "URL of spend; callable only with an ID token of app_service_account."
  value       = google_cloudfunctions2_function.function["spend"].service_config[0].uri
}

output "stripe_webhook_url" {
  description = "URL to register as the Stripe webhook endpoint."
  value       = google_cloudfunctions2_function.function["stripe_webhook"].service_config[0].uri
}

output "stripe_webhook_events" {
  description = "The Stripe event types the webhook endpoint must be subscribed to (enabled_events)."
  value = [
    "invoice.paid",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "charge.refunded",
    "charge.dispute.created",
    "charge.dispute.closed",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
  ]
}

output "promo_grant_url" {
  description = "URL of promo_grant (internal; fed by the promo topic's push subscription)."
  value       = google_cloudfunctions2_function.function["promo_grant"].service_config[0].uri
}

output "operator_url" {
  description = "URL of the operator function (internal; invoked only by Cloud Scheduler as the scheduler account)."
  value       = google_cloudfunctions2_function.function["operator_sweeps"].service_config[0].uri
}

output "promo_topic" {
  description = "Topic to publish promo grants to."
  value       = google_pubsub_topic.promo.id
}

output "promo_dead_letter_subscription" {
  description = "Pull subscription holding promo messages that failed every delivery."
  value       = google_pubsub_subscription.promo_dead_letter.id
}

output "stripe_secrets" {
  description = "Secret Manager secrets to add the Stripe values to, by environment variable."
  value       = { for key, secret in google_secret_manager_secret.stripe : key => secret.id }
}

output "function_service_accounts" {
  description = "Runtime service account of each function."
  value       = { for key, account in google_service_account.function : key => account.email }
}

output "bigquery_dataset" {
  description = "Dataset holding users_credits and credits_transactions."
  value       = google_bigquery_dataset.credits.id
}

output "events_topic" {
  description = "Topic ledger_events publishes transaction.created, balance.updated and balance.low to."
  value       = google_pubsub_topic.events.id
}

output "events_dead_letter_subscription" {
  description = "Pull subscription holding events BigQuery kept refusing."
  value       = google_pubsub_subscription.events_dead_letter.id
}
