output "function_arns" {
  description = "ARN of each function, by function (promote, record-image-tag, trigger-deploy)."
  value       = { for fn in local.functions : fn => aws_lambda_function.this[fn].arn }
}

output "function_role_arns" {
  description = "Execution role ARN of each function."
  value       = { for fn in local.functions : fn => aws_iam_role.function[fn].arn }
}

output "dead_letter_queue_urls" {
  description = "Dead-letter queue URL of each function (what `tagrelay redrive` reads)."
  value       = { for fn in local.functions : fn => aws_sqs_queue.dlq[fn].url }
}

output "log_group_names" {
  description = "Log group of each function."
  value       = local.function_log_groups
}

output "parameter_names" {
  description = "The image-tag parameter of each service in each environment, keyed \"<service>/<environment>\" (created by this stack with manage_image_tag_parameters, else on its first write)."
  value       = { for key, p in local.parameters : key => p.name }
}

output "codebuild_projects" {
  description = "The CodeBuild project of each environment."
  value       = { for name in keys(local.environments) : name => aws_codebuild_project.this[name].name }
}

output "codebuild_role_arns" {
  description = "Service role of each environment's project; grant it what the team's Terraform manages (or use environments.<env>.policy_arns)."
  value       = { for name in keys(local.environments) : name => aws_iam_role.codebuild[name].arn }
}

output "event_rule_arns" {
  description = "EventBridge rules: ecr-push, parameter-change, build-finished, sweep; ecs-deployment when an environment has an ecs_cluster; promote-parameter-change when an environment is promoted from another, has rollback_alarms or approval; alarm-state-change when a gate or rollback alarm is configured."
  value = merge(
    { for key, rule in aws_cloudwatch_event_rule.pattern : key => rule.arn },
    { sweep = aws_cloudwatch_event_rule.sweep.arn },
  )
}

output "dashboard_name" {
  description = "The CloudWatch dashboard: per environment, the last decisions, Terraform runs, failed rollouts and rollbacks; function errors and DLQ depth."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify; subscribe chat or paging integrations to it."
  value       = aws_sns_topic.alarms.arn
}

output "kms_key_arn" {
  description = "The key encrypting logs, queues, the topic, the functions' environment and build output."
  value       = aws_kms_key.this.arn
}

output "tagrelay_config" {
  description = "The configuration document the functions run with, as JSON (what the `tagrelay` CLI needs in TAGRELAY_CONFIG or --config), wherever it is stored."
  value       = local.config_json
}

output "config_reference" {
  description = "What the functions' TAGRELAY_CONFIG holds when the document is stored in SSM (config_storage): `ssm:/tagrelay/_config:<version>`; null while it is inline."
  value       = local.config_in_ssm ? local.config_reference : null
}
