provider "google" {
  project = var.project_id
  region  = var.region
  zone    = var.zone

  default_labels = merge({ app = "hashtag-pulse" }, var.labels)
}

locals {
  # One place for what configuration.conf needs: the `configuration` output and the VM's startup
  # script both read it, so a laptop and the VM get the same file from terraform/write_config.py.
  deployment = {
    twitter_config = {
      hashtag = var.hashtag
    }
    gcp_config = {
      project_id       = var.project_id
      data_lake_bucket = google_storage_bucket.lake.name
      bucket_filename  = var.lake_prefix
      bq_dataset       = google_bigquery_dataset.warehouse.dataset_id
      bq_location      = google_bigquery_dataset.warehouse.location
    }
    pipeline = {
      sources   = join(", ", var.sources)
      lake      = "gs://${google_storage_bucket.lake.name}/${var.lake_prefix}"
      warehouse = "bigquery://${var.project_id}/${google_bigquery_dataset.warehouse.dataset_id}"
    }
    stream = {
      sources = join(", ", var.stream_sources)
    }
    prefect_config = {
      gcp_credentials       = "${var.name}-gcp-credentials"
      gcs_bucket_block_name = "${var.name}-lake"
    }
  }
  # extra_configuration's sections and keys, with the deployment's over them
  configuration = {
    for section in distinct(concat(keys(var.extra_configuration), keys(local.deployment))) :
    section => merge(lookup(var.extra_configuration, section, {}), lookup(local.deployment, section, {}))
  }

  # A family that comes with its GPUs (a2, a3, g2, g4) needs the same maintenance policy as an
  # attached GPU.
  has_gpu = var.gpu_count > 0 || can(regex("^(a2|a3|a4|g2|g4)-", var.machine_type))

  services = toset([
    "bigquery.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "iam.googleapis.com",
    "iap.googleapis.com",
    "oslogin.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ])
}

resource "google_project_service" "enabled" {
  for_each = local.services

  service = each.value
  # Other workloads in the project may use these APIs; destroy leaves them on.
  disable_on_destroy = false
}
