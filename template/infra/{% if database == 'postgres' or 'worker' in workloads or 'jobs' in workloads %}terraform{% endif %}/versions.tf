terraform {
  required_version = ">= 1.6, < 2.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # State lives in S3; the deploy workflow passes bucket, key and region with -backend-config.
  backend "s3" {}
}
