# The support console (functions/console and the console package): an HTTP function that support
# and finance staff reach only through an external HTTPS load balancer whose backend
# Identity-Aware Proxy guards. Off until var.console_domain names the host it is served on.
#
# - Ingress is internal and load balancer only: nothing reaches the function around IAP.
# - IAP lets in the principals of var.console_iap_members (a Google group, say); the console
#   then gives each person a role from var.console_admins / console_agents / console_viewers and
#   verifies IAP's signed header against the backend's audience (CONSOLE_IAP_AUDIENCE).
# - Its runtime identity may use Firestore's credits database and read its own signing key,
#   nothing else: it calls no Stripe API (no Stripe secret), publishes nothing.
# - The signing key (sessions, CSRF tokens) lives in Secret Manager; add its first version before
#   setting console_domain (docs/how-to/use-the-support-console.md).

locals {
  console_enabled = var.console_domain != null
  console_name    = "${var.name_prefix}-console"
  # The console package beside main.py: its code, templates and style sheet (never __pycache__).
  console_files = {
    for relative in setunion(
      fileset(local.repo_root, "console/**/*.py"),
      fileset(local.repo_root, "console/templates/*.html"),
      fileset(local.repo_root, "console/static/*.css"),
    ) : relative => "${local.repo_root}/${relative}"
  }
  iap_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-iap.iam.gserviceaccount.com"
}

module "console_source" {
  source = "./modules/function_source"

  repo_root = local.repo_root
  function  = "console"
  # Turning auto top-up on or off joins the setting to the catalog, as the API's settings PUT does.
  extra_files = merge(local.console_files, { "catalog.json" = abspath(var.catalog_file) })
}

data "archive_file" "console_source" {
  type             = "zip"
  output_path      = "${path.module}/build/console-${module.console_source.sha256}.zip"
  output_file_mode = "0644"

  dynamic "source" {
    for_each = module.console_source.files
    content {
      filename = source.key
      content  = file(source.value)
    }
  }
}

resource "google_storage_bucket_object" "console_source" {
  count = local.console_enabled ? 1 : 0

  name   = "console/${module.console_source.sha256}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.console_source.output_path
}

resource "google_service_account" "console" {
  count = local.console_enabled ? 1 : 0

  account_id   = "${var.name_prefix}-console"
  display_name = "Runtime of the support console (reads and corrects the credit ledger)"
}

resource "google_project_iam_member" "console_firestore" {
  count = local.console_enabled ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = google_service_account.console[0].member

  condition {
    title      = "credits-database-only"
    expression = "resource.name == \"${google_firestore_database.credits.id}\""
  }
}

resource "google_secret_manager_secret" "console_key" {
  count = local.console_enabled ? 1 : 0

  secret_id = "${var.name_prefix}-console-key"
  labels = {
    env_var = "console_secret_key"
  }

  replication {
    auto {}
  }

  depends_on = [google_project_service.api]
}

resource "google_secret_manager_secret_iam_member" "console_reads_key" {
  count = local.console_enabled ? 1 : 0

  secret_id = google_secret_manager_secret.console_key[0].id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.console[0].member
}

