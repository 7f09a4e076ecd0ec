# The module's own network: nothing else lives in it, and destroy removes it with the VM.
resource "google_compute_network" "pulse" {
  name                    = var.name
  auto_create_subnetworks = false

  depends_on = [google_project_service.enabled]
}

resource "google_compute_subnetwork" "pulse" {
  name          = var.name
  network       = google_compute_network.pulse.id
  region        = var.region
  ip_cidr_range = var.subnet_cidr

  # The VM has no public address: Google APIs through Private Google Access, the rest through NAT.
  private_ip_google_access = true

  log_config {
    aggregation_interval = "INTERVAL_10_MIN"
    flow_sampling        = 0.5
    metadata             = "EXCLUDE_ALL_METADATA"
  }
}

# Outbound only (apt, PyPI, the git clone): Cloud NAT accepts no inbound connection.
resource "google_compute_router" "pulse" {
  name    = var.name
  network = google_compute_network.pulse.id
  region  = var.region
}

resource "google_compute_router_nat" "pulse" {
  name                               = var.name
  router                             = google_compute_router.pulse.name
  region                             = var.region
  nat_ip_allocate_option             = "AUTO_ONLY"
  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"

  subnetwork {
    name                    = google_compute_subnetwork.pulse.id
    source_ip_ranges_to_nat = ["ALL_IP_RANGES"]
  }

  log_config {
    enable = true
    filter = "ERRORS_ONLY"
  }
}

# The only ingress rule: SSH from Identity-Aware Proxy. The Prefect UI listens on 127.0.0.1 and is
# reached through an SSH port-forward over this tunnel, never from the internet.
resource "google_compute_firewall" "iap_ssh" {
  name      = "${var.name}-iap-ssh"
  network   = google_compute_network.pulse.id
  direction = "INGRESS"

  source_ranges           = var.ssh_source_ranges
  target_service_accounts = [google_service_account.pulse.email]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }

  log_config {
    metadata = "INCLUDE_ALL_METADATA"
  }
}
