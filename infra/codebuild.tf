################################################################################
# One CodeBuild project per environment: `terraform apply` of the team's Terraform.
#
# trigger-deploy starts builds with TAGRELAY_FINGERPRINT and TAGRELAY_ENVIRONMENT overriding the
# project's environment; TAGRELAY_FINGERPRINT is deliberately not set on the project, so a build
# started by hand carries none and never counts as deployed state.
################################################################################

locals {
  state_region = coalesce(var.state_region, local.region)

  # The source's ARNs, from source_location in the form the variable's validation guarantees for
  # the source_type (null for other types).
  # CODECOMMIT: https://git-codecommit.<region>.amazonaws.com/v1/repos/<name>; split at "/":
  # ["https:", "", "git-codecommit.<region>.amazonaws.com", "v1", "repos", "<name>"].
  source_url_parts      = split("/", var.source_location)
  source_codecommit_arn = var.source_type == "CODECOMMIT" ? "arn:${local.partition}:codecommit:${split(".", local.source_url_parts[2])[1]}:${local.account_id}:${local.source_url_parts[5]}" : null
  # S3: <bucket>/<key> of the source zip.
  source_s3_object_arn = var.source_type == "S3" ? "arn:${local.partition}:s3:::${var.source_location}" : null
  source_s3_bucket_arn = var.source_type == "S3" ? "arn:${local.partition}:s3:::${local.source_url_parts[0]}" : null
}

resource "aws_cloudwatch_log_group" "build" {
  for_each = local.environments

  name              = local.build_log_groups[each.key]
  retention_in_days = var.log_retention_in_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}

data "aws_iam_policy_document" "codebuild_assume" {
  for_each = local.environments

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["codebuild.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/${each.value.codebuild_project}"]
    }
  }
}

resource "aws_iam_role" "codebuild" {
  for_each = local.environments

  name               = "${each.value.codebuild_project}-build"
  description        = "Service role of the ${each.value.codebuild_project} project: runs the team's Terraform for ${each.key}"
  assume_role_policy = data.aws_iam_policy_document.codebuild_assume[each.key].json
  tags               = local.tags

  lifecycle {
    # The default project name "<name_prefix>-<env>" is not validated with the variables; an
    # explicit codebuild_project is (at most 58 characters), this catches both.
    precondition {
      condition     = length("${each.value.codebuild_project}-build") <= 64
      error_message = "The service role name \"${each.value.codebuild_project}-build\" of environment ${each.key} is longer than IAM's 64 characters: shorten name_prefix or the environment name, or set environments.${each.key}.codebuild_project (at most 58 characters)."
    }
  }
}

# What every project needs whatever the team's Terraform does: its log group, the key (build
# output, logs), listing the state bucket, its own state object and lock file, reading its
# environment's image tags, and reading its source.
# Everything the team's Terraform manages comes from environments.<env>.policy_arns/policy_json.
data "aws_iam_policy_document" "codebuild_base" {
  for_each = local.environments

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.build[each.key].arn}:*"]
  }

  statement {
    sid       = "ProjectKey"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:DescribeKey"]
    resources = [aws_kms_key.this.arn]
  }

  # On the bucket, without an s3:prefix condition, as Terraform's S3 backend documentation grants
  # it. S3 answers a missing object with 404 only to a caller allowed to list the bucket, and a
  # GetObject request carries no s3:prefix: with the condition, the first run against a new
  # state key gets 403 instead of 404 and `terraform init` fails. Listing shows key names only.
  statement {
    sid       = "ListStateBucket"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.state_bucket}"]
  }

  statement {
    sid       = "ReadWriteOwnState"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["arn:${local.partition}:s3:::${var.state_bucket}/${each.value.state_key}"]
  }

  # use_lockfile: the lock is an object next to the state, created and deleted by each run.
  statement {
    sid       = "OwnStateLock"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["arn:${local.partition}:s3:::${var.state_bucket}/${each.value.state_key}.tflock"]
  }

  # The team's Terraform reads its image tags with data "aws_ssm_parameter".
  statement {
    sid     = "ReadEnvironmentImageTags"
    actions = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = [
      for key, p in local.parameters :
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${p.name}" if p.environment == each.key
    ]
  }

  # Checking out the source, by source_type, as the CodeBuild User Guide's service role policy
  # lists it ("Allow CodeBuild to interact with other AWS services"). GITHUB, GITHUB_ENTERPRISE,
  # BITBUCKET, GITLAB and GITLAB_SELF_MANAGED without source_connection_arn use the account's
  # source credential for the host, which needs no IAM permission.
  dynamic "statement" {
    for_each = var.source_type == "CODECOMMIT" ? [local.source_codecommit_arn] : []
    content {
      sid       = "PullCodeCommitSource"
      actions   = ["codecommit:GitPull"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.source_type == "S3" ? [local.source_s3_object_arn] : []
    content {
      sid       = "ReadS3SourceObject"
      actions   = ["s3:GetObject", "s3:GetObjectVersion"]
      resources = [statement.value]
    }
  }

  dynamic "statement" {
    for_each = var.source_type == "S3" ? [local.source_s3_bucket_arn] : []
    content {
      sid       = "LocateS3SourceBucket"
      actions   = ["s3:GetBucketAcl", "s3:GetBucketLocation"]
      resources = [statement.value]
    }
  }

  # A connection (CodeBuild User Guide, GitHub/GitLab/Bitbucket access through CodeConnections).
  dynamic "statement" {
    for_each = var.source_connection_arn == null ? [] : [var.source_connection_arn]
    content {
      sid       = "UseSourceConnection"
      actions   = ["codeconnections:UseConnection", "codeconnections:GetConnectionToken", "codeconnections:GetConnection"]
      resources = [statement.value]
    }
  }

  # A connection created before the rename to CodeConnections keeps its codestar-connections ARN,
  # which the old service prefix's actions cover.
  dynamic "statement" {
    for_each = var.source_connection_arn == null ? [] : strcontains(var.source_connection_arn, ":codestar-connections:") ? [var.source_connection_arn] : []
    content {
      sid       = "UseSourceConnectionByItsOldName"
      actions   = ["codestar-connections:UseConnection", "codestar-connections:GetConnectionToken", "codestar-connections:GetConnection"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role_policy" "codebuild_base" {
  for_each = local.environments

  name   = "${each.value.codebuild_project}-base"
  role   = aws_iam_role.codebuild[each.key].id
  policy = data.aws_iam_policy_document.codebuild_base[each.key].json
}

resource "aws_iam_role_policy" "codebuild_terraform" {
  for_each = { for name, env in local.environments : name => env if env.policy_json != null }

  name   = "${each.value.codebuild_project}-terraform"
  role   = aws_iam_role.codebuild[each.key].id
  policy = each.value.policy_json
}

# Keyed "<env>|<position>", not by ARN: for_each keys must be known at plan time, and an ARN of a
# policy created in the same apply is not.
resource "aws_iam_role_policy_attachment" "codebuild_terraform" {
  for_each = {
    for pair in flatten([
      for name, env in local.environments : [
        for index, arn in env.policy_arns : { key = "${name}|${index}", environment = name, arn = arn }
      ]
    ]) : pair.key => pair
  }

  role       = aws_iam_role.codebuild[each.value.environment].name
  policy_arn = each.value.arn
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
