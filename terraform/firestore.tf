# The Firestore database, its client rules (firestore.rules) and the indexes of the history queries
# and of GET /holds.

resource "google_firestore_database" "credits" {
  # The functions use the default database.
  name        = "(default)"
  location_id = coalesce(var.firestore_location, var.region)
  type        = "FIRESTORE_NATIVE"

  # Balances are money: recoverable to any minute of the last 7 days, and not deletable by
  # accident (a destroy leaves the database in place).
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.api]
}

resource "google_firebaserules_ruleset" "firestore" {
  project = var.project_id

  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [google_firestore_database.credits]
}

resource "google_firebaserules_release" "firestore" {
  project      = var.project_id
  name         = "cloud.firestore"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.firestore.name}"

  lifecycle {
    replace_triggered_by = [google_firebaserules_ruleset.firestore]
  }
}

# A user's records by seq (shared/store/scans.py): GET /transactions/{user_id} with each
# combination of its filters, GET /balance/{user_id}?as_of=, and the store's learning of a
# document's last seq. Without a filter they use `client_history_by_seq` below (Firestore refuses
# two identical indexes). Equality filters (user_id,
# type, pool) come first; a range on created_at (since, until, as_of) is ordered after seq, in
# the same direction, as Firestore orders a query with an inequality on another field.
locals {
  transaction_seq_indexes = {
    by_type_and_seq       = ["type"]
    by_pool_and_seq       = ["pool"]
    by_type_pool_and_seq  = ["type", "pool"]
    by_seq_in_time        = ["created_at"]
    by_type_seq_in_time   = ["type", "created_at"]
    by_pool_seq_in_time   = ["pool", "created_at"]
    by_type_pool_seq_time = ["type", "pool", "created_at"]
  }
}

resource "google_firestore_index" "transactions_by_seq" {
  for_each   = local.transaction_seq_indexes
  database   = google_firestore_database.credits.name
  collection = "credits_transactions"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  dynamic "fields" {
    for_each = [for field in each.value : field if field != "created_at"]
    content {
      field_path = fields.value
      order      = "ASCENDING"
    }
  }

  fields {
    field_path = "seq"
    order      = "DESCENDING"
  }

  dynamic "fields" {
    for_each = contains(each.value, "created_at") ? ["created_at"] : []
    content {
      field_path = fields.value
      order      = "DESCENDING"
    }
  }
}

# The app's own client (CONTRACT section 7; clients/web): a user's history newest first, as
# `where user_id == uid, orderBy created_at desc, limit n` and `where user_id == uid, orderBy seq desc,
# limit n`. Firestore orders ties by document name in the same direction, which each index carries
# implicitly.
resource "google_firestore_index" "client_history_by_created_at" {
  database   = google_firestore_database.credits.name
  collection = "credits_transactions"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }
}

resource "google_firestore_index" "client_history_by_seq" {
  database   = google_firestore_database.credits.name
  collection = "credits_transactions"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "seq"
    order      = "DESCENDING"
  }
}

# The hold expiry sweep: status == "held" and expires_at <= now, soonest first
# (shared/store/scans.py's expired_holds).
resource "google_firestore_index" "expired_holds" {
  database   = google_firestore_database.credits.name
  collection = "credit_holds"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "expires_at"
    order      = "ASCENDING"
  }
}

# GET /holds?user_id=U: where user_id == U, newest first, ties broken by document id (the order
# shared/store/scans.py's list_holds asks for; the document id follows the last field's direction).
resource "google_firestore_index" "holds_by_user" {
  database   = google_firestore_database.credits.name
  collection = "credit_holds"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}

# GET /holds?user_id=U&status=S: the same with status == S, or status in [held, expired] for
# status=expired (a hold reads as expired before its release is written).
resource "google_firestore_index" "holds_by_user_and_status" {
  database   = google_firestore_database.credits.name
  collection = "credit_holds"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}

# Auto top-up's sweep of attempts whose trigger was lost: status == "pending" and created_at <
# a cutoff, oldest first (shared/store/scans.py's stale_attempts).
resource "google_firestore_index" "stale_topup_attempts" {
  database   = google_firestore_database.credits.name
  collection = "credits_topups"

  fields {
    field_path = "status"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "ASCENDING"
  }
}

# `credits topup show USER`: where user_id == U [and created_at >= the month's start], newest
# first, ties broken by document id (shared/store/scans.py's user_attempts).
resource "google_firestore_index" "topup_attempts_by_user" {
  database   = google_firestore_database.credits.name
  collection = "credits_topups"

  fields {
    field_path = "user_id"
    order      = "ASCENDING"
  }

  fields {
    field_path = "created_at"
    order      = "DESCENDING"
  }

  fields {
    field_path = "__name__"
    order      = "DESCENDING"
  }
}

# A user's open holds are read with the user document, never queried: indexing their subfields
# would only add index writes to every change of a user with open holds.
resource "google_firestore_field" "open_holds_unindexed" {
  database   = google_firestore_database.credits.name
  collection = "users_credits"
  field      = "open_holds"

  index_config {}
}

# Hot spots: Firestore limits a collection to 500 writes per second while it holds a
# monotonically increasing indexed field (docs/capacity.md). `last_updated` on the user documents
# is never queried, so it is not indexed at all: promo campaigns and spends of many users can
# write users_credits faster than that.
resource "google_firestore_field" "user_last_updated_unindexed" {
  database   = google_firestore_database.credits.name
  collection = "users_credits"
  field      = "last_updated"

  index_config {}
}

# `created_at` on the records is queried in ascending order by the usage report
# (scans.transactions_between), so its ascending index stays; the descending and array-contains
# indexes are never used and only add index writes. The history queries use the composite indexes
# above, whose entries start with user_id and are not sequential across users.
resource "google_firestore_field" "transaction_created_at_ascending_only" {
  database   = google_firestore_database.credits.name
  collection = "credits_transactions"
  field      = "created_at"

  index_config {
    indexes {
      order = "ASCENDING"
    }
  }
}

# Commit witnesses (credits_commits/{change_id}): each commit creates one, so a commit whose reply
# was lost can be judged by a document no other commit could have written. They are only needed
# while that is resolved (seconds), so Firestore's TTL policy deletes them once `expire_at` (a week
# after the commit) has passed. Nothing queries them: no index at all, which also keeps their
# monotonically increasing times from limiting the write rate.
resource "google_firestore_field" "commit_witness_ttl" {
  database   = google_firestore_database.credits.name
  collection = "credits_commits"
  field      = "expire_at"

  ttl_config {}
  index_config {}
}

resource "google_firestore_field" "commit_witness_created_at_unindexed" {
  database   = google_firestore_database.credits.name
  collection = "credits_commits"
  field      = "created_at"

  index_config {}
}

# The Stripe events' journal (webhook_events/{event_id}): what Stripe sent and what became of it,
# kept 400 days after an event's last delivery (`expire_at`), then deleted by Firestore's TTL policy.
# The raw body is never queried, so it is not indexed (it would also exceed an index entry's size).
resource "google_firestore_field" "webhook_events_ttl" {
  database   = google_firestore_database.credits.name
  collection = "webhook_events"
  field      = "expire_at"

  ttl_config {}
}

resource "google_firestore_field" "webhook_events_raw_unindexed" {
  database   = google_firestore_database.credits.name
  collection = "webhook_events"
  field      = "raw"

  index_config {}
}
