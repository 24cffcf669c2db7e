# The scheduler's identity: Cloud Scheduler calls the operator function (hold expiry sweep,
# reconcile pages; holds.tf and reconcile.tf) with an OIDC token of this service account, the only
# principal allowed to invoke it. The app's function (spend) does not serve these routes, and this
# identity cannot call spend.

resource "google_service_account" "scheduler" {
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "Cloud Scheduler's identity for the operator function's sweeps"
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_operator" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.function["operator_sweeps"].name
  role     = "roles/run.invoker"
  member   = google_service_account.scheduler.member
}
