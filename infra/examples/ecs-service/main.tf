# How a team's service consumes the image tag tagrelay records: no tag is ever written in this
# code. A push writes the parameter, tagrelay runs `terraform apply` for the environment, the plan
# sees a new image URI, registers a task definition revision and rolls the service; tagrelay then
# verifies on ECS that the service's PRIMARY deployment runs that image and completed (when the
# environment has an ecs_cluster).

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

# Read only by a manual run: a tagrelay run passes every parameter of the environment.
data "aws_ssm_parameter" "image_tag" {
  count = local.tagrelay_run ? 0 : 1

  name = local.parameter_name
}

locals {
  parameter_name = replace(replace(var.parameter_template, "{service}", var.service), "{environment}", var.environment)

  # A tagrelay run passes the values it was started for (TF_VAR_tagrelay_image_tags, from
  # TAGRELAY_FINGERPRINT): every image-tag parameter of the environment that exists, at the
  # version the run was started for. Deploy exactly that, so what ECS runs is what tagrelay
  # verifies even when the parameter moved on during the run. A parameter the map does not hold
  # does not exist yet: with manage_image_tag_parameters = false tagrelay creates it on the
  # service's first push, so a service nobody pushed yet has none; it is planned like one that
  # holds the placeholder (no tasks), not as an error that would stop the environment's apply.
  # Nothing is read from SSM then: at 1,000 services that is 1,000 GetParameter calls fewer per
  # plan.
  # A manual run passes nothing: the newest value, read here (its parameter must exist).
  # insecure_value, not value: an image tag is no secret, and `value` is marked sensitive, which
  # would hide the new tag in the plan (the one line a reviewer of a deploy wants to see).
  tagrelay_run = length(var.tagrelay_image_tags) > 0
  image_tag = (
    local.tagrelay_run
    ? lookup(var.tagrelay_image_tags, local.parameter_name, var.parameter_placeholder)
    : one(data.aws_ssm_parameter.image_tag[*].insecure_value)
  )
  # aws_region's `id` (the region's name in provider 5 and 6), not `name`: deprecated in 6.
  region = data.aws_region.current.id
  image  = "${data.aws_caller_identity.current.account_id}.dkr.ecr.${local.region}.amazonaws.com/${var.repository}:${local.image_tag}"

  # Before the first push the parameter holds tagrelay's placeholder (or does not exist yet), which
  # names no image: run no tasks rather than tasks that cannot pull.
  has_image = local.image_tag != var.parameter_placeholder
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.service}-${var.environment}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = var.execution_role_arn
  task_role_arn            = var.task_role_arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "ARM64"
  }

  container_definitions = jsonencode([
    {
      name                   = var.service
      image                  = local.image
      essential              = true
      readonlyRootFilesystem = true
      portMappings           = [{ containerPort = var.container_port, protocol = "tcp" }]
      environment = [
        { name = "ENVIRONMENT", value = var.environment },
        { name = "IMAGE_TAG", value = local.image_tag },
      ]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = var.log_group_name
          awslogs-region        = local.region
          awslogs-stream-prefix = var.service
        }
      }
    }
  ])
}

resource "aws_ecs_service" "this" {
  name             = var.service
  cluster          = var.cluster_arn
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = local.has_image ? var.desired_count : 0
  launch_type      = "FARGATE"
  platform_version = "LATEST"

  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  # A deployment whose tasks do not become healthy is stopped and rolled back to the last
  # working task definition.
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # Not waiting keeps the Terraform run short: checking the rollout on ECS is the job of
  # tagrelay's verified deploys (environments.<env>.ecs_cluster), which wait for the PRIMARY
  # deployment's rolloutState and hold the environment when it fails or is rolled back. Waiting
  # alone is no check: after the circuit breaker rolled back, the service is steady on the old
  # task definition and `apply` succeeds (terraform-provider-aws #19519, #20858); the
  # postcondition below catches that for a team that waits anyway.
  wait_for_steady_state = var.wait_for_steady_state

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = var.security_group_ids
    assign_public_ip = false
  }

  propagate_tags = "SERVICE"
  tags = {
    service     = var.service
    environment = var.environment
  }

  lifecycle {
    # For teams that wait: after a wait the provider reads the service back, so a rolled-back
    # deployment shows as the old task definition and fails the build honestly. Without waiting
    # it holds trivially (the service was just updated to the new revision).
    postcondition {
      condition     = self.task_definition == aws_ecs_task_definition.this.arn
      error_message = "ECS runs ${self.task_definition}, not ${aws_ecs_task_definition.this.arn} registered by this apply: the deployment was rolled back (see the service's events)."
    }
  }
}
