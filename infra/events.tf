################################################################################
# EventBridge rules. The patterns are the files in event-patterns/ (which the local test bed
# routes with too), narrowed here to what is ours.
################################################################################

locals {
  # A rule's pattern may hold 2,048 characters (EventBridge quotas, "Event pattern"). A list of our
  # names is used while the rendered pattern stays within this budget, the rest left for what a
  # plan adds between two looks (a service, a repository); beyond it the rule falls back to a
  # prefix or to every event of its kind, and the function filters exactly (it ignores what it does
  # not own, with one INFO line). The precondition below keeps the hard limit.
  event_pattern_budget = 1800

  base_patterns = {
    ecr       = jsondecode(file("${path.module}/event-patterns/ecr-image-action.json"))
    parameter = jsondecode(file("${path.module}/event-patterns/parameter-store-change.json"))
    build     = jsondecode(file("${path.module}/event-patterns/codebuild-build-state-change.json"))
    ecs       = jsondecode(file("${path.module}/event-patterns/ecs-deployment-state-change.json"))
    alarm     = jsondecode(file("${path.module}/event-patterns/cloudwatch-alarm-state-change.json"))
  }

  # ECR pushes: the repositories are the team's names, not ours. Their list while it fits the
  # budget (about 50 repositories of 20 characters); beyond, var.repository_prefixes when set;
  # else every successful push of the account and region reaches record-image-tag, which ignores
  # a repository no service has (`repository_not_configured`, one INFO line: an invocation of a
  # few milliseconds per foreign push).
  ecr_exact_pattern = merge(local.base_patterns.ecr, {
    detail = merge(local.base_patterns.ecr.detail, { "repository-name" = local.repositories })
  })
  ecr_repository_filter_by = (
    length(jsonencode(local.ecr_exact_pattern)) <= local.event_pattern_budget ? "names" :
    length(var.repository_prefixes) > 0 ? "prefixes" : "any"
  )
  ecr_repository_filter = {
    names    = local.repositories
    prefixes = [for prefix in var.repository_prefixes : { prefix = prefix }]
    any      = [{ exists = true }]
  }[local.ecr_repository_filter_by]

  # Image-tag parameters: one entry per environment, made from parameter_template, not one per
  # parameter (1,000 services x 10 environments would need 10,000 names). The environment's part
  # of the name is on one side of {service}: after it (the default,
  # /{service}/{environment}/docker-image-tag -> {"suffix": "/dev/docker-image-tag"}) or before it
  # (/{environment}/{service} -> {"prefix": "/dev/"}). Not a wildcard per environment: each
  # wildcard value of a field adds to the rule's complexity, which EventBridge caps ("Rule is too
  # complex"); measured with aws/event-ruler's MachineComplexityEvaluator, ten values
  # "/*/<env>/docker-image-tag" score 21, and a public report shows 12 refused where 9 passed.
  # Suffixes and prefixes score 0. Wider than the exact set (a parameter of the same shape that no
  # service has), which trigger-deploy ignores; never a record under /tagrelay/ (a template that
  # could render one is refused, ssm.tf), its parts or the manifests.
  parameter_template_before_service = split("{service}", var.parameter_template)[0]
  parameter_template_after_service  = split("{service}", var.parameter_template)[length(split("{service}", var.parameter_template)) - 1]
  parameter_rule_operator           = strcontains(local.parameter_template_after_service, "{environment}") ? "suffix" : "prefix"
  parameter_rule_operand            = local.parameter_rule_operator == "suffix" ? local.parameter_template_after_service : local.parameter_template_before_service
  parameter_rule_names = distinct([
    for env in sort(keys(local.environments)) : {
      for operator in [local.parameter_rule_operator] : operator => replace(local.parameter_rule_operand, "{environment}", env)
    }
  ])

  # Gate and rollback alarms: their names while they fit (alarm names may have 255 characters
  # each); beyond, var.alarm_name_prefixes when set; else every alarm state change of the account
  # and region reaches promote, which ignores an alarm it does not gate on (one INFO line).
  alarm_exact_pattern = merge(local.base_patterns.alarm, { detail = { alarmName = local.promotion_alarm_names } })
  alarm_name_filter_by = (
    length(jsonencode(local.alarm_exact_pattern)) <= local.event_pattern_budget ? "names" :
    length(var.alarm_name_prefixes) > 0 ? "prefixes" : "any"
  )
  alarm_name_filter = {
    names    = local.promotion_alarm_names
    prefixes = [for prefix in var.alarm_name_prefixes : { prefix = prefix }]
    any      = [{ exists = true }]
  }[local.alarm_name_filter_by]

  rules = {
    ecr-push = {
      description = "tagrelay: successful ECR pushes to the configured repositories"
      function    = "record-image-tag"
      pattern = merge(local.base_patterns.ecr, {
        detail = merge(local.base_patterns.ecr.detail, { "repository-name" = local.ecr_repository_filter })
      })
    }
    parameter-change = {
      description = "tagrelay: changes of the image-tag parameters"
      function    = "trigger-deploy"
      pattern = merge(local.base_patterns.parameter, {
        detail = merge(local.base_patterns.parameter.detail, { name = local.parameter_rule_names })
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
    # format (the default since 2021) names the cluster, so the rule takes the clusters' prefixes
    # (or the account's, beyond the budget: main.tf).
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
    # records promote decides on (by wildcard: main.tf); none while no environment is promoted,
    # rolled back or approved.
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
        detail = { alarmName = local.alarm_name_filter }
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
    # EventBridge limits an event pattern to 2048 characters. The narrowings above fall back before
    # they reach it (local.event_pattern_budget); what is left to exceed it is a very long
    # parameter_template or environment name, a prefix list, or some 30 environments' projects.
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
