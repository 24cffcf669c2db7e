# Source bundles, the HTTP-served functions, their service accounts and who may invoke them.

# --- Source bundles -------------------------------------------------------------------------

# The file list of each bundle is defined once, in modules/function_source (the test suite builds
# and runs bundles from the same module).
module "function_source" {
  source   = "./modules/function_source"
  for_each = local.functions

  repo_root   = local.repo_root
  function    = each.key
  extra_files = each.value.extra_files
}

data "archive_file" "function_source" {
  for_each = local.functions

  type             = "zip"
  output_path      = "${path.module}/build/${each.key}-${module.function_source[each.key].sha256}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = module.function_source[each.key].files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket" "sources" {
  # checkov:skip=CKV_GCP_62: the bucket holds build inputs only; reads and writes are in Cloud Audit Logs, a second access-log bucket adds nothing.
  name     = "${var.project_id}-${var.name_prefix}-sources"
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Object names carry their content digest, so an old bundle is never overwritten; old
  # versions of anything replaced are kept for a while, then dropped.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.api]
}

resource "google_storage_bucket_object" "function_source" {
  for_each = local.functions

  # The digest in the name makes every code, requirements or catalog change a new object, which
  # changes the function's source and redeploys it; an unchanged tree changes nothing.
  name   = "${each.key}/${module.function_source[each.key].sha256}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.function_source[each.key].output_path
}

resource "google_artifact_registry_repository" "functions" {
  # checkov:skip=CKV_GCP_84: images are rebuilt from source on every deploy; Google-managed encryption is enough for build output.
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Images built for the credit functions."
  format        = "DOCKER"

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 5
    }
  }

  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.api]
}

# --- Service accounts -----------------------------------------------------------------------

# One runtime identity per function, each with only what that function touches.
resource "google_service_account" "function" {
  for_each = local.functions

  account_id   = local.functions[each.key].name
  display_name = "Runtime of the ${each.key} function"
}

# Every function reads and writes Firestore, and only the credit system's database.
resource "google_project_iam_member" "function_firestore" {
  for_each = local.functions

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.function[each.key].member

  condition {
    title      = "credits-database-only"
    expression = "resource.name == \"${google_firestore_database.credits.id}\""
  }
}

# The identity Cloud Build runs as when it turns a bundle into an image.
resource "google_service_account" "builder" {
  account_id   = "${var.name_prefix}-builder"
  display_name = "Builds the credit functions' images"
}

resource "google_project_iam_member" "builder_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = google_service_account.builder.member
}

# Cloud Functions copies each bundle into its own staging bucket before the build reads it, so
# read access cannot be narrowed to the sources bucket alone.
resource "google_project_iam_member" "builder_sources" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = google_service_account.builder.member
}

resource "google_artifact_registry_repository_iam_member" "builder_images" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = google_service_account.builder.member
}

# --- Functions ------------------------------------------------------------------------------

resource "google_cloudfunctions2_function" "function" {
  # checkov:skip=CKV_GCP_124: spend and stripe_webhook are called from outside Google Cloud (the app backend, Stripe); spend is guarded by IAM (spend_invoker), the webhook by Stripe's signature; promo_grant and operator_sweeps are internal-only.
  for_each = local.functions

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
        object = google_storage_bucket_object.function_source[each.key].name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.function[each.key].email
    ingress_settings                 = each.value.ingress
    available_memory                 = "512Mi"
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    max_instance_count               = var.max_instances[each.key]
    min_instance_count               = 0
    max_instance_request_concurrency = each.value.concurrency
    all_traffic_on_latest_revision   = true

    environment_variables = merge({ GOOGLE_CLOUD_PROJECT = var.project_id }, each.value.env)

    # The webhook's Stripe credentials come from Secret Manager, never from plain variables.
    dynamic "secret_environment_variables" {
      for_each = { for key, secret in google_secret_manager_secret.stripe : key => secret.secret_id if each.key == "stripe_webhook" }
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = var.stripe_secret_versions[secret_environment_variables.key]
      }
    }

    # spend signs its page tokens with a key that lives only in Secret Manager.
    dynamic "secret_environment_variables" {
      for_each = each.key == "spend" ? { CREDITS_PAGE_TOKEN_KEY = google_secret_manager_secret.page_token_key.secret_id } : {}
      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = secret_environment_variables.value
        version    = var.page_token_key_version
      }
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.function_firestore,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_sources,
    google_artifact_registry_repository_iam_member.builder_images,
    google_secret_manager_secret_iam_member.webhook_reads_stripe,
    google_secret_manager_secret_iam_member.spend_reads_page_token_key,
  ]
}

# --- Invokers -------------------------------------------------------------------------------

# spend is private: only the app backend's service account may call it.
resource "google_cloud_run_v2_service_iam_member" "spend_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["spend"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${var.app_service_account}"
}

# The webhook is public: Stripe calls it without Google credentials, and every request is
# authenticated by its Stripe-Signature HMAC before anything is read or written.
resource "google_cloud_run_v2_service_iam_member" "stripe_webhook_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["stripe_webhook"].name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# promo_grant is invoked only by the promo topic's push subscription, as this identity.
resource "google_service_account" "promo_push" {
  account_id   = "${var.name_prefix}-promo-push"
  display_name = "Pushes promo messages to the promo_grant function"
}

resource "google_cloud_run_v2_service_iam_member" "promo_push_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["promo_grant"].name
  role     = "roles/run.invoker"
  member   = google_service_account.promo_push.member
}

# Pub/Sub mints the push subscription's OIDC tokens as promo_push.
resource "google_service_account_iam_member" "pubsub_signs_as_promo_push" {
  service_account_id = google_service_account.promo_push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}
