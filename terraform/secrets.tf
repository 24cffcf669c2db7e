# The Stripe credentials. Terraform creates the secrets but never holds their values (they
# would land in the state): add each value as a secret version, as docs/how-to/deploy.md describes.

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

# The key that signs the spend API's history page tokens: a secret, so a token cannot be forged
# from the source. Add a version of random bytes once (see "Secrets" in docs/how-to/deploy.md).
resource "google_secret_manager_secret" "page_token_key" {
  secret_id = "${var.name_prefix}-page-token-key"
  labels = {
    env_var = "credits_page_token_key"
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "spend_reads_page_token_key" {
  secret_id = google_secret_manager_secret.page_token_key.id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.function["spend"].member
}
