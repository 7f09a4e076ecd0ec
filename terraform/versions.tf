terraform {
  # startswith()/endswith() need 1.5; 1.6 is the project's floor. 2.0 may change the language.
  required_version = ">= 1.6, < 2.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 7.0"
    }
  }
}
