# The whole credit system on one Google Cloud project: 2nd-gen Cloud Functions sharing the
# `shared` package, Firestore (database, rules, index), the promo topic with its dead-letter
# topic, the Stripe secrets, and the BigQuery tables analytics reads.
#
# Files: functions.tf (sources, functions, service accounts, invokers), operator.tf (the scheduler's
# identity), holds.tf and reconcile.tf (the schedules), events.tf, pubsub.tf, firestore.tf,
# secrets.tf, bigquery.tf, monitoring.tf (alert policies), auto_topup.tf, console.tf (the support
# console behind IAP). Deploying is described in docs/how-to/deploy.md.

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  repo_root = abspath("${path.module}/..")

  # The HTTP-served functions: the entry point is the function's name, the deployed name is prefixed
  # and hyphenated (Cloud Run service names allow no underscores).
  functions = {
    spend = {
      name        = "${var.name_prefix}-spend"
      description = "Spend credits, read balances and history (called by the app backend)."
      ingress     = "ALLOW_ALL"
      timeout     = 60
      # Requests one instance serves at once. A spend mostly waits on Firestore, and spends for
      # one user that meet in an instance share one commit (shared/store/group.py); THREADS
      # gives functions-framework's server as many threads.
      concurrency = var.spend_request_concurrency
      env = {
        CREDITS_SPEND_ORDER = var.spend_order
        THREADS             = tostring(var.spend_request_concurrency)
        # An auto top-up setting's price must be a catalog add-on (PUT /users/{id}/settings).
        CREDITS_CATALOG = "catalog.json"
      }
      # The API's OpenAPI document, served at GET /openapi.json from beside main.py.
      extra_files = {
        "openapi.json" = "${local.repo_root}/functions/spend/openapi.json"
        "catalog.json" = abspath(var.catalog_file)
      }
    }
    stripe_webhook = {
      name        = "${var.name_prefix}-stripe-webhook"
      description = "Stripe webhook endpoint: renewals, add-on packs, cancellations."
      ingress     = "ALLOW_ALL"
      timeout     = 60
      concurrency = 1
      env = {
        # A path relative to the function's working directory, the bundle's root (/workspace).
        CREDITS_CATALOG = "catalog.json"
      }
      extra_files = {
        "catalog.json" = abspath(var.catalog_file)
      }
    }
    # The scheduled operator work (hold expiry sweep, reconcile pages), apart from the app's API:
    # only the scheduler's identity may invoke it (operator.tf).
    operator_sweeps = {
      name        = "${var.name_prefix}-operator"
      description = "Scheduled operator work: release expired holds, reconcile a page of users (Cloud Scheduler only)."
      # Cloud Scheduler's calls count as internal traffic; nothing outside the project can reach it.
      ingress     = "ALLOW_INTERNAL_ONLY"
      timeout     = 120
      concurrency = 1
      env         = {}
      extra_files = {}
    }
    promo_grant = {
      name        = "${var.name_prefix}-promo-grant"
      description = "Promotional grants, pushed from the promo topic."
      # Pub/Sub push counts as internal traffic; nothing outside the project can reach it.
      ingress     = "ALLOW_INTERNAL_ONLY"
      timeout     = 300
      concurrency = 1
      env         = {}
      extra_files = {}
    }
  }

  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"

  apis = [
    "artifactregistry.googleapis.com",
    "bigquery.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudfunctions.googleapis.com",
    "cloudscheduler.googleapis.com",
    # The support console's load balancer and Identity-Aware Proxy (console.tf).
    "compute.googleapis.com",
    "iap.googleapis.com",
    "firebaserules.googleapis.com",
    "firestore.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
}

resource "google_project_service" "api" {
  for_each = toset(local.apis)

  project = var.project_id
  service = each.value
  # Turning an API off on destroy would break anything else in the project that uses it.
  disable_on_destroy = false
}
