variable "project_id" {
  description = "Google Cloud project that hosts everything."
  type        = string
}

variable "region" {
  description = "Region of the functions, the source bucket, the image repository and the topics' consumers."
  type        = string
  default     = "us-central1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (functions, service accounts, topics, bucket)."
  type        = string
  default     = "credits"

  validation {
    # Service account ids are at most 30 characters; the longest suffix is "-stripe-webhook".
    condition     = can(regex("^[a-z][a-z0-9-]{1,13}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3 to 15 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "app_service_account" {
  description = "Email of the app backend's service account: the only principal allowed to invoke spend."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.app_service_account))
    error_message = "app_service_account must be a service account email (name@project.iam.gserviceaccount.com)."
  }
}

variable "catalog_file" {
  description = "Path of the catalog JSON (Stripe price ids to credits) shipped with stripe_webhook as catalog.json."
  type        = string
}

variable "spend_order" {
  description = "CREDITS_SPEND_ORDER of the spend function."
  type        = string
  default     = "permanent_first"

  validation {
    condition     = contains(["permanent_first", "monthly_first"], var.spend_order)
    error_message = "spend_order must be permanent_first or monthly_first."
  }
}

variable "firestore_location" {
  description = "Location of the Firestore database (a region or a multi-region such as nam5); defaults to region."
  type        = string
  default     = null
}

variable "bigquery_location" {
  description = "Location of the BigQuery dataset."
  type        = string
  default     = "US"
}

variable "bigquery_dataset_id" {
  description = "BigQuery dataset holding users_credits and credits_transactions."
  type        = string
  default     = "credits"
}

variable "promo_max_delivery_attempts" {
  description = "Deliveries of a promo message before Pub/Sub moves it to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.promo_max_delivery_attempts >= 5 && var.promo_max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "max_instances" {
  description = "Maximum instances of each function."
  type        = map(number)
  default = {
    spend           = 20
    stripe_webhook  = 10
    promo_grant     = 5
    operator_sweeps = 2
  }
}

variable "stripe_secret_versions" {
  description = "Secret Manager version the webhook reads for each Stripe secret. A version number pins it (changing it deploys a new revision); latest is read when an instance starts."
  type        = map(string)
  default = {
    STRIPE_WEBHOOK_SECRET = "latest"
    STRIPE_API_KEY        = "latest"
  }

  validation {
    condition = (
      join(",", sort(keys(var.stripe_secret_versions))) == "STRIPE_API_KEY,STRIPE_WEBHOOK_SECRET"
      && alltrue([for version in values(var.stripe_secret_versions) : can(regex("^(latest|[1-9][0-9]*)$", version))])
    )
    error_message = "stripe_secret_versions needs STRIPE_WEBHOOK_SECRET and STRIPE_API_KEY, each latest or a version number."
  }
}

variable "low_balance_threshold" {
  description = "CREDITS_LOW_BALANCE of ledger_events: balance.low fires when a balance falls below it; 0 turns it off. A user document's low_balance_threshold overrides it."
  type        = number
  default     = 0

  validation {
    condition     = var.low_balance_threshold >= 0 && floor(var.low_balance_threshold) == var.low_balance_threshold
    error_message = "low_balance_threshold must be a whole number, 0 or more."
  }
}

variable "max_instances_ledger_events" {
  description = "Maximum instances of ledger_events."
  type        = number
  default     = 5
}

variable "events_max_delivery_attempts" {
  description = "Deliveries of an event to BigQuery before Pub/Sub moves it to the events dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.events_max_delivery_attempts >= 5 && var.events_max_delivery_attempts <= 100
    error_message = "Pub/Sub accepts 5 to 100 delivery attempts."
  }
}

variable "page_token_key_version" {
  description = "Version of the page-token key secret the spend function reads (a version number pins it; latest is read when an instance starts)."
  type        = string
  default     = "latest"
}

variable "reconcile_schedule" {
  description = "Cron schedule (Etc/UTC) of the reconcile page runs; with reconcile_page_users it sets how many users a day are checked (docs/capacity.md)."
  type        = string
  default     = "*/5 * * * *"
}

variable "reconcile_page_users" {
  description = "Users each scheduled reconcile run checks (1 to 2000): 500 every 5 minutes is 144,000 users a day. A pass must complete within reconcile_alert_absent_minutes, or the missing-pass alert fires."
  type        = number
  default     = 500

  validation {
    condition     = var.reconcile_page_users >= 1 && var.reconcile_page_users <= 2000 && floor(var.reconcile_page_users) == var.reconcile_page_users
    error_message = "reconcile_page_users must be a whole number from 1 to 2000 (the route's limit)."
  }
}

variable "reconcile_alert_absent_minutes" {
  description = "Alert when no reconcile pass has completed for this many minutes (Cloud Monitoring allows at most 1410, 23.5 hours)."
  type        = number
  default     = 1410

  validation {
    condition     = var.reconcile_alert_absent_minutes >= 10 && var.reconcile_alert_absent_minutes <= 1410 && floor(var.reconcile_alert_absent_minutes) == var.reconcile_alert_absent_minutes
    error_message = "reconcile_alert_absent_minutes must be a whole number from 10 to 1410."
  }
}

variable "spend_request_concurrency" {
  description = "Requests one spend instance serves at once (1 CPU); also its server's thread count."
  type        = number
  default     = 8

  validation {
    condition     = var.spend_request_concurrency >= 1 && var.spend_request_concurrency <= 80
    error_message = "spend_request_concurrency must be between 1 and 80."
  }
}

variable "auto_topup_failure_ratio" {
  description = "Alert when more than this share of auto top-up attempts settled in the last hour failed (0 to 1)."
  type        = number
  default     = 0.5

  validation {
    condition     = var.auto_topup_failure_ratio > 0 && var.auto_topup_failure_ratio < 1
    error_message = "auto_topup_failure_ratio is a share between 0 and 1."
  }
}

# --- The support console (console.tf) ----------------------------------------------------------

variable "console_domain" {
  description = "Host name the support console is served on behind IAP (e.g. support.example.com); null: no console."
  type        = string
  default     = null
}

variable "console_iap_members" {
  description = "Principals IAP lets through to the console, e.g. group:credits-support@example.com."
  type        = list(string)
  default     = []
}

variable "console_admins" {
  description = "Console admins: emails, or domain:example.com (CONSOLE_ADMINS)."
  type        = list(string)
  default     = []
}

variable "console_agents" {
  description = "Console agents, who take actions with adjustments up to console_agent_adjust_limit (CONSOLE_AGENTS)."
  type        = list(string)
  default     = []
}

variable "console_viewers" {
  description = "Console viewers, read only (CONSOLE_VIEWERS)."
  type        = list(string)
  default     = []
}

variable "console_agent_adjust_limit" {
  description = "Most credits an agent may add or remove in one adjustment."
  type        = number
  default     = 1000

  validation {
    condition     = var.console_agent_adjust_limit >= 0 && floor(var.console_agent_adjust_limit) == var.console_agent_adjust_limit
    error_message = "console_agent_adjust_limit must be a whole number, 0 or more."
  }
}

variable "console_secret_key_version" {
  description = "Secret Manager version of the console's signing key (add version 1 before setting console_domain)."
  type        = string
  default     = "1"
}
