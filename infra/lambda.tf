################################################################################
# Packages and source_code_hash
#
# `make build` (cargo lambda --output-format zip) writes target/lambda/arm64/<fn>/bootstrap.zip.
# The zip records the binary's modification time, which changes on every build, so hashing the
# zip would redeploy every function on every `terraform apply`. The hash is therefore taken over
# the release binary the zip was made from, target/aarch64-unknown-linux-gnu/release/<fn>, which
# cargo rewrites only when the code (or the toolchain, or Cargo.lock) changed and which a release
# build reproduces byte for byte. `make build` leaves it in place. The zip is what is uploaded.
#
# This relies on AWS provider 5.52+, where source_code_hash is only the trigger of a code update
# and is not compared with the CodeSha256 Lambda computes (that is the separate code_sha256
# attribute): a hash of something other than the zip causes no perpetual diff.
# Where the binaries are not on disk (zips from an artifact store), pass
# lambda_source_code_hashes instead (e.g. the git commit of the build, or the binary's sha256).
################################################################################

locals {
  # Relative, so that the path (stored as `filename`) is the same in every clone.
  repo_root          = "${path.module}/.."
  lambda_package_dir = coalesce(var.lambda_package_dir, "${local.repo_root}/target/lambda/arm64")
  lambda_binary_dir  = coalesce(var.lambda_binary_dir, "${local.repo_root}/target/aarch64-unknown-linux-gnu/release")

  lambda_packages = { for fn in local.functions : fn => "${local.lambda_package_dir}/${fn}/bootstrap.zip" }
  lambda_source_code_hashes = {
    for fn in local.functions : fn => lookup(
      var.lambda_source_code_hashes, fn,
      try(filebase64sha256("${local.lambda_binary_dir}/${fn}"), null)
    )
  }

  # null: no reservation (the default). Any reservation fails `apply` in an account whose
  # concurrency quota is still the new-account 10, since Lambda keeps 100 unreserved.
  # promote: never a reservation. Its writes of image tags go through the record path that
  # record-image-tag and the CLI use, which repairs a lost race after each PutParameter (the
  # single-writer arrangement is that repair, not a concurrency of 1; see variables.tf above
  # record_image_tag_reserved_concurrency, and the README's "Concurrent writers": exactly one
  # writer is responsible for each overwrite).
  lambda_reserved_concurrency = {
    "promote"          = null
    "record-image-tag" = var.record_image_tag_reserved_concurrency
    "trigger-deploy"   = var.trigger_deploy_reserved_concurrency
  }
  lambda_descriptions = {
    "promote"          = "tagrelay: release verified, approval, alarm state change or schedule -> promotion and rollback of the environments"
    "record-image-tag" = "tagrelay: ECR push -> the image-tag parameter of each configured environment"
    "trigger-deploy"   = "tagrelay: parameter change, build end or schedule -> at most one Terraform run per environment"
  }
}

################################################################################
# Log groups
################################################################################

