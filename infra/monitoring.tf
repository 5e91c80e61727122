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
    # Promotion: someone is told that a release waits for approval (it stays in ALARM while
    # promote keeps finding it waiting, i.e. with a sweep of 5 minutes or faster).
    { for name in local.approval_environments : "awaiting-approval:${name}" => {
      name        = "${var.name_prefix}-${name}-awaiting-approval"
      description = "A release waits for approval to enter ${name} (promote logged awaiting_approval). `tagrelay status` shows which release; `tagrelay approve --env ${name}` lets it through. See the saved query ${var.name_prefix}/promotions."
      namespace   = aws_cloudwatch_log_metric_filter.promotion["awaiting-approval"].metric_transformation[0].namespace
      metric      = aws_cloudwatch_log_metric_filter.promotion["awaiting-approval"].metric_transformation[0].name
      dimensions  = { Environment = name }
      statistic   = "Sum"
    } },
    # Rollback: promote set an environment back to its previous release (once per release).
    { for name in local.rollback_environments : "rolled-back:${name}" => {
      name        = "${var.name_prefix}-${name}-rolled-back"
      description = "tagrelay rolled ${name} back to its previous release: a rollback alarm fired within rollback_window (promote logged rollback). The rollback record /tagrelay/${name}/rollback says which alarm and what from and to; the rolled-back tags are never promoted into ${name} again. `tagrelay status`, `tagrelay trace`, the saved query ${var.name_prefix}/promotions."
      namespace   = aws_cloudwatch_log_metric_filter.promotion["rollback"].metric_transformation[0].namespace
      metric      = aws_cloudwatch_log_metric_filter.promotion["rollback"].metric_transformation[0].name
      dimensions  = { Environment = name }
      statistic   = "Sum"
    } },
    # A rollback alarm fired but nothing earlier was ever released there: nothing was changed.
    { for name in local.rollback_environments : "no-previous-release:${name}" => {
      name        = "${var.name_prefix}-${name}-no-previous-release"
      description = "A rollback alarm of ${name} fired, but ${name} has no earlier release to go back to (promote logged no_previous_release): nothing was rolled back and a person must act (fix forward, or `tagrelay pin`)."
      namespace   = aws_cloudwatch_log_metric_filter.promotion["no-previous-release"].metric_transformation[0].namespace
      metric      = aws_cloudwatch_log_metric_filter.promotion["no-previous-release"].metric_transformation[0].name
      dimensions  = { Environment = name }
      statistic   = "Sum"
    } },
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

# The promote decisions someone must hear of, counted per environment for the alarms above
# (promote logs awaiting_approval at WARN, rollback at WARN, no_previous_release at ERROR).
locals {
  promotion_metric_filters = {
    "awaiting-approval"   = { decision = "awaiting_approval", metric = "AwaitingApprovalDecisions" }
    "rollback"            = { decision = "rollback", metric = "RollbackDecisions" }
    "no-previous-release" = { decision = "no_previous_release", metric = "NoPreviousReleaseDecisions" }
  }
}

