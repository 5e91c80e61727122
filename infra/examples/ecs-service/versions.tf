terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.60, < 7.0"
    }
  }

  # Partial configuration: the tagrelay build passes bucket, key, region and use_lockfile.
  backend "s3" {}
}
