################################################################################
# Every role and policy of the stack, least privilege, resource ARNs only: one role per function,
# one service role per environment's CodeBuild project. (The key's own policy is a resource
# policy and stays with the key in kms.tf.)
################################################################################

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = local.function_names[each.key]
  description        = "Execution role of the ${local.function_names[each.key]} function"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

# What every function needs: its own log group, its own dead-letter queue (encrypted with the
# key), and the key for its environment variables.
data "aws_iam_policy_document" "function_common" {
  for_each = local.functions

  statement {
    sid       = "OwnLogGroup"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.function[each.key].arn}:*"]
  }

  statement {
    sid       = "OwnDeadLetterQueue"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq[each.key].arn]
  }

  statement {
    sid       = "KeyForQueueAndEnvironment"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }

  # The configuration document, when it is stored in SSM (config.tf): the head at the version
  # TAGRELAY_CONFIG names, then its parts at theirs (a version selector needs no other grant: IAM
  # authorizes the parameter's ARN). String parameters: no KMS.
  dynamic "statement" {
    for_each = local.config_in_ssm ? [local.config_parameter_arns] : []
    content {
      sid       = "ReadConfiguration"
      actions   = ["ssm:GetParameter", "ssm:GetParameters"]
      resources = statement.value
    }
  }
}

