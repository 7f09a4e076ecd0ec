resource "google_compute_instance" "pulse" {
  # checkov:skip=CKV_GCP_38: a customer-supplied key would sit in plain text in Terraform's state; the disk holds code, a virtualenv and Prefect's run history (the data is in the bucket and the dataset), and Google encrypts it at rest.
  name         = var.name
  machine_type = var.machine_type
  zone         = var.zone

  boot_disk {
    initialize_params {
      image = var.image
      size  = var.boot_disk_size_gb
      type  = "pd-balanced"
    }
  }

  # No access_config: no public address. SSH arrives through IAP, egress leaves through Cloud NAT.
  network_interface {
    subnetwork = google_compute_subnetwork.pulse.id
  }

  service_account {
    email = google_service_account.pulse.email
    # Google's recommendation: the full scope, with the service account's IAM roles as the limit.
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    # The NVIDIA driver that the startup script installs is an unsigned kernel module, which Secure
    # Boot would refuse to load; vTPM and integrity monitoring stay on either way.
    enable_secure_boot          = !local.has_gpu
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  dynamic "guest_accelerator" {
    for_each = var.gpu_count > 0 ? [var.gpu_type] : []
    content {
      type  = guest_accelerator.value
      count = var.gpu_count
    }
  }

  scheduling {
    # VMs with GPUs cannot live-migrate.
    on_host_maintenance = local.has_gpu ? "TERMINATE" : "MIGRATE"
    automatic_restart   = true
  }

  metadata = {
    enable-oslogin         = "TRUE"
    block-project-ssh-keys = "TRUE"
    serial-port-enable     = "FALSE"
    # In metadata rather than metadata_startup_script: a change applies at the next boot instead of
    # replacing the VM (and its Prefect database).
    startup-script = templatefile("${path.module}/startup.sh", local.startup_script_vars)
  }

  allow_stopping_for_update = true

  lifecycle {
    precondition {
      condition     = startswith(var.zone, "${var.region}-")
      error_message = "zone must be in region (${var.region})."
    }
    precondition {
      condition     = var.gpu_count == 0 || startswith(var.machine_type, "n1-")
      error_message = "gpu_count > 0 attaches ${var.gpu_type}, which needs an n1-* machine_type (for example n1-standard-4)."
    }
  }

  # The startup script uses the roles on its first boot.
  depends_on = [
    google_storage_bucket_iam_member.lake_object_user,
    google_bigquery_dataset_iam_member.warehouse_data_editor,
    google_project_iam_member.job_user,
    google_secret_manager_secret_iam_member.prefect_auth_accessor,
    google_secret_manager_secret_iam_member.prefect_auth_version_adder,
    google_secret_manager_secret_iam_member.source_secret_accessor,
  ]
}

locals {
  startup_script_vars = {
    project_id  = var.project_id
    repo_url    = var.repo_url
    repo_ref    = var.repo_ref
    auth_secret = google_secret_manager_secret.prefect_auth.secret_id
    gpu         = local.has_gpu ? "1" : "0"
    # NAME=secret-id pairs, space-separated (the variable's validation keeps both plain words)
    source_secrets = join(" ", [for name, id in var.source_secrets : "${name}=${id}"])
    # the part of `terraform output -json` that write_config.py reads
    terraform_outputs = jsonencode({ configuration = { value = local.configuration } })
  }
}
