output "configuration" {
  description = "Every configuration.conf key this deployment sets, by section; `python terraform/write_config.py` writes them."
  value       = local.configuration
}

output "project_id" {
  description = "The project that holds the deployment."
  value       = var.project_id
}

output "bucket_name" {
  description = "The data-lake bucket."
  value       = google_storage_bucket.lake.name
}

output "lake_url" {
  description = "The lake, as [pipeline] lake takes it."
  value       = local.deployment.pipeline.lake
}

output "dataset_id" {
  description = "The warehouse dataset."
  value       = google_bigquery_dataset.warehouse.dataset_id
}

output "warehouse_url" {
  description = "The warehouse, as [pipeline] warehouse takes it."
  value       = local.deployment.pipeline.warehouse
}

output "service_account_email" {
  description = "The pipeline's service account (the VM's identity; it has no key)."
  value       = google_service_account.pulse.email
}

output "instance_name" {
  description = "The VM that runs the Prefect server and worker."
  value       = google_compute_instance.pulse.name
}

output "zone" {
  description = "The VM's zone."
  value       = google_compute_instance.pulse.zone
}

output "prefect_auth_secret" {
  description = "Secret Manager secret that holds the Prefect server's basic-auth string (user:password)."
  value       = google_secret_manager_secret.prefect_auth.secret_id
}

output "ssh_command" {
  description = "SSH into the VM through Identity-Aware Proxy."
  value       = "gcloud compute ssh ${google_compute_instance.pulse.name} --zone ${google_compute_instance.pulse.zone} --project ${var.project_id} --tunnel-through-iap"
}

output "prefect_ui_command" {
  description = "Forward the Prefect UI to http://127.0.0.1:4200 on this machine (leave it running)."
  value       = "gcloud compute ssh ${google_compute_instance.pulse.name} --zone ${google_compute_instance.pulse.zone} --project ${var.project_id} --tunnel-through-iap -- -N -L 4200:127.0.0.1:4200"
}

output "prefect_auth_command" {
  description = "Print the Prefect UI's user:password (needs secretmanager.versions.access on the secret)."
  value       = "gcloud secrets versions access latest --secret ${google_secret_manager_secret.prefect_auth.secret_id} --project ${var.project_id}"
}
