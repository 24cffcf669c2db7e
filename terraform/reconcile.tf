# The scheduled reconcile: every few minutes, Cloud Scheduler calls the operator function's
# POST /sweep/reconcile, which checks the next page of users against their transaction records
# and moves a cursor kept in Firestore (credits_operations/reconcile). It writes no credit data:
# each confirmed drift is logged as `ledger drift` (alerted on in monitoring.tf), each completed
# pass as `reconcile pass complete` (alerted on when it stops happening). Two overlapping runs
# cannot both advance the cursor; a missed run only delays the pass.

resource "google_cloud_scheduler_job" "reconcile_sweep" {
  name             = "${var.name_prefix}-reconcile"
  description      = "Check the next page of users against their transactions (POST /sweep/reconcile on the operator function)."
  region           = var.region
  schedule         = var.reconcile_schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  retry_config {
    # A failed page is read again by the next run from the same cursor; retries would only overlap it.
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.function["operator_sweeps"].url}/sweep/reconcile"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ limit = var.reconcile_page_users }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function["operator_sweeps"].url
    }
  }

  depends_on = [google_project_service.api, google_cloud_run_v2_service_iam_member.scheduler_invokes_operator]
}