resource "aws_cloudwatch_log_group" "function" {
  for_each = local.functions

  name              = local.function_log_groups[each.key]
  retention_in_days = var.log_retention_in_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

################################################################################
# Dead-letter queues: events that still fail after Lambda's retries; `tagrelay redrive` replays
# them. The function's own dead_letter_config (not an on-failure destination) so that the message
# body is the original EventBridge event.
################################################################################

resource "aws_sqs_queue" "dlq" {
  for_each = local.functions

  name                              = local.dlq_names[each.key]
  message_retention_seconds         = var.dlq_message_retention_seconds
  kms_master_key_id                 = aws_kms_key.this.arn
  kms_data_key_reuse_period_seconds = 3600
  tags                              = local.tags
}

################################################################################
# Functions
################################################################################

resource "aws_lambda_function" "this" {
  # checkov:skip=CKV_AWS_117:The functions call only public AWS APIs (ECR, SSM, CodeBuild, ECS, CloudWatch) and reach no private resource; a VPC would add NAT/endpoint cost and nothing to protect.
  # checkov:skip=CKV_AWS_272:Code signing needs AWS Signer and an S3-based deploy of signed artifacts; the zips are built by `make build` from the reviewed repository and deployed by the same Terraform run. Enable it with a signing profile if your policy requires it.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = local.lambda_descriptions[each.key]
  role          = aws_iam_role.function[each.key].arn

  filename         = local.lambda_packages[each.key]
  source_code_hash = local.lambda_source_code_hashes[each.key]
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  architectures    = ["arm64"]

  memory_size                    = var.lambda_memory_size
  timeout                        = var.lambda_timeout
  reserved_concurrent_executions = local.lambda_reserved_concurrency[each.key]

  environment {
    variables = {
      TAGRELAY_CONFIG = local.function_tagrelay_config # the document, or ssm:/tagrelay/_config:<version> (config.tf)
    }
  }
  kms_key_arn = aws_kms_key.this.arn

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.function[each.key].name
    application_log_level = var.log_level
    system_log_level      = "INFO"
  }

  dead_letter_config {
    target_arn = aws_sqs_queue.dlq[each.key].arn
  }

  tracing_config {
    mode = "Active"
  }

  tags = local.tags

  # The role's policies must exist before the first invocation (logs, DLQ, KMS).
  depends_on = [aws_iam_role_policy.function, aws_iam_role_policy_attachment.xray]

  lifecycle {
    precondition {
      condition     = fileexists(local.lambda_packages[each.key])
      error_message = "${local.lambda_packages[each.key]} does not exist: run `make build` in the repository root first (or set lambda_package_dir)."
    }
    precondition {
      condition     = local.lambda_source_code_hashes[each.key] != null
      error_message = "No source_code_hash for ${each.key}: ${local.lambda_binary_dir}/${each.key} does not exist. `make build` leaves it there; otherwise set lambda_binary_dir or lambda_source_code_hashes."
    }
    # The promotion chain must end: see local.promotion_up_64 (main.tf).
    precondition {
      condition     = alltrue([for up in values(local.promotion_up_64) : up == null])
      error_message = "The promotion chain loops: ${join(", ", [for name in local.promotion_loops : "environments.${name}.promote_from"])} never reach an environment without promote_from. (Checked through 64 steps; more than 64 environments: tagrelay checks it at cold start.)"
    }
    precondition {
      condition     = length(distinct(local.parameter_names)) == length(local.parameter_names)
      error_message = "parameter_template renders the same parameter name for two (service, environment) pairs."
    }
    # /tagrelay/ holds tagrelay's own parameters: records, run manifests, the configuration.
    precondition {
      condition     = alltrue([for name in local.parameter_names : !startswith(name, "/tagrelay/")])
      error_message = "An image-tag parameter would be under /tagrelay/, where tagrelay keeps its records, run manifests and configuration: change parameter_template, or rename the service or environment named tagrelay."
    }
    precondition {
      condition     = alltrue([for name in local.parameter_names : length(split("/", name)) - 1 <= 15])
      error_message = "An SSM parameter name rendered from parameter_template has more than 15 levels."
    }
    # Forced into the environment, the document must fit Lambda's 4 KB (config.tf measures it).
    precondition {
      condition     = local.config_in_ssm || local.config_inline_bytes <= 4096
      error_message = "With config_storage = \"environment\" the functions' variables would take up to ${local.config_inline_bytes} bytes; Lambda allows 4,096. Use config_storage = \"auto\" or \"ssm\"."
    }
    # SSM User Guide, parameter name requirements: "The maximum length constraint of 1011
    # characters for the parameter name includes the characters in the ARN that precede the name
    # you specify", i.e. arn:<partition>:ssm:<region>:<account>:parameter/<name> counts whole.
    precondition {
      condition     = alltrue([for arn in local.parameter_arns : length(arn) <= 1011])
      error_message = "An SSM parameter name rendered from parameter_template is too long: with the ARN before it (arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter) it must be at most 1011 characters."
    }
  }
}

resource "aws_lambda_function_event_invoke_config" "this" {
  for_each = local.functions

  function_name                = aws_lambda_function.this[each.key].function_name
  maximum_retry_attempts       = 2
  maximum_event_age_in_seconds = var.maximum_event_age_in_seconds
}
