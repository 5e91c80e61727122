################################################################################
# Alarm topic
################################################################################

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
  tags              = local.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_addresses)

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.value
}

################################################################################
# Alarms. Every one fires on a single occurrence: each is a change that did not reach an
# environment, or an event that needs a redrive.
################################################################################

# An invocation returned an error (it is retried, then lands in the DLQ).
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-errors"
  alarm_description   = "${local.function_names[each.key]} returned errors; see the saved query ${var.name_prefix}/errors. Failed events land in ${aws_sqs_queue.dlq[each.key].name}."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = aws_lambda_function.this[each.key].function_name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# An event exhausted its retries: replay it with `tagrelay redrive` once the cause is fixed.
resource "aws_cloudwatch_metric_alarm" "dlq_messages" {
  for_each = local.functions

  alarm_name          = "${aws_sqs_queue.dlq[each.key].name}-messages"
  alarm_description   = "Events that ${local.function_names[each.key]} failed to handle are waiting in ${aws_sqs_queue.dlq[each.key].name}; fix the cause, then `tagrelay redrive`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dlq[each.key].name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# A Terraform run failed (tagrelay's or a manual one in a tagrelay project).
resource "aws_cloudwatch_metric_alarm" "failed_builds" {
  for_each = local.environments

  alarm_name          = "${each.value.codebuild_project}-failed-builds"
  alarm_description   = "A Terraform run for ${each.key} (${each.value.codebuild_project}) failed; its log is in ${aws_cloudwatch_log_group.build[each.key].name}."
  namespace           = "AWS/CodeBuild"
  metric_name         = "FailedBuilds"
  dimensions          = { ProjectName = aws_codebuild_project.this[each.key].name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags
}

# Hold: the current state of an environment already failed to deploy, and tagrelay will not
# retry it until a parameter changes. trigger-deploy logs it at ERROR with fields.decision = "hold".
resource "aws_cloudwatch_log_metric_filter" "hold" {
  name           = "${var.name_prefix}-hold-decisions"
  log_group_name = aws_cloudwatch_log_group.function["trigger-deploy"].name
  pattern        = "{ $.fields.decision = \"hold\" }"

  metric_transformation {
    namespace  = "tagrelay"
    name       = "HoldDecisions"
    value      = "1"
    unit       = "Count"
    dimensions = { Environment = "$.fields.environment" }
  }
}

resource "aws_cloudwatch_metric_alarm" "hold" {
  for_each = local.environments

  alarm_name          = "${var.name_prefix}-${each.key}-deploy-held"
  alarm_description   = "tagrelay holds ${each.key}: the current image tags already failed to deploy and are not retried. Fix forward (push a new tag or promote/pin one), or re-run ${each.value.codebuild_project} by hand."
  namespace           = "tagrelay"
  metric_name         = "HoldDecisions"
  dimensions          = { Environment = each.key }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
  tags                = local.tags

  depends_on = [aws_cloudwatch_log_metric_filter.hold]
}

################################################################################
# CloudWatch Logs Insights saved queries (the JSON subscriber puts a line's fields under `fields`).
################################################################################

resource "aws_cloudwatch_query_definition" "deploys_by_environment" {
  name            = "${var.name_prefix}/deploys-by-environment"
  log_group_names = [aws_cloudwatch_log_group.function["trigger-deploy"].name]
  query_string    = <<-EOT
    fields @timestamp, fields.environment, fields.reason, fields.trigger, fields.build, fields.fingerprint
    | filter fields.decision = "start"
    | stats count(*) as deploys, latest(@timestamp) as last_start, latest(fields.build) as last_build by fields.environment
    | sort deploys desc
  EOT
}

resource "aws_cloudwatch_query_definition" "skipped_pushes" {
  name            = "${var.name_prefix}/skipped-pushes"
  log_group_names = [aws_cloudwatch_log_group.function["record-image-tag"].name]
  query_string    = <<-EOT
    fields @timestamp, fields.service, fields.environment, fields.tag, fields.previous, fields.reason
    | filter fields.decision = "skip"
    | sort @timestamp desc
    | limit 200
  EOT
}

resource "aws_cloudwatch_query_definition" "errors" {
  name            = "${var.name_prefix}/errors"
  log_group_names = [for fn in local.functions : aws_cloudwatch_log_group.function[fn].name]
  query_string    = <<-EOT
    fields @timestamp, @log, fields.decision, fields.environment, fields.service, fields.error, fields.message
    | filter level = "ERROR"
    | sort @timestamp desc
    | limit 200
  EOT
}