resource "aws_cloudwatch_log_metric_filter" "promotion" {
  for_each = local.promotion_metric_filters

  name           = "${var.name_prefix}-${each.key}-decisions"
  log_group_name = aws_cloudwatch_log_group.function["promote"].name
  pattern        = "{ $.fields.decision = \"${each.value.decision}\" }"

  metric_transformation {
    namespace  = "tagrelay"
    name       = each.value.metric
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

# Promotion and rollback: each environment's promote decisions (a rollback decision and a
# promotion decision per look), how often and when last. The record lines of a promotion's
# writes carry the record path's decisions and are left out by the list.
resource "aws_cloudwatch_query_definition" "promotions" {
  name            = "${var.name_prefix}/promotions"
  log_group_names = [aws_cloudwatch_log_group.function["promote"].name]
  query_string    = <<-EOT
    fields @timestamp, fields.environment, fields.decision, fields.upstream, fields.release, fields.fingerprint, fields.alarm, fields.until
    | filter fields.decision in ["up_to_date", "rolled_back", "blocked_upstream", "blocked", "soaking", "awaiting_approval", "promote", "healthy", "outside_window", "rollback_done", "rollback_resumed", "no_previous_release", "rollback", "deferred"]
    | stats count(*) as looks, latest(@timestamp) as last_at, latest(fields.upstream) as upstream, latest(fields.release) as release, latest(fields.alarm) as alarm, latest(fields.until) as until by fields.environment, fields.decision
    | sort fields.environment asc, last_at desc
  EOT
}

################################################################################
# The dashboard an operator opens first: per environment, the last decisions of the three
# functions (Logs Insights), its builds started and failed, its failed rollouts and rollbacks;
# for the stack, function errors and dead-letter queue depth. Names come from locals (known at
# plan time), not from the resources: a dashboard is JSON and references nothing.
################################################################################

locals {
  dashboard_environments = sort(keys(local.environments))
  # Log groups in the order of local.functions (sorted): promote, record-image-tag, trigger-deploy.
  dashboard_sources = join(" | ", [for fn in local.functions : "SOURCE '${local.function_log_groups[fn]}'"])

  dashboard = {
    widgets = concat(
      [
        {
          type = "text", x = 0, y = 0, width = 24, height = 2
          properties = {
            markdown = join("\n", [
              "## ${var.name_prefix}: per environment, what tagrelay decided and what ran",
              "Last decisions of record-image-tag, trigger-deploy and promote; Terraform runs; failed rollouts and rollbacks. Saved queries `${var.name_prefix}/errors`, `${var.name_prefix}/promotions`, `${var.name_prefix}/deploys-by-environment`; `tagrelay status` and `tagrelay trace` read the same state from SSM.",
            ])
          }
        },
        {
          type = "metric", x = 0, y = 2, width = 12, height = 6
          properties = {
            title   = "Function errors (Lambda Errors, sum per 5 min)"
            region  = local.region
            view    = "timeSeries"
            stacked = false
            stat    = "Sum"
            period  = 300
            metrics = [for fn in local.functions : ["AWS/Lambda", "Errors", "FunctionName", local.function_names[fn], { label = fn }]]
          }
        },
        {
          type = "metric", x = 12, y = 2, width = 12, height = 6
          properties = {
            title   = "Dead-letter queue depth (events to `tagrelay redrive`)"
            region  = local.region
            view    = "timeSeries"
            stacked = false
            stat    = "Maximum"
            period  = 300
            metrics = [for fn in local.functions : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", local.dlq_names[fn], { label = fn }]]
          }
        },
      ],
      flatten([
        for index, name in local.dashboard_environments : [
          {
            type = "log", x = 0, y = 8 + 6 * index, width = 12, height = 6
            properties = {
              title  = "${name}: last decisions"
              region = local.region
              view   = "table"
              query  = "${local.dashboard_sources} | fields @timestamp, @log, fields.decision, fields.reason, fields.service, fields.tag, fields.build, fields.upstream, fields.release | filter fields.environment = \"${name}\" and ispresent(fields.decision) | sort @timestamp desc | limit 20"
            }
          },
          {
            type = "metric", x = 12, y = 8 + 6 * index, width = 6, height = 6
            properties = {
              title   = "${name}: Terraform runs"
              region  = local.region
              view    = "timeSeries"
              stacked = false
              stat    = "Sum"
              period  = 300
              metrics = [
                ["AWS/CodeBuild", "Builds", "ProjectName", local.environments[name].codebuild_project, { label = "started" }],
                ["AWS/CodeBuild", "FailedBuilds", "ProjectName", local.environments[name].codebuild_project, { label = "failed" }],
              ]
            }
          },
          {
            type = "metric", x = 18, y = 8 + 6 * index, width = 6, height = 6
            properties = {
              title   = "${name}: rollouts failed, rollbacks"
              region  = local.region
              view    = "timeSeries"
              stacked = false
              stat    = "Sum"
              period  = 300
              metrics = [
                # The metric filters' metrics (namespace tagrelay, dimension Environment).
                ["tagrelay", "VerificationHolds", "Environment", name, { label = "rollout failed or timed out" }],
                ["tagrelay", local.promotion_metric_filters["rollback"].metric, "Environment", name, { label = "rolled back" }],
                ["tagrelay", local.promotion_metric_filters["no-previous-release"].metric, "Environment", name, { label = "no release to roll back to" }],
                ["tagrelay", local.promotion_metric_filters["awaiting-approval"].metric, "Environment", name, { label = "awaiting approval" }],
              ]
            }
          },
        ]
      ]),
    )
  }
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.name_prefix
  dashboard_body = jsonencode(local.dashboard)

  lifecycle {
    # Dashboard Body Structure and Syntax: "an array of between 0 and 100 widget objects".
    precondition {
      condition     = length(local.dashboard.widgets) <= 100
      error_message = "The dashboard would have ${length(local.dashboard.widgets)} widgets; CloudWatch allows 100 (3 + 3 per environment: at most 32 environments)."
    }
  }
}
