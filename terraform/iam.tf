# The VM's identity. It has no key: code on the VM gets tokens from the metadata server.
resource "google_service_account" "pulse" {
  account_id   = var.name
  display_name = "hashtag pulse pipeline"
  description  = "Runs the hashtag pulse VM: reads and writes the lake bucket, loads and queries the warehouse dataset."

  depends_on = [google_project_service.enabled]
}

locals {
  pulse_member = "serviceAccount:${google_service_account.pulse.email}"
}

# objectUser: create, read, list, overwrite and delete objects, and no IAM on them (objectAdmin's)
resource "google_storage_bucket_iam_member" "lake_object_user" {
  bucket = google_storage_bucket.lake.name
  role   = "roles/storage.objectUser"
  member = local.pulse_member
}

resource "google_bigquery_dataset_iam_member" "warehouse_data_editor" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pulse_member
}

# Load and query jobs are created in the project, not in the dataset.
resource "google_project_iam_member" "job_user" {
  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = local.pulse_member
}

# The Prefect server's basic-auth credential. Terraform creates the secret but no version: the VM
# generates the password on its first boot and adds it, so the password is never in Terraform's
# state, in the instance metadata or in a file on a laptop.
resource "google_secret_manager_secret" "prefect_auth" {
  secret_id = "${var.name}-prefect-auth"

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "prefect_auth_accessor" {
  secret_id = google_secret_manager_secret.prefect_auth.id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.pulse_member
}

resource "google_secret_manager_secret_iam_member" "prefect_auth_version_adder" {
  secret_id = google_secret_manager_secret.prefect_auth.id
  role      = "roles/secretmanager.secretVersionAdder"
  member    = local.pulse_member
}

# The sources' secrets, which the user creates (their values never pass through Terraform): the
# VM's account may read these and no other.
resource "google_secret_manager_secret_iam_member" "source_secret_accessor" {
  for_each = var.source_secrets

  project   = var.project_id
  secret_id = each.value
  role      = "roles/secretmanager.secretAccessor"
  member    = local.pulse_member
}
