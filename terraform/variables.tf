variable "project_id" {
  description = "The GCP project that holds everything this module creates."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id: 6 to 30 lower-case letters, digits or hyphens, starting with a letter."
  }
}

variable "region" {
  description = "Region of the bucket, the dataset and the subnet (BigQuery loads need the bucket and the dataset in one location)."
  type        = string
  default     = "us-central1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region: a Compute Engine region such as us-central1 or europe-west1."
  }
}

variable "zone" {
  description = "Zone of the VM, inside region. With a GPU, pick a zone that offers gpu_type."
  type        = string
  default     = "us-central1-a"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "zone: a Compute Engine zone such as us-central1-a."
  }
}

variable "name" {
  description = "Prefix of every resource name (VM, service account, network, secret, Prefect blocks)."
  type        = string
  default     = "hashtag-pulse"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,20}[a-z0-9]$", var.name))
    error_message = "name: 6 to 22 lower-case letters, digits or hyphens, starting with a letter (it becomes a service account id)."
  }
}

variable "machine_type" {
  description = "VM machine type. A GPU from gpu_type needs an n1-* type; g2-* (NVIDIA L4) types bring their own GPU."
  type        = string
  default     = "e2-standard-2"

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*-[a-z0-9-]+$", var.machine_type))
    error_message = "machine_type: a Compute Engine machine type such as e2-standard-2 or n1-standard-4."
  }
}

variable "boot_disk_size_gb" {
  description = "Boot disk size in GB: the project, its virtual environment (about 3 GB on CPU, 8 GB with CUDA), the Prefect database and the local cache."
  type        = number
  default     = 50

  validation {
    condition     = var.boot_disk_size_gb >= 30 && var.boot_disk_size_gb <= 1000 && floor(var.boot_disk_size_gb) == var.boot_disk_size_gb
    error_message = "boot_disk_size_gb: a whole number from 30 to 1000."
  }
}

variable "image" {
  description = "Boot image. The startup script expects Debian 12 (Python 3.11, apt, gcloud)."
  type        = string
  default     = "debian-cloud/debian-12"

  validation {
    condition     = can(regex("^[a-z0-9-]+/[a-z0-9-]+$", var.image))
    error_message = "image: PROJECT/FAMILY or PROJECT/IMAGE, for example debian-cloud/debian-12."
  }
}

variable "gpu_type" {
  description = "GPU attached when gpu_count > 0 (an n1-* machine_type is required)."
  type        = string
  default     = "nvidia-tesla-t4"

  validation {
    condition     = contains(["nvidia-tesla-t4", "nvidia-tesla-p4", "nvidia-tesla-v100", "nvidia-tesla-p100"], var.gpu_type)
    error_message = "gpu_type: one of nvidia-tesla-t4, nvidia-tesla-p4, nvidia-tesla-v100, nvidia-tesla-p100 (for NVIDIA L4 use a g2-* machine_type instead)."
  }
}

variable "gpu_count" {
  description = "Number of gpu_type GPUs; 0 for a CPU-only VM."
  type        = number
  default     = 0

  validation {
    condition     = contains([0, 1, 2, 4], var.gpu_count)
    error_message = "gpu_count: 0, 1, 2 or 4."
  }
}

variable "bucket_name" {
  description = "Name of the data-lake bucket; bucket names are global, so include something unique such as the project id."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$", var.bucket_name)) && !startswith(var.bucket_name, "goog")
    error_message = "bucket_name: 3 to 63 lower-case letters, digits, hyphens or underscores, starting and ending with a letter or digit, not starting with goog."
  }
}

variable "lake_prefix" {
  description = "Folder inside the bucket that holds the lake ([gcp_config] bucket_filename)."
  type        = string
  default     = "lake"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", var.lake_prefix))
    error_message = "lake_prefix: path segments of letters, digits, hyphens and underscores, without leading or trailing slashes."
  }
}

variable "dataset_id" {
  description = "BigQuery dataset of the warehouse ([gcp_config] bq_dataset)."
  type        = string
  default     = "hashtag_pulse"

  validation {
    condition     = length(var.dataset_id) <= 1024 && can(regex("^[A-Za-z0-9_]+$", var.dataset_id))
    error_message = "dataset_id: at most 1024 letters, digits and underscores."
  }
}

variable "noncurrent_version_retention_days" {
  description = "Days an overwritten or deleted lake object stays recoverable (bucket versioning) before the lifecycle rule deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_retention_days >= 1 && var.noncurrent_version_retention_days <= 3650 && floor(var.noncurrent_version_retention_days) == var.noncurrent_version_retention_days
    error_message = "noncurrent_version_retention_days: a whole number from 1 to 3650."
  }
}

