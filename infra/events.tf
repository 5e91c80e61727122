################################################################################
# EventBridge rules. The patterns are the files in event-patterns/ (which the local test bed
# routes with too), narrowed here to what is ours.
################################################################################

locals {
  base_patterns = {
    ecr       = jsondecode(file("${path.module}/event-patterns/ecr-image-action.json"))
    parameter = jsondecode(file("${path.module}/event-patterns/parameter-store-change.json"))
    build     = jsondecode(file("${path.module}/event-patterns/codebuild-build-state-change.json"))
    ecs       = jsondecode(file("${path.module}/event-patterns/ecs-deployment-state-change.json"))
    alarm     = jsondecode(file("${path.module}/event-patterns/cloudwatch-alarm-state-change.json"))
  }

  rules = {
    ecr-push = {
      description = "tagrelay: successful ECR pushes to the configured repositories"
      function    = "record-image-tag"
      pattern = merge(local.base_patterns.ecr, {
        detail = merge(local.base_patterns.ecr.detail, { "repository-name" = local.repositories })
      })
    }
    parameter-change = {
      description = "tagrelay: changes of the image-tag parameters"
      function    = "trigger-deploy"
      pattern = merge(local.base_patterns.parameter, {
        detail = merge(local.base_patterns.parameter.detail, { name = local.parameter_names })
      })
    }
    build-finished = {
      description = "tagrelay: builds of the tagrelay projects that finished"
      function    = "trigger-deploy"
      pattern = merge(local.base_patterns.build, {
        detail = merge(local.base_patterns.build.detail, { "project-name" = local.projects })
      })
    }
    # Verified deploys: a deployment of a service in one of the environments' clusters started,
    # completed or failed. The event names the service only in `resources`, by its ARN; the long
    # format (the default since 2021) names the cluster, so the rule takes the clusters' prefixes.
    ecs-deployment = {
      description = "tagrelay: ECS deployments of services in the environments' clusters"
      function    = "trigger-deploy"
      create      = length(local.ecs_clusters) > 0
      pattern = merge(local.base_patterns.ecs, {
        resources = local.ecs_service_arn_prefixes
      })
    }
    # Promotion: a release recorded upstream (or in an environment with rollback_alarms), an
    # approval recorded. The same Parameter Store pattern as parameter-change, narrowed to the
    # records promote decides on; none while no environment is promoted, rolled back or approved.
    promote-parameter-change = {
      description = "tagrelay: release and approval records that promotion and rollback decide on"
      function    = "promote"
      create      = length(local.promote_parameter_names) > 0
      pattern = merge(local.base_patterns.parameter, {
        detail = merge(local.base_patterns.parameter.detail, { name = local.promote_parameter_names })
      })
    }
    # A gate or rollback alarm changed state (into or out of ALARM: both matter, a gate leaving
    # ALARM restarts the soak). None while no alarm is configured.
    alarm-state-change = {
      description = "tagrelay: state changes of the gate and rollback alarms"
      function    = "promote"
      create      = length(local.promotion_alarm_names) > 0
      # The base pattern has no `detail` (source and detail-type only): the narrowing is all of it.
      pattern = merge(local.base_patterns.alarm, {
        detail = { alarmName = local.promotion_alarm_names }
      })
    }
  }

  # A rule whose narrowing lists nothing of ours is not created (no environment has an
  # ecs_cluster; nothing is promoted, rolled back or approved; no alarm): EventBridge refuses an
  # empty list, and no event could be ours.
  created_rules = { for key, rule in local.rules : key => rule if try(rule.create, true) }
}

resource "aws_cloudwatch_event_rule" "pattern" {
  for_each = local.created_rules

  name          = "${var.name_prefix}-${each.key}"
  description   = each.value.description
  event_pattern = jsonencode(each.value.pattern)
  tags          = local.tags

  lifecycle {
    # EventBridge limits an event pattern to 2048 characters. Many services x environments (the
    # parameter rule lists every name) can exceed it; split the stack or shorten the template.
    precondition {
      condition     = length(jsonencode(each.value.pattern)) <= 2048
      error_message = "The event pattern of rule ${each.key} is ${length(jsonencode(each.value.pattern))} characters; EventBridge allows 2048."
    }
  }
}

resource "aws_cloudwatch_event_target" "pattern" {
  for_each = local.created_rules

  rule      = aws_cloudwatch_event_rule.pattern[each.key].name
  target_id = each.value.function
  arn       = aws_lambda_function.this[each.value.function].arn

  # The parameters are created before the rule routes their changes: creating them is not a
  # change to deploy, and would otherwise start a first Terraform run in every environment.
  depends_on = [aws_ssm_parameter.image_tag, aws_lambda_permission.pattern]
}

resource "aws_lambda_permission" "pattern" {
  for_each = local.created_rules

  statement_id  = "AllowEventBridge-${each.key}"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.value.function].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.pattern[each.key].arn
}

################################################################################
# The sweeps, on one schedule: the safety net for a lost event. record-image-tag records, per
# service, the newest eligible tag pushed after the parameter's last write (ECR events are best
# effort); trigger-deploy reconciles every environment, and never starts an environment's first
# run (no baseline to be behind); promote decides every promotion and rollback again, which is
# also what notices a soak's end and a rollback window's (their precision is the schedule's).
################################################################################

resource "aws_cloudwatch_event_rule" "sweep" {
  name                = "${var.name_prefix}-sweep"
  description         = "tagrelay: record sweep, reconcile and promotion of every environment (safety net for lost events, soak ends)"
  schedule_expression = var.schedule_expression
  tags                = local.tags
}

resource "aws_cloudwatch_event_target" "sweep" {
  for_each = local.functions

  rule      = aws_cloudwatch_event_rule.sweep.name
  target_id = each.key
  arn       = aws_lambda_function.this[each.key].arn

  depends_on = [aws_lambda_permission.sweep]
}

resource "aws_lambda_permission" "sweep" {
  for_each = local.functions

  statement_id  = "AllowEventBridge-sweep"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.sweep.arn
}

# The sweep used to target trigger-deploy alone.
moved {
  from = aws_cloudwatch_event_target.sweep
  to   = aws_cloudwatch_event_target.sweep["trigger-deploy"]
}

moved {
  from = aws_lambda_permission.sweep
  to   = aws_lambda_permission.sweep["trigger-deploy"]
}
