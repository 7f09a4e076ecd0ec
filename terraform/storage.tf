resource "google_storage_bucket" "lake" {
  # checkov:skip=CKV_GCP_62: usage logs would need a second bucket that is itself unlogged; Cloud Audit Logs already record who changed the bucket, and Data Access audit logs can be turned on project-wide.
  name          = var.bucket_name
  location      = var.region
  storage_class = "STANDARD"
  force_destroy = var.force_destroy

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"

  versioning {
    enabled = true
  }

  # A rewritten lake file keeps its old version for the retention period, then goes.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_bigquery_dataset" "warehouse" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption at rest; a customer-managed key needs a Cloud KMS key ring, which can never be deleted, so destroy could not remove everything apply made.
  dataset_id  = var.dataset_id
  location    = var.region
  description = "hashtag pulse warehouse: posts, post_nlp and their views."

  delete_contents_on_destroy = var.force_destroy

  depends_on = [google_project_service.enabled]
}
