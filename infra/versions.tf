terraform {
  # 1.9+ lets a variable's validation refer to other variables (deploy_on_push must name a
  # defined environment); 1.10+ is the S3 backend's native locking (use_lockfile), which the
  # buildspec uses for the team's Terraform and which this stack's own backend can use too.
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 5.52+: source_code_hash is only a trigger (code_sha256 is read back separately), so a
      # hash of the binary rather than of the zip does not cause a perpetual diff (see lambda.tf).
      # logging_config on aws_lambda_function needs 5.33+. The `auth` block of a CodeBuild
      # project's source (source_connection_arn), removed in 5.0, is back in 5.91.0 (present in
      # the @cdktf/provider-aws bindings generated from 5.91.0, absent from those of 5.90.0).
      version = ">= 5.91, < 7.0"
    }
  }
}
