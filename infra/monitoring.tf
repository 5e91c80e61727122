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
# environment, or an event that needs a redrive. They differ only in the metric they watch and
# what they tell the reader, so one resource makes them all from local.alarms, keyed
# "<kind>:<function or environment>".
################################################################################

locals {
  alarms = merge(
    # An invocation returned an error (it is retried, then lands in the DLQ).
    { for fn in local.functions : "errors:${fn}" => {
      name        = "${local.function_names[fn]}-errors"
      description = "${local.function_names[fn]} returned errors; see the saved query ${var.name_prefix}/errors. Failed events land in ${aws_sqs_queue.dlq[fn].name}."
      namespace   = "AWS/Lambda"
      metric      = "Errors"
      dimensions  = { FunctionName = aws_lambda_function.this[fn].function_name }
      statistic   = "Sum"
    } },
    # An event exhausted its retries: replay it with `tagrelay redrive` once the cause is fixed.
    { for fn in local.functions : "dlq-messages:${fn}" => {
      name        = "${aws_sqs_queue.dlq[fn].name}-messages"
      description = "Events that ${local.function_names[fn]} failed to handle are waiting in ${aws_sqs_queue.dlq[fn].name}; fix the cause, then `tagrelay redrive`."
      namespace   = "AWS/SQS"
      metric      = "ApproximateNumberOfMessagesVisible"
      dimensions  = { QueueName = aws_sqs_queue.dlq[fn].name }
      statistic   = "Maximum"
    } },
    # A Terraform run failed (tagrelay's or a manual one in a tagrelay project).
    { for name, env in local.environments : "failed-builds:${name}" => {
      name        = "${env.codebuild_project}-failed-builds"
      description = "A Terraform run for ${name} (${env.codebuild_project}) failed; its log is in ${aws_cloudwatch_log_group.build[name].name}."
      namespace   = "AWS/CodeBuild"
      metric      = "FailedBuilds"
      dimensions  = { ProjectName = aws_codebuild_project.this[name].name }
      statistic   = "Sum"
    } },
    # Hold: the current state of an environment already failed to deploy, and tagrelay will not
    # retry it by itself (the metric filter below counts those log lines).
    { for name, env in local.environments : "deploy-held:${name}" => {
      name        = "${var.name_prefix}-${name}-deploy-held"
      description = "tagrelay holds ${name}: the current image tags already failed to deploy and are not retried. Fix the cause, then `tagrelay retry --env ${name}`, or fix forward (push a new tag, or promote/pin one)."
      namespace   = aws_cloudwatch_log_metric_filter.hold.metric_transformation[0].namespace
      metric      = aws_cloudwatch_log_metric_filter.hold.metric_transformation[0].name
      dimensions  = { Environment = name }
      statistic   = "Sum"
    } },
    # Which kind of hold: the run succeeded but ECS does not run what it deployed (rolled back,
    # failed, or not completed within verify_timeout). These holds also count for deploy-held,
    # which pages; this one does not notify (notify = false), so one held environment is one
    # page, and its state tells the responder to look at ECS rather than at the build.
    { for name, env in local.environments : "verify-failed:${name}" => {
      name        = "${var.name_prefix}-${name}-verify-failed"
      description = "tagrelay holds ${name} after a successful run: ECS does not run what it deployed (rollout_failed: rolled back, failed, or another image runs; verify_timed_out: not completed within verify_timeout). See the ECS service's deployments and events and the saved query ${var.name_prefix}/errors; then `tagrelay retry --env ${name}` or fix forward. Paged through ${var.name_prefix}-${name}-deploy-held."
      namespace   = aws_cloudwatch_log_metric_filter.verification_hold.metric_transformation[0].namespace
      metric      = aws_cloudwatch_log_metric_filter.verification_hold.metric_transformation[0].name
      dimensions  = { Environment = name }
      statistic   = "Sum"
      notify      = false
    } if env.ecs_cluster != null },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = each.value.name
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  actions_enabled     = true
  alarm_actions       = try(each.value.notify, true) ? [aws_sns_topic.alarms.arn] : []
  ok_actions          = try(each.value.notify, true) ? [aws_sns_topic.alarms.arn] : []
  tags                = local.tags
}

# trigger-deploy logs a Hold at ERROR with fields.decision = "hold"; this counts them per
# environment for the deploy-held alarms.
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

# The holds of verified deploys: trigger-deploy logs them at ERROR with fields.decision = "hold"
# too (so the filter above counts them as well) and the reason rollout_failed or verify_timed_out.
resource "aws_cloudwatch_log_metric_filter" "verification_hold" {
  name           = "${var.name_prefix}-verification-holds"
  log_group_name = aws_cloudwatch_log_group.function["trigger-deploy"].name
  pattern        = "{ $.fields.decision = \"hold\" && ($.fields.reason = \"rollout_failed\" || $.fields.reason = \"verify_timed_out\") }"

  metric_transformation {
    namespace  = "tagrelay"
    name       = "VerificationHolds"
    value      = "1"
    unit       = "Count"
    dimensions = { Environment = "$.fields.environment" }
  }
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

# Releases: trigger-deploy logs decision = "verified" once per release (ECS showed it, or the
# build succeeded in an environment without ECS); the release records hold the same history.
resource "aws_cloudwatch_query_definition" "releases_by_environment" {
  name            = "${var.name_prefix}/releases-by-environment"
  log_group_names = [aws_cloudwatch_log_group.function["trigger-deploy"].name]
  query_string    = <<-EOT
    fields @timestamp, fields.environment, fields.reason, fields.build, fields.fingerprint
    | filter fields.decision = "verified"
    | stats count(*) as releases, latest(@timestamp) as last_release, latest(fields.build) as last_build, latest(fields.fingerprint) as last_fingerprint by fields.environment
    | sort last_release desc
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