resource "google_cloudfunctions2_function" "console" {
  count = local.console_enabled ? 1 : 0

  name        = local.console_name
  location    = var.region
  description = "Support console: find a user, read the ledger, put things right (behind IAP)."

  build_config {
    runtime           = "python311"
    entry_point       = "console"
    service_account   = google_service_account.builder.id
    docker_repository = google_artifact_registry_repository.functions.id
    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.console_source[0].name
      }
    }
  }

  service_config {
    service_account_email = google_service_account.console[0].email
    # Only the load balancer (and so IAP) reaches it.
    ingress_settings                 = "ALLOW_INTERNAL_AND_GCLB"
    available_memory                 = "512Mi"
    timeout_seconds                  = 60
    max_instance_count               = 3
    min_instance_count               = 0
    max_instance_request_concurrency = 8
    all_traffic_on_latest_revision   = true

    environment_variables = {
      GOOGLE_CLOUD_PROJECT       = var.project_id
      THREADS                    = "8"
      CREDITS_CATALOG            = "catalog.json"
      CONSOLE_ADMINS             = join(",", var.console_admins)
      CONSOLE_AGENTS             = join(",", var.console_agents)
      CONSOLE_VIEWERS            = join(",", var.console_viewers)
      CONSOLE_AGENT_ADJUST_LIMIT = tostring(var.console_agent_adjust_limit)
      # IAP's signed header is verified against this audience on every request.
      CONSOLE_IAP_AUDIENCE = "/projects/${data.google_project.this.number}/global/backendServices/${google_compute_backend_service.console[0].generated_id}"
    }

    secret_environment_variables {
      key        = "CONSOLE_SECRET_KEY"
      project_id = var.project_id
      secret     = google_secret_manager_secret.console_key[0].secret_id
      version    = var.console_secret_key_version
    }
  }

  depends_on = [
    google_project_service.api,
    google_project_iam_member.console_firestore,
    google_project_iam_member.builder_logs,
    google_project_iam_member.builder_sources,
    google_artifact_registry_repository_iam_member.builder_images,
    google_secret_manager_secret_iam_member.console_reads_key,
  ]
}

# IAP calls the function as its service agent once it has let a person through.
resource "google_cloud_run_v2_service_iam_member" "iap_invokes_console" {
  count = local.console_enabled ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.console[0].name
  role     = "roles/run.invoker"
  member   = local.iap_service_agent
}

# --- The load balancer IAP guards --------------------------------------------------------------

# Named by the function's name (not its resource), so the backend's audience can be given to the
# function without a cycle.
resource "google_compute_region_network_endpoint_group" "console" {
  count = local.console_enabled ? 1 : 0

  name                  = "${local.console_name}-neg"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_function {
    function = local.console_name
  }

  depends_on = [google_project_service.api]
}

resource "google_compute_backend_service" "console" {
  count = local.console_enabled ? 1 : 0

  name                  = "${local.console_name}-backend"
  protocol              = "HTTPS"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.console[0].id
  }

  iap {
    enabled = true
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_iap_web_backend_service_iam_member" "console_access" {
  for_each = local.console_enabled ? toset(var.console_iap_members) : toset([])

  project             = var.project_id
  web_backend_service = google_compute_backend_service.console[0].name
  role                = "roles/iap.httpsResourceAccessor"
  member              = each.value
}

resource "google_compute_url_map" "console" {
  count = local.console_enabled ? 1 : 0

  name            = "${local.console_name}-urls"
  default_service = google_compute_backend_service.console[0].id
}

resource "google_compute_managed_ssl_certificate" "console" {
  count = local.console_enabled ? 1 : 0

  name = "${local.console_name}-cert"
  managed {
    domains = [var.console_domain]
  }
}

resource "google_compute_ssl_policy" "console" {
  count = local.console_enabled ? 1 : 0

  name            = "${local.console_name}-tls"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "console" {
  count = local.console_enabled ? 1 : 0

  name             = "${local.console_name}-https"
  url_map          = google_compute_url_map.console[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.console[0].id]
  ssl_policy       = google_compute_ssl_policy.console[0].id
}

resource "google_compute_global_address" "console" {
  count = local.console_enabled ? 1 : 0

  name = "${local.console_name}-ip"
}

resource "google_compute_global_forwarding_rule" "console" {
  count = local.console_enabled ? 1 : 0

  name                  = "${local.console_name}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  port_range            = "443"
  target                = google_compute_target_https_proxy.console[0].id
  ip_address            = google_compute_global_address.console[0].address
}

output "console_url" {
  description = "The support console's address (point console_domain's DNS A record at console_ip)."
  value       = local.console_enabled ? "https://${var.console_domain}/" : null
}

output "console_ip" {
  description = "The support console load balancer's IP address."
  value       = local.console_enabled ? google_compute_global_address.console[0].address : null
}
