# The Stripe credentials. Terraform creates the secrets but never holds their values (they
# would land in the state): add each value as a secret version, as the README describes.

resource "google_secret_manager_secret" "stripe" {
  for_each = {
    STRIPE_WEBHOOK_SECRET = "${var.name_prefix}-stripe-webhook-secret"
    STRIPE_API_KEY        = "${var.name_prefix}-stripe-api-key"
  }

  secret_id = each.value
  labels = {
    env_var = lower(each.key)
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

# Only the webhook's runtime identity may read them, secret by secret.
resource "google_secret_manager_secret_iam_member" "webhook_reads_stripe" {
  for_each = google_secret_manager_secret.stripe

  secret_id = each.value.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function["stripe_webhook"].member
}