variable "ssh_source_ranges" {
  description = "Source ranges allowed to reach SSH (tcp/22) on the VM. The VM has no public address; the default is Identity-Aware Proxy's TCP-forwarding range."
  type        = list(string)
  default     = ["35.235.240.0/20"]

  validation {
    condition     = length(var.ssh_source_ranges) > 0 && alltrue([for r in var.ssh_source_ranges : can(cidrnetmask(r)) && !endswith(r, "/0")])
    error_message = "ssh_source_ranges: at least one IPv4 CIDR range, none of them open to the whole internet (/0)."
  }
}

variable "subnet_cidr" {
  description = "Primary range of the module's own subnet."
  type        = string
  default     = "10.10.0.0/24"

  validation {
    condition     = can(cidrnetmask(var.subnet_cidr))
    error_message = "subnet_cidr: an IPv4 CIDR range such as 10.10.0.0/24."
  }
}

variable "repo_url" {
  description = "HTTPS URL of the hashtag-pulse repository that the VM clones."
  type        = string

  validation {
    condition     = can(regex("^https://[A-Za-z0-9._~:/%+-]+$", var.repo_url))
    error_message = "repo_url: an https:// URL without spaces, quotes or credentials (a user:token@ would sit in the instance metadata and Terraform's state)."
  }
}

variable "repo_ref" {
  description = "Branch, tag or commit of repo_url that the VM checks out."
  type        = string
  default     = "main"

  validation {
    condition     = can(regex("^[A-Za-z0-9._/-]+$", var.repo_ref))
    error_message = "repo_ref: a branch, tag or commit (letters, digits, dots, slashes, hyphens, underscores)."
  }
}

variable "hashtag" {
  description = "The hashtag the VM follows, without '#' ([twitter_config] hashtag)."
  type        = string
  default     = "dataengineering"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,100}$", var.hashtag))
    error_message = "hashtag: letters, digits and underscores, without '#'."
  }
}

variable "sources" {
  description = "Sources the VM collects ([pipeline] sources). sample generates demo posts; the live ones need their secrets in source_secrets (docs/sources.md says which)."
  type        = list(string)
  default     = ["sample"]

  validation {
    condition = length(var.sources) > 0 && alltrue([
      for source in var.sources : contains(["sample", "file", "x", "mastodon", "bluesky", "reddit", "snscrape"], source)
    ])
    error_message = "sources: one or more of sample, file, x, mastodon, bluesky, reddit, snscrape."
  }
}

variable "stream_sources" {
  description = "Streaming sources the VM runs live ([stream] sources): jetstream (Bluesky, no account) and/or mastodon (needs [mastodon] access_token_env, through extra_configuration and source_secrets). The stream/twitter deployment streams each hour for 55 minutes; empty: it does nothing."
  type        = list(string)
  default     = []

  validation {
    condition = length(distinct(var.stream_sources)) == length(var.stream_sources) && alltrue([
      for source in var.stream_sources : contains(["jetstream", "mastodon"], source)
    ])
    error_message = "stream_sources: jetstream and/or mastodon, each once."
  }
}

variable "source_secrets" {
  description = "The sources' secrets: environment variable => id of a Secret Manager secret in the project that holds its value, e.g. { X_BEARER_TOKEN = \"x-bearer-token\" }. Create the secrets first; the VM's account may read these alone, and their values never enter Terraform's state."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for name, id in var.source_secrets : can(regex("^[A-Z][A-Z0-9_]*$", name)) && can(regex("^[A-Za-z0-9_-]{1,255}$", id))
    ])
    error_message = "source_secrets: NAME = \"secret-id\" pairs, NAME an upper-case environment variable (X_BEARER_TOKEN), secret-id a Secret Manager id (letters, digits, - and _)."
  }
}

variable "extra_configuration" {
  description = "More configuration.conf keys for the VM by section, e.g. { mastodon = { instances = \"https://fosstodon.org\" } }; the keys this module sets win. Never a secret: source_secrets carries those."
  type        = map(map(string))
  default     = {}
}

variable "force_destroy" {
  description = "Let terraform destroy delete a non-empty bucket and dataset. Keep false unless the data may be lost."
  type        = bool
  default     = false
}

variable "labels" {
  description = "Labels added to every resource that takes labels."
  type        = map(string)
  default     = {}
}
