# The expiry sweep of holds: every minute, Cloud Scheduler calls the operator function's
# POST /sweep/holds, which releases a bounded page of expired holds per run. Expired holds already
# count as released in every read, so the sweep only writes their records; a missed or doubled
# run changes nothing twice.

resource "google_cloud_scheduler_job" "holds_sweep" {
  name             = "${var.name_prefix}-holds-sweep"
  description      = "Release expired credit holds (POST /sweep/holds on the operator function)."
  region           = var.region
  schedule         = "* * * * *"
  time_zone        = "Etc/UTC"
  attempt_deadline = "60s"

  retry_config {
    # The next run a minute later does the same work; no retries pile up behind a slow run.
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = "${google_cloudfunctions2_function.function["operator_sweeps"].url}/sweep/holds"
    headers     = { "Content-Type" = "application/json" }
    body        = base64encode(jsonencode({ limit = 200 }))

    oidc_token {
      service_account_email = google_service_account.scheduler.email
      audience              = google_cloudfunctions2_function.function["operator_sweeps"].url
    }
  }

  depends_on = [google_project_service.api, google_cloud_run_v2_service_iam_member.scheduler_invokes_operator]
}
