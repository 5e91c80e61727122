################################################################################
# One CodeBuild project per environment: `terraform apply` of the team's Terraform.
#
# trigger-deploy starts builds with TAGRELAY_FINGERPRINT and TAGRELAY_ENVIRONMENT overriding the
# project's environment; TAGRELAY_FINGERPRINT is deliberately not set on the project, so a build
# started by hand carries none and never counts as deployed state.
################################################################################

locals {
  state_region = coalesce(var.state_region, local.region)
}

resource "aws_cloudwatch_log_group" "build" {
  for_each = local.environments

  name              = local.build_log_groups[each.key]
  retention_in_days = var.log_retention_in_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_codebuild_project" "this" {
  for_each = local.environments

  name                   = each.value.codebuild_project
  description            = "tagrelay: terraform apply for ${each.key}"
  service_role           = aws_iam_role.codebuild[each.key].arn
  build_timeout          = var.build_timeout_in_minutes
  queued_timeout         = 60
  concurrent_build_limit = 1 # at most one Terraform run per environment; trigger-deploy reads a refused start as "wait"
  encryption_key         = aws_kms_key.this.arn
  source_version         = each.value.source_version

  source {
    type            = var.source_type
    location        = var.source_location
    buildspec       = file("${path.module}/buildspec.yml")
    git_clone_depth = var.source_type == "S3" ? null : 1

    # Provider 5.91+ (the block came back in that release; infra/versions.tf).
    dynamic "auth" {
      for_each = var.source_connection_arn == null ? [] : [var.source_connection_arn]
      content {
        type     = "CODECONNECTIONS"
        resource = auth.value
      }
    }
  }

  artifacts {
    type = "NO_ARTIFACTS"
  }

  environment {
    type                        = var.codebuild_compute.type
    compute_type                = var.codebuild_compute.compute_type
    image                       = var.codebuild_compute.image
    image_pull_credentials_type = "CODEBUILD"
    privileged_mode             = false

    dynamic "environment_variable" {
      for_each = merge({
        TAGRELAY_ENVIRONMENT  = each.key # overridden by trigger-deploy with the same value
        TERRAFORM_VERSION     = var.terraform_version
        TERRAFORM_SHA256      = var.terraform_sha256
        TERRAFORM_PLATFORM    = var.codebuild_compute.terraform_platform
        TAGRELAY_STATE_BUCKET = var.state_bucket
        TAGRELAY_STATE_KEY    = each.value.state_key
        TAGRELAY_STATE_REGION = local.state_region
        TAGRELAY_WORKING_DIR  = each.value.working_directory
        TAGRELAY_LOCK_TIMEOUT = var.terraform_lock_timeout
        TF_IN_AUTOMATION      = "1"
        TF_INPUT              = "0"
      }, each.value.var_file == null ? {} : { TAGRELAY_VAR_FILE = each.value.var_file })
      content {
        name  = environment_variable.key
        value = environment_variable.value
        type  = "PLAINTEXT"
      }
    }
  }

  logs_config {
    cloudwatch_logs {
      status     = "ENABLED"
      group_name = aws_cloudwatch_log_group.build[each.key].name
    }
    s3_logs {
      status = "DISABLED"
    }
  }

  tags = local.tags

  depends_on = [aws_iam_role_policy.codebuild_base]
}