# record-image-tag: the configured repositories' images (a push's push time; the record sweep
# pages through each repository), the configured parameters.
data "aws_iam_policy_document" "record_image_tag" {
  source_policy_documents = [data.aws_iam_policy_document.function_common["record-image-tag"].json]

  statement {
    sid       = "DescribeConfiguredRepositories"
    actions   = ["ecr:DescribeImages"]
    resources = local.repository_grant_arns
  }

  # AddTagsToResource: PutParameter with Tags (creating a missing parameter, which is every
  # parameter's first write with manage_image_tag_parameters = false) needs it.
  # GetParameterHistory: after a write, the versions written between its read and its write,
  # to repair a lost race with a concurrent writer.
  statement {
    sid       = "ReadWriteImageTagParameters"
    actions   = ["ssm:GetParameters", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:AddTagsToResource"]
    resources = local.image_tag_grant_arns
  }
}

# trigger-deploy: read the parameters' versions; list, inspect and start the tagrelay projects'
# builds; verify a successful run on ECS and write the environment's release record.
data "aws_iam_policy_document" "trigger_deploy" {
  source_policy_documents = [data.aws_iam_policy_document.function_common["trigger-deploy"].json]

  statement {
    sid       = "ReadImageTagParameters"
    actions   = ["ssm:GetParameters"]
    resources = local.image_tag_grant_arns
  }

  statement {
    sid       = "RunTagrelayProjects"
    actions   = ["codebuild:ListBuildsForProject", "codebuild:BatchGetBuilds", "codebuild:StartBuild"]
    resources = local.project_arns
  }

  # Of each environment and nothing else under /tagrelay/: the release record
  # /tagrelay/<env>/verified (read in the same GetParameters call as the environment's image
  # tags) and the parts of a large one, /tagrelay/<env>/verified-part/*, and the parts of the run
  # manifest of each build it starts, /tagrelay/<env>/manifest-part/*. Created by PutParameter
  # (Overwrite, Intelligent-Tiering) on the first write: Terraform does not manage them, and a
  # String parameter written without tags needs no ssm:AddTagsToResource.
  statement {
    sid       = "ReadWriteReleaseRecords"
    actions   = ["ssm:GetParameters", "ssm:PutParameter"]
    resources = local.release_record_write_arns
  }

  # The run manifest's head, /tagrelay/<env>/manifest: written for each build started, read as a
  # history (a build's manifest is the version whose description names its run), and read now
  # with a changed parameter (GetParameters) to tell whether the newest run has that change.
  statement {
    sid       = "WriteRunManifests"
    actions   = ["ssm:GetParameterHistory", "ssm:GetParameters", "ssm:PutParameter"]
    resources = local.run_manifest_arns
  }

  # A release record's digests: the images of the tags deployed, from the configured repositories.
  statement {
    sid       = "DescribeConfiguredRepositories"
    actions   = ["ecr:DescribeImages"]
    resources = local.repository_grant_arns
  }

  # Verification: the PRIMARY deployment of each ECS service of the environments with an
  # ecs_cluster (or every service of those clusters, when their list is too long). Only when
  # some environment has one.
  dynamic "statement" {
    for_each = length(local.ecs_service_arns) > 0 ? [local.ecs_service_grant_arns] : []
    content {
      sid       = "DescribeVerifiedEcsServices"
      actions   = ["ecs:DescribeServices"]
      resources = statement.value
    }
  }

  # The image of the PRIMARY deployment's task definition. ecs:DescribeTaskDefinition has no
  # resource-level permissions (Service Authorization Reference, Amazon ECS: no resource type,
  # no condition key), so "*" is the only resource it takes; it reads definitions only.
  dynamic "statement" {
    for_each = length(local.ecs_service_arns) > 0 ? ["*"] : []
    content {
      sid       = "DescribeTaskDefinitions"
      actions   = ["ecs:DescribeTaskDefinition"]
      resources = [statement.value]
    }
  }
}

# promote: promotion and rollback (DESIGN "Promotion and rollback"). It reads the release,
# approval and rollback records and the alarms, and writes image tags only into the environments
# it feeds (promote_from) or rolls back (rollback_alarms), plus the rollback record of the
# latter. No CodeBuild, no ECS: what an environment runs is read from SSM alone. (trigger-deploy
# keeps the only grant on the release records /tagrelay/<env>/verified: promote never writes one.)
data "aws_iam_policy_document" "promote" {
  source_policy_documents = [data.aws_iam_policy_document.function_common["promote"].json]

  # The records of every environment: the upstream's releases and rollbacks, the approvals, the
  # environment's own rollbacks (a pin or `tagrelay rollback` by hand counts there too).
  # GetParameterHistory only: the records' history is the list of releases, approvals and
  # rollbacks (promote never reads a record's current value alone).
  statement {
    sid       = "ReadPromotionRecords"
    actions   = ["ssm:GetParameterHistory"]
    resources = local.promotion_record_arns
  }

  # A record too large for one parameter is stored in parts, /tagrelay/<env>/<record>-part/<i>,
  # which the record's value names at their versions: read with GetParameters.
  statement {
    sid       = "ReadPromotionRecordParts"
    actions   = ["ssm:GetParameters"]
    resources = local.promotion_record_part_arns
  }

  # The environments promote writes. Only while one has promote_from or rollback_alarms: IAM
  # refuses a statement without resources. The same record path as record-image-tag:
  # GetParameterHistory repairs a lost race after a write; AddTagsToResource is what PutParameter
  # with Tags needs when it creates a missing parameter.
  dynamic "statement" {
    for_each = length(local.promoted_parameter_arns) > 0 ? [local.promoted_image_tag_grant_arns] : []
    content {
      sid       = "ReadWritePromotedImageTags"
      actions   = ["ssm:GetParameters", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:AddTagsToResource"]
      resources = statement.value
    }
  }

  # The rollback record of each environment with rollback_alarms, and its parts, written before
  # its image tags (String parameters without tags: no ssm:AddTagsToResource).
  dynamic "statement" {
    for_each = length(local.rollback_record_arns) > 0 ? [local.rollback_record_arns] : []
    content {
      sid       = "WriteRollbackRecords"
      actions   = ["ssm:PutParameter"]
      resources = statement.value
    }
  }

  # The record path checks that a promoted tag's image (and digest) is still in its repository.
  statement {
    sid       = "DescribeConfiguredRepositories"
    actions   = ["ecr:DescribeImages"]
    resources = local.repository_grant_arns
  }

  # The gate and rollback alarms' states and state changes, metric and composite alike. Both
  # actions take alarm ARNs (Service Authorization Reference, Amazon CloudWatch: resource type
  # alarm), but "to return information about composite alarms, you must be signed on with the
  # cloudwatch:DescribeAlarms permission that is scoped to *" (CloudWatch API Reference,
  # DescribeAlarms; the same for DescribeAlarmHistory): with alarm ARNs a composite gate alarm
  # would be answered as missing and block promotion for good. Both are read-only.
  dynamic "statement" {
    for_each = length(local.promotion_alarm_names) > 0 ? ["*"] : []
    content {
      sid       = "DescribeAlarms"
      actions   = ["cloudwatch:DescribeAlarms", "cloudwatch:DescribeAlarmHistory"]
      resources = [statement.value]
    }
  }
}

locals {
  function_policies = {
    "promote"          = data.aws_iam_policy_document.promote.json
    "record-image-tag" = data.aws_iam_policy_document.record_image_tag.json
    "trigger-deploy"   = data.aws_iam_policy_document.trigger_deploy.json
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${local.function_names[each.key]}-least-privilege"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]

  lifecycle {
    # Beyond the budget the image-tag grants are wildcards made from parameter_template (main.tf);
    # one that would cover tagrelay's own records, manifests or configuration would let a function
    # (or a build) write them.
    precondition {
      condition     = length(local.image_tag_grants_cover_reserved) == 0
      error_message = "parameter_template's wildcard grant would cover tagrelay's own parameters (${join(", ", local.image_tag_grants_cover_reserved)}): give the template a fixed part these names do not end with (the default ends with /docker-image-tag)."
    }
  }
}

# X-Ray active tracing: PutTraceSegments/PutTelemetryRecords have no resource-level permissions.
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}

################################################################################
# One service role per CodeBuild project: what `terraform apply` of one environment needs.
################################################################################

locals {
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

  # The team's Terraform reads its image tags with data "aws_ssm_parameter" (the environment's
  # parameters, or all its parameters by the template's wildcard when they are many: main.tf).
  statement {
    sid       = "ReadEnvironmentImageTags"
    actions   = ["ssm:GetParameter", "ssm:GetParameters"]
    resources = local.build_image_tag_grant_arns[each.key]
  }

  # The run manifest (the buildspec's exact-run resolution): the build finds its manifest by its
  # description in the history of /tagrelay/<env>/manifest, then reads its parts.
  statement {
    sid       = "FindRunManifest"
    actions   = ["ssm:GetParameterHistory"]
    resources = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${each.key}/manifest"]
  }

  statement {
    sid       = "ReadRunManifestParts"
    actions   = ["ssm:GetParameters"]
    resources = ["arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${each.key}/manifest-part/*"]
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
