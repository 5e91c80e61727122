################################################################################
# One role per function, least privilege, resource ARNs only.
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

# What both functions need: their own log group, their own dead-letter queue (encrypted with the
# key), and the key for their environment variables.
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
}

# record-image-tag: the configured repositories' images (a push's push time; the record sweep
# pages through each repository), the configured parameters.
data "aws_iam_policy_document" "record_image_tag" {
  source_policy_documents = [data.aws_iam_policy_document.function_common["record-image-tag"].json]

  statement {
    sid       = "DescribeConfiguredRepositories"
    actions   = ["ecr:DescribeImages"]
    resources = local.repository_arns
  }

  # AddTagsToResource: PutParameter with Tags (creating a missing parameter) needs it.
  # GetParameterHistory: after a write, the versions written between its read and its write,
  # to repair a lost race with a concurrent writer.
  statement {
    sid       = "ReadWriteImageTagParameters"
    actions   = ["ssm:GetParameters", "ssm:GetParameterHistory", "ssm:PutParameter", "ssm:AddTagsToResource"]
    resources = local.parameter_arns
  }
}

# trigger-deploy: read the parameters' versions; list, inspect and start the tagrelay projects' builds.
data "aws_iam_policy_document" "trigger_deploy" {
  source_policy_documents = [data.aws_iam_policy_document.function_common["trigger-deploy"].json]

  statement {
    sid       = "ReadImageTagParameters"
    actions   = ["ssm:GetParameters"]
    resources = local.parameter_arns
  }

  statement {
    sid       = "RunTagrelayProjects"
    actions   = ["codebuild:ListBuildsForProject", "codebuild:BatchGetBuilds", "codebuild:StartBuild"]
    resources = local.project_arns
  }
}

locals {
  function_policies = {
    "record-image-tag" = data.aws_iam_policy_document.record_image_tag.json
    "trigger-deploy"   = data.aws_iam_policy_document.trigger_deploy.json
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${local.function_names[each.key]}-least-privilege"
  role   = aws_iam_role.function[each.key].id
  policy = local.function_policies[each.key]
}

# X-Ray active tracing: PutTraceSegments/PutTelemetryRecords have no resource-level permissions.
resource "aws_iam_role_policy_attachment" "xray" {
  for_each = local.functions

  role       = aws_iam_role.function[each.key].name
  policy_arn = "arn:${local.partition}:iam::aws:policy/AWSXRayDaemonWriteAccess"
}
