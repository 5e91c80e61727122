################################################################################
# Naming
################################################################################

variable "name_prefix" {
  description = "Prefix of every resource name (functions, roles, queues, topic, default CodeBuild project names `<prefix>-<env>`)."
  type        = string
  default     = "tagrelay"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,31}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and contain only letters, digits and '-', at most 32 characters."
  }
}

variable "tags" {
  description = "Tags added to every resource that supports them."
  type        = map(string)
  default     = {}
}

################################################################################
# What tagrelay manages (rendered into TAGRELAY_CONFIG)
################################################################################

variable "parameter_template" {
  description = "SSM parameter name of a service's image tag in an environment. Must contain `{service}` and `{environment}`."
  type        = string
  default     = "/{service}/{environment}/docker-image-tag"

  validation {
    condition = alltrue([
      startswith(var.parameter_template, "/"),
      strcontains(var.parameter_template, "{service}"),
      strcontains(var.parameter_template, "{environment}"),
      can(regex("^[a-zA-Z0-9_./{}-]+$", var.parameter_template)),
      !strcontains(var.parameter_template, "//"),
      !endswith(var.parameter_template, "/"),
      !can(regex("^/(aws|ssm)", lower(var.parameter_template))),
    ])
    error_message = "parameter_template must start with '/', contain {service} and {environment}, use only a-zA-Z0-9_.-/ besides the placeholders, have no empty level, and not start with /aws or /ssm."
  }
}

variable "environments" {
  description = <<-EOT
    Environments, by name. Each gets one CodeBuild project that runs the team's Terraform for it.
    - codebuild_project: project name (default `<name_prefix>-<env>`).
    - state_key: S3 key of the environment's Terraform state (default `<env>/terraform.tfstate`).
    - working_directory: directory of the team's Terraform inside the source (default `.`).
    - var_file: optional `-var-file` for `terraform apply`, relative to working_directory.
    - source_version: optional branch, tag or commit of the source to build.
    - policy_arns: managed policies attached to the project's service role: what the team's
      Terraform needs to manage the environment (e.g. ECS, IAM PassRole, the state bucket's KMS key).
    - policy_json: an optional inline policy for the same purpose.
    - ecs_cluster: the ECS cluster (name, this account and region) the environment's services run
      in. Set: after a successful run tagrelay verifies on ECS that each ECS service's PRIMARY
      deployment runs the deployed image and completed. null (default): no ECS verification; a
      successful run is the release.
    - verify_timeout: how long after the run's end a rollout may stay in progress before the
      environment is held (`<n>s|m|h|d`, 1m to 1d; null: tagrelay's default, 30m).
    Promotion and rollback (the promote function; README "Promotion"):
    - promote_from: the environment whose verified releases move on into this one by themselves
      (another defined environment; the chain must not loop; an environment promoted from
      another takes no pushes: no service may list it in deploy_on_push).
    - soak: how long a release must have been verified upstream, with no gate alarm leaving
      ALARM since, before it moves on (`<n>s|m|h|d`, 0s to 7d; null: 0s). Needs promote_from.
    - gate_alarms: CloudWatch alarms (names, metric or composite) that hold promotion into this
      environment while in ALARM or missing. Needs promote_from.
    - approval: true: a release waits for `tagrelay approve --env <env>` before it moves on
      (null/false: no approval). true needs promote_from.
    - rollback_alarms: CloudWatch alarms whose ALARM within rollback_window of a release rolls
      this environment back to its previous release.
    - rollback_window: how long after a release was verified its rollback alarms count
      (`<n>s|m|h|d`, 1m to 7d; null: 30m).
  EOT
  type = map(object({
    codebuild_project = optional(string)
    state_key         = optional(string)
    working_directory = optional(string, ".")
    var_file          = optional(string)
    source_version    = optional(string)
    policy_arns       = optional(list(string), [])
    policy_json       = optional(string)
    ecs_cluster       = optional(string)
    verify_timeout    = optional(string)
    promote_from      = optional(string)
    soak              = optional(string)
    gate_alarms       = optional(list(string))
    approval          = optional(bool)
    rollback_alarms   = optional(list(string))
    rollback_window   = optional(string)
  }))

  validation {
    condition     = length(var.environments) > 0
    error_message = "Define at least one environment."
  }

  validation {
    condition     = alltrue([for name in keys(var.environments) : can(regex("^[a-zA-Z0-9_.-]+$", name))])
    error_message = "Environment names may contain only a-zA-Z0-9_.- (they become a level of an SSM parameter name)."
  }

  validation {
    condition = alltrue([
      for env in values(var.environments) :
      env.codebuild_project == null || can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{1,254}$", env.codebuild_project))
    ])
    error_message = "codebuild_project must be a valid CodeBuild project name (2-255 characters, letters, digits, '-' and '_')."
  }

  # The project's service role is named "<codebuild_project>-build", and IAM role names are at
  # most 64 characters.
  validation {
    condition = alltrue([
      for env in values(var.environments) : env.codebuild_project == null ? true : length(env.codebuild_project) <= 58
    ])
    error_message = "environments.<env>.codebuild_project must be at most 58 characters: its service role is named \"<codebuild_project>-build\" and IAM role names are at most 64 characters."
  }

  validation {
    condition     = alltrue([for env in values(var.environments) : env.policy_json == null || can(jsondecode(env.policy_json))])
    error_message = "policy_json must be a JSON policy document."
  }

  # ECS cluster names: 1-255 letters, digits, hyphens and underscores (ECS API Reference,
  # CreateCluster clusterName); the rule and the role name the cluster in service ARNs.
  validation {
    condition = alltrue([
      for env in values(var.environments) : env.ecs_cluster == null || can(regex("^[A-Za-z0-9_-]{1,255}$", env.ecs_cluster))
    ])
    error_message = "environments.<env>.ecs_cluster must be an ECS cluster name (1-255 letters, digits, '-' and '_'), not an ARN."
  }

  validation {
    condition = alltrue([
      for env in values(var.environments) : env.verify_timeout == null || can(regex("^[0-9]+[smhd]$", env.verify_timeout))
    ])
    error_message = "environments.<env>.verify_timeout must be a duration <n>s, <n>m, <n>h or <n>d, e.g. 30m."
  }

  # 1m to 1d, as the code accepts it. try(): a value the format check above refuses counts as in range here.
  validation {
    condition = alltrue([
      for env in values(var.environments) : env.verify_timeout == null || try(
        tonumber(regex("^([0-9]+)[smhd]$", env.verify_timeout)[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[regex("[smhd]$", env.verify_timeout)] >= 60 &&
        tonumber(regex("^([0-9]+)[smhd]$", env.verify_timeout)[0]) * { s = 1, m = 60, h = 3600, d = 86400 }[regex("[smhd]$", env.verify_timeout)] <= 86400,
        true
      )
    ])
    error_message = "environments.<env>.verify_timeout must be between 1m and 1d."
  }

  # Promotion, as tagrelay's configuration check has it (shared/src/config/promotion.rs), each
  # message naming the fields at fault. Written with conditionals rather than can()/try(), so
  # that the offline checks evaluate them (a conditional evaluates only the branch it takes).
  # The messages are heredocs: checkov's HCL parser (python-hcl2 0.4) fails on some multi-line
  # interpolations in a quoted string (an object, a `$` in a nested string); a heredoc is one
  # token to it, and the same template to Terraform.
  validation {
    condition = alltrue([
      for name, env in var.environments :
      env.promote_from == null ? true : env.promote_from != name && contains(keys(var.environments), env.promote_from)
    ])
    error_message = <<EOT
promote_from must name another environment defined in var.environments: ${join(", ", [
    for name, env in var.environments : "environments.${name}.promote_from = ${env.promote_from}"
    if env.promote_from == null ? false : env.promote_from == name || !contains(keys(var.environments), env.promote_from)
])}.
EOT
  }

  # Gates without a source would silently gate nothing.
  validation {
    condition = alltrue([
      for env in values(var.environments) : env.promote_from != null || (env.soak == null && env.gate_alarms == null && env.approval != true)
    ])
    error_message = <<EOT
soak, gate_alarms and approval = true gate promotion into an environment and need its promote_from: ${join(", ", flatten([
    for name, env in var.environments : [
      for field in ["soak", "gate_alarms", "approval"] : "environments.${name}.${field}"
      if field == "approval" ? env.approval == true : (field == "soak" ? env.soak : env.gate_alarms) != null
    ] if env.promote_from == null
]))}.
EOT
  }

  # The durations as tagrelay reads them (shared/src/duration.rs), in its ranges: soak 0s to 7d,
  # rollback_window 1m to 7d. The condition and the message list the same fields.
  validation {
    condition = length([
      for name, env in var.environments : name
      if env.soak == null ? false : length(regexall("^[0-9]+[smhd]$", env.soak)) == 0 ? true : (
        tonumber(regex("^[0-9]+", env.soak)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.soak), 0) > 604800
      )
    ]) == 0
    error_message = <<EOT
soak must be a duration <n>s, <n>m, <n>h or <n>d from 0s to 7d: ${join(", ", [
    for name, env in var.environments : "environments.${name}.soak = ${env.soak}"
    if env.soak == null ? false : length(regexall("^[0-9]+[smhd]$", env.soak)) == 0 ? true : (
      tonumber(regex("^[0-9]+", env.soak)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.soak), 0) > 604800
    )
])}.
EOT
  }

  validation {
    condition = length([
      for name, env in var.environments : name
      if env.rollback_window == null ? false : length(regexall("^[0-9]+[smhd]$", env.rollback_window)) == 0 ? true : (
        tonumber(regex("^[0-9]+", env.rollback_window)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.rollback_window), 0) < 60 ||
        tonumber(regex("^[0-9]+", env.rollback_window)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.rollback_window), 0) > 604800
      )
    ]) == 0
    error_message = <<EOT
rollback_window must be a duration <n>s, <n>m, <n>h or <n>d from 1m to 7d: ${join(", ", [
    for name, env in var.environments : "environments.${name}.rollback_window = ${env.rollback_window}"
    if env.rollback_window == null ? false : length(regexall("^[0-9]+[smhd]$", env.rollback_window)) == 0 ? true : (
      tonumber(regex("^[0-9]+", env.rollback_window)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.rollback_window), 0) < 60 ||
      tonumber(regex("^[0-9]+", env.rollback_window)) * lookup({ s = 1, m = 60, h = 3600, d = 86400 }, regex("[smhd]$", env.rollback_window), 0) > 604800
    )
])}.
EOT
  }

  # CloudWatch alarm names: 1-255 characters (PutMetricAlarm AlarmName); tagrelay also refuses
  # control characters and a name listed twice in one list.
  validation {
    condition = alltrue(flatten([
      for env in values(var.environments) : [
        for alarms in [env.gate_alarms, env.rollback_alarms] : alarms == null ? true : length(distinct(alarms)) == length(alarms) && alltrue([
          for alarm in alarms : length(alarm) >= 1 && length(alarm) <= 255 && length(regexall("\\p{Cc}", alarm)) == 0
        ])
      ]
    ]))
    error_message = <<EOT
Alarm names must be 1-255 characters without control characters, each at most once per list: ${join(", ", flatten([
    for name, env in var.environments : [
      for field in ["gate_alarms", "rollback_alarms"] : [
        for i, alarm in(field == "gate_alarms" ? env.gate_alarms : env.rollback_alarms) : "environments.${name}.${field}[${i}]"
        if length(alarm) < 1 || length(alarm) > 255 || length(regexall("\\p{Cc}", alarm)) > 0 || index(field == "gate_alarms" ? env.gate_alarms : env.rollback_alarms, alarm) < i
      ] if(field == "gate_alarms" ? env.gate_alarms : env.rollback_alarms) != null
    ]
]))}.
EOT
  }
}

variable "services" {
  description = <<-EOT
    Services, by name. One SSM parameter is created per (service, environment).
    - repository: ECR repository whose pushes belong to the service (default: the service name).
    - deploy_on_push: environments whose parameter a push writes; each must be defined in
      `environments`. `[]` for a service promoted only by hand.
    - tag_pattern: regular expression a tag must match (Rust regex syntax; anchor it with ^...$).
    - order: which tag is newer: numeric, semver, pushed-at or none.
    - ecs_service: the ECS service's name in the clusters of the environments that have an
      ecs_cluster (default: the service name).
    - verify_on_ecs: false for a service that is not an ECS service (a Lambda, a batch job, …):
      tagrelay never looks for it on ECS (rendered as `"ecs_service": null`; Terraform's
      optional() cannot tell a null from an absent attribute, hence a field of its own).
      Default true.
    - container: the container of the task definition whose image is checked (default: the
      service name).
  EOT
  type = map(object({
    repository     = optional(string)
    deploy_on_push = list(string)
    tag_pattern    = optional(string, "^[0-9]+$")
    order          = optional(string, "numeric")
    ecs_service    = optional(string)
    verify_on_ecs  = optional(bool, true)
    container      = optional(string)
  }))

  validation {
    condition     = length(var.services) > 0
    error_message = "Define at least one service."
  }

  validation {
    condition     = alltrue([for name in keys(var.services) : can(regex("^[a-zA-Z0-9_.-]+$", name))])
    error_message = "Service names may contain only a-zA-Z0-9_.- (they become a level of an SSM parameter name)."
  }

  validation {
    condition     = alltrue([for svc in values(var.services) : contains(["numeric", "semver", "pushed-at", "none"], svc.order)])
    error_message = "services.<svc>.order must be one of numeric, semver, pushed-at, none."
  }

  validation {
    condition = alltrue(flatten([
      for svc in values(var.services) : [for env in svc.deploy_on_push : contains(keys(var.environments), env)]
    ]))
    error_message = "Every environment in services.<svc>.deploy_on_push must be defined in var.environments."
  }

  validation {
    condition = alltrue([
      for name, svc in var.services :
      can(regex("^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*$", coalesce(svc.repository, name)))
    ])
    error_message = "services.<svc>.repository (default: the service name) must be a valid ECR repository name (lowercase, may contain '/')."
  }

  validation {
    condition     = length(distinct([for name, svc in var.services : coalesce(svc.repository, name)])) == length(var.services)
    error_message = "A repository belongs to at most one service."
  }

  validation {
    condition     = alltrue([for svc in values(var.services) : can(regexall(svc.tag_pattern, ""))])
    error_message = "services.<svc>.tag_pattern must be a valid regular expression."
  }

  # ECS service and container names: 1-255 letters, digits, hyphens and underscores.
  validation {
    condition = alltrue(flatten([
      for svc in values(var.services) : [
        for name in [svc.ecs_service, svc.container] : name == null || can(regex("^[A-Za-z0-9_-]{1,255}$", name))
      ]
    ]))
    error_message = "services.<svc>.ecs_service and container must be ECS names (1-255 letters, digits, '-' and '_')."
  }

  # One source of tags per environment: an environment promoted from another is written by
  # promote, and a push into it would overwrite the release it runs (tagrelay refuses it too).
  validation {
    condition = alltrue(flatten([
      for svc in values(var.services) : [
        for env in svc.deploy_on_push : contains(keys(var.environments), env) ? var.environments[env].promote_from == null : true
      ]
    ]))
    error_message = "An environment with promote_from takes its tags from there, not from pushes: ${join(", ", flatten([
      for name, svc in var.services : [
        for i, env in svc.deploy_on_push : "services.${name}.deploy_on_push[${i}] (${env} is promoted from ${var.environments[env].promote_from})"
        if contains(keys(var.environments), env) ? var.environments[env].promote_from != null : false
      ]
    ]))}."
  }

  # Two environments on one cluster would verify the same ECS services (a service's ECS name is
  # the same in every environment): the code refuses it at cold start, so refuse it here first.
  validation {
    condition = alltrue([for svc in values(var.services) : !svc.verify_on_ecs]) || (
      length([for env in values(var.environments) : env.ecs_cluster if env.ecs_cluster != null]) ==
      length(distinct([for env in values(var.environments) : env.ecs_cluster if env.ecs_cluster != null]))
    )
    error_message = "Two environments have the same ecs_cluster: both would verify the same ECS services. Give each environment its own cluster (or set verify_on_ecs = false on every service)."
  }

  # Both default to the service's name, which must then be an ECS name too (service names may
  # contain '.', ECS names may not), once some environment verifies on ECS.
  validation {
    condition = alltrue([
      for name, svc in var.services :
      !svc.verify_on_ecs || alltrue([for env in values(var.environments) : env.ecs_cluster == null]) ||
      can(regex("^[A-Za-z0-9_-]{1,255}$", name)) || (svc.ecs_service != null && svc.container != null)
    ])
    error_message = "A service verified on ECS whose name is not an ECS name (letters, digits, '-' and '_') needs an explicit ecs_service and container, or verify_on_ecs = false."
  }

  validation {
    condition     = alltrue([for svc in values(var.services) : svc.verify_on_ecs || (svc.ecs_service == null && svc.container == null)])
    error_message = "A service with verify_on_ecs = false is not an ECS service: it takes no ecs_service or container."
  }
}

variable "repository_prefixes" {
  description = "Optional ECR repository name prefixes (e.g. `team/`) for the ECR push rule when the configured repositories' names no longer fit an EventBridge pattern (about 50 names of 20 characters): the rule then takes pushes to any repository starting with one of them. Unused while the names fit. Empty (default): beyond that size the rule takes every successful push in the account and region, and record-image-tag ignores the repositories no service has (one short invocation and one INFO line per foreign push). Every configured repository must start with one of them."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for prefix in var.repository_prefixes : length(prefix) >= 1 && length(prefix) <= 256 && length(regexall("^[a-z0-9][a-z0-9._/-]*$", prefix)) > 0
    ]) && length(distinct(var.repository_prefixes)) == length(var.repository_prefixes)
    error_message = "repository_prefixes must be distinct, 1-256 characters each, the start of an ECR repository name (lowercase letters, digits, '.', '_', '-', '/'; starting with a letter or digit)."
  }

  # A configured repository no prefix covers would never hear of its pushes once the rule uses
  # the prefixes.
  validation {
    condition = length(var.repository_prefixes) == 0 || alltrue([
      for name, svc in var.services : anytrue([for prefix in var.repository_prefixes : startswith(coalesce(svc.repository, name), prefix)])
    ])
    error_message = <<EOT
Every configured repository must start with one of repository_prefixes: ${join(", ", [
    for name, svc in var.services : "services.${name}.repository = ${coalesce(svc.repository, name)}"
    if !anytrue([for prefix in var.repository_prefixes : startswith(coalesce(svc.repository, name), prefix)])
])}.
EOT
  }
}

variable "alarm_name_prefixes" {
  description = "Optional CloudWatch alarm name prefixes for promote's alarm rule when the gate and rollback alarms' names no longer fit an EventBridge pattern: the rule then takes state changes of alarms starting with one of them. Unused while the names fit. Empty (default): beyond that size the rule takes every alarm state change in the account and region, and promote ignores the alarms it does not gate on (one short invocation and one INFO line each). Every gate and rollback alarm must start with one of them."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for prefix in var.alarm_name_prefixes : length(prefix) >= 1 && length(prefix) <= 255 && length(regexall("\\p{Cc}", prefix)) == 0
    ]) && length(distinct(var.alarm_name_prefixes)) == length(var.alarm_name_prefixes)
    error_message = "alarm_name_prefixes must be distinct, 1-255 characters each, without control characters."
  }

  validation {
    condition = length(var.alarm_name_prefixes) == 0 || alltrue(flatten([
      for env in values(var.environments) : [
        for alarm in concat(env.gate_alarms == null ? [] : env.gate_alarms, env.rollback_alarms == null ? [] : env.rollback_alarms) :
        anytrue([for prefix in var.alarm_name_prefixes : startswith(alarm, prefix)])
      ]
    ]))
    error_message = <<EOT
Every gate and rollback alarm must start with one of alarm_name_prefixes: ${join(", ", distinct(flatten([
    for env in values(var.environments) : [
      for alarm in concat(env.gate_alarms == null ? [] : env.gate_alarms, env.rollback_alarms == null ? [] : env.rollback_alarms) : alarm
      if !anytrue([for prefix in var.alarm_name_prefixes : startswith(alarm, prefix)])
    ]
])))}.
EOT
  }
}

variable "manage_image_tag_parameters" {
  description = "Whether this stack creates the image-tag parameters, one per service and environment, with parameter_placeholder (then ignore_changes: tagrelay owns the value). true (default): as before. Recommended false beyond a few hundred parameters: 1,000 services x 10 environments are 10,000 aws_ssm_parameter resources, which every plan refreshes (a GetParameter and a DescribeParameters each, against SSM's default 40 requests a second, shared by the account), and 10,000 is the account's whole Standard-tier quota per region. false: none is created; record-image-tag (and promote, the CLI) create each parameter, tagged, on its first write, and the team's Terraform must plan a service without one (examples/ecs-service). Turning it off on an existing stack would destroy the parameters and their history: run `terraform state rm 'aws_ssm_parameter.image_tag'` first (README, Scale)."
  type        = bool
  default     = true
}

variable "parameter_placeholder" {
  description = "Value the SSM parameters are created with. Terraform never updates it afterwards (ignore_changes). Pick a value no tag_pattern matches: tagrelay treats a value it cannot order as 'anything advances'."
  type        = string
  default     = "initial"

  validation {
    condition     = length(var.parameter_placeholder) > 0 && length(var.parameter_placeholder) <= 4096
    error_message = "parameter_placeholder must be 1 to 4096 characters."
  }
}

################################################################################
# Functions
################################################################################

variable "config_storage" {
  description = "Where the functions find the configuration document: `environment` (the JSON itself in TAGRELAY_CONFIG; Lambda allows 4 KB for all of a function's variables, about 25 services), `ssm` (String parameters /tagrelay/_config and /tagrelay/_config-part/<i> that this stack writes; TAGRELAY_CONFIG = `ssm:/tagrelay/_config:<version>`), or `auto` (default): the environment while the variables stay within 3,584 bytes, SSM beyond."
  type        = string
  default     = "auto"

  validation {
    condition     = contains(["auto", "environment", "ssm"], var.config_storage)
    error_message = "config_storage must be auto, environment or ssm."
  }
}

variable "lambda_package_dir" {
  description = "Directory holding `<function>/bootstrap.zip` as built by `make build` (cargo lambda). Default: `<repo>/target/lambda/arm64`."
  type        = string
  default     = null
}

variable "lambda_binary_dir" {
  description = "Directory holding the release binaries `<function>` that the zips were made from; their hash is the functions' source_code_hash. Default: `<repo>/target/aarch64-unknown-linux-gnu/release`."
  type        = string
  default     = null
}

variable "lambda_source_code_hashes" {
  description = "Optional override of the source_code_hash per function (`promote`, `record-image-tag`, `trigger-deploy`), e.g. when the zips come from a CI artifact store and the binaries are not on disk. Any value that changes exactly when the code changes will do."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k in keys(var.lambda_source_code_hashes) : contains(["promote", "record-image-tag", "trigger-deploy"], k)])
    error_message = "lambda_source_code_hashes keys must be promote, record-image-tag or trigger-deploy."
  }
}

variable "lambda_memory_size" {
  description = "Memory (MB) of each function. The Rust binaries need little; CPU scales with memory."
  type        = number
  default     = 128

  validation {
    condition     = var.lambda_memory_size >= 128 && var.lambda_memory_size <= 10240
    error_message = "lambda_memory_size must be between 128 and 10240."
  }
}

variable "lambda_timeout" {
  description = "Timeout (seconds) of each function. The scheduled sweeps do the most per invocation: trigger-deploy reconciles every environment, record-image-tag pages through every configured repository's images; promote writes until a reserve before it (a quarter, at most 15 s) and leaves the rest to the next look (at 1,000 services, 900 lets one look write ~2,600 parameters at SSM's default 3 writes a second)."
  type        = number
  default     = 60

  validation {
    condition     = var.lambda_timeout >= 3 && var.lambda_timeout <= 900
    error_message = "lambda_timeout must be between 3 and 900."
  }
}

variable "log_level" {
  description = "Application log level of the functions (sets AWS_LAMBDA_LOG_LEVEL through logging_config)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"], var.log_level)
    error_message = "log_level must be one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL."
  }
}

# Both default to no reservation. Lambda keeps at least 100 concurrent executions unreserved, so
# in an account whose quota is still the new-account default of 10 any reservation fails `apply`
# ("decreases account's UnreservedConcurrentExecution below its minimum value"). Correctness does
# not depend on a reservation: concurrent writers of a parameter repair a lost race (after each
# PutParameter the writer reads the versions written since its read and re-writes the newest by
# the order policy), and concurrent reconciles share one StartBuild idempotency token.
# promote has no such variable and never a reservation: it writes image tags through the same
# record path (the same race repair) as record-image-tag and the CLI, so a promotion racing a
# push or another promote invocation ends with the newest tag by the order policy, whatever the
# concurrency; its rollback record is written before the tags and a retry completes it.
variable "record_image_tag_reserved_concurrency" {
  description = "Optional reserved concurrency of record-image-tag (null: none). Only a cap or a guarantee of capacity; concurrent writes repair a lost race by themselves. A reservation needs an account concurrency quota above 100 + the reservations."
  type        = number
  default     = null

  validation {
    condition     = var.record_image_tag_reserved_concurrency == null ? true : var.record_image_tag_reserved_concurrency >= 1
    error_message = "record_image_tag_reserved_concurrency must be null (no reservation) or at least 1."
  }
}

variable "trigger_deploy_reserved_concurrency" {
  description = "Optional reserved concurrency of trigger-deploy (null: none). Only a cap or a guarantee of capacity; concurrent reconciles are harmless. A reservation needs an account concurrency quota above 100 + the reservations."
  type        = number
  default     = null

  validation {
    condition     = var.trigger_deploy_reserved_concurrency == null ? true : var.trigger_deploy_reserved_concurrency >= 1
    error_message = "trigger_deploy_reserved_concurrency must be null (no reservation) or at least 1."
  }
}

variable "maximum_event_age_in_seconds" {
  description = "How long Lambda keeps retrying an asynchronous event (incl. throttles) before it goes to the dead-letter queue."
  type        = number
  default     = 3600

  validation {
    condition     = var.maximum_event_age_in_seconds >= 60 && var.maximum_event_age_in_seconds <= 21600
    error_message = "maximum_event_age_in_seconds must be between 60 and 21600."
  }
}

variable "dlq_message_retention_seconds" {
  description = "How long failed events stay in a dead-letter queue for `tagrelay redrive`."
  type        = number
  default     = 1209600

  validation {
    condition     = var.dlq_message_retention_seconds >= 60 && var.dlq_message_retention_seconds <= 1209600
    error_message = "dlq_message_retention_seconds must be between 60 and 1209600 (14 days)."
  }
}

variable "schedule_expression" {
  description = "Schedule of the safety-net sweeps: record-image-tag records pushes whose event was lost, trigger-deploy reconciles every environment. E.g. `rate(5 minutes)`."
  type        = string
  default     = "rate(5 minutes)"

  # EventBridge User Guide, "Schedule expressions for rules", rate expressions: "If the value is
  # equal to 1, then the unit must be singular. If the value is greater than 1, the unit must be
  # plural." rate(1 minutes) and rate(5 minute) are refused when the rule is created.
  validation {
    condition     = can(regex("^(rate\\((1 (minute|hour|day)|([2-9]|[1-9][0-9]+) (minutes|hours|days))\\)|cron\\(.+\\))$", var.schedule_expression))
    error_message = "schedule_expression must be rate(1 minute|hour|day), rate(N minutes|hours|days) with N > 1, or cron(...)."
  }
}

variable "log_retention_in_days" {
  description = "Retention of the functions' and builds' log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

################################################################################
# CodeBuild: the team's Terraform
################################################################################

variable "source_type" {
  description = "Where the team's Terraform lives: CODECOMMIT, GITHUB, GITHUB_ENTERPRISE, BITBUCKET, GITLAB, GITLAB_SELF_MANAGED or S3."
  type        = string

  validation {
    condition     = contains(["CODECOMMIT", "GITHUB", "GITHUB_ENTERPRISE", "BITBUCKET", "GITLAB", "GITLAB_SELF_MANAGED", "S3"], var.source_type)
    error_message = "source_type must be one of CODECOMMIT, GITHUB, GITHUB_ENTERPRISE, BITBUCKET, GITLAB, GITLAB_SELF_MANAGED, S3."
  }
}

variable "source_location" {
  description = "Location of the team's Terraform: a repository's HTTPS clone URL (for CODECOMMIT `https://git-codecommit.<region>.amazonaws.com/v1/repos/<name>`), or `<bucket>/<key>` of a zip for S3."
  type        = string

  validation {
    condition     = length(trimspace(var.source_location)) > 0
    error_message = "source_location must not be empty."
  }

  # The build role's source permissions are derived from these forms (codebuild.tf).
  validation {
    condition     = var.source_type != "CODECOMMIT" ? true : can(regex("^https://git-codecommit(-fips)?\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/v1/repos/[A-Za-z0-9_.-]{1,100}$", var.source_location))
    error_message = "With source_type CODECOMMIT, source_location must be the repository's HTTPS clone URL, https://git-codecommit.<region>.amazonaws.com/v1/repos/<name>."
  }

  validation {
    condition     = var.source_type != "S3" ? true : can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/.*[^/]$", var.source_location))
    error_message = "With source_type S3, source_location must be <bucket>/<key> of the zip holding the Terraform code (not a folder)."
  }
}

variable "source_connection_arn" {
  description = "Optional AWS CodeConnections connection the projects reach a GITHUB, GITHUB_ENTERPRISE, BITBUCKET, GITLAB or GITLAB_SELF_MANAGED source through (`arn:<partition>:codeconnections:<region>:<account>:connection/<id>`, or the older `codestar-connections` form). It must be AVAILABLE (handshake completed in the console). null: CodeBuild uses the account's source credential for the host."
  type        = string
  default     = null

  validation {
    condition     = var.source_connection_arn == null ? true : can(regex("^arn:aws[a-z-]*:(codeconnections|codestar-connections):[a-z0-9-]+:[0-9]{12}:connection/[A-Za-z0-9-]+$", var.source_connection_arn))
    error_message = "source_connection_arn must be a connection ARN, arn:<partition>:codeconnections:<region>:<account>:connection/<id> (or codestar-connections)."
  }

  validation {
    condition     = var.source_connection_arn == null ? true : contains(["GITHUB", "GITHUB_ENTERPRISE", "BITBUCKET", "GITLAB", "GITLAB_SELF_MANAGED"], var.source_type)
    error_message = "source_connection_arn is for GITHUB, GITHUB_ENTERPRISE, BITBUCKET, GITLAB and GITLAB_SELF_MANAGED sources only."
  }
}

variable "source_version" {
  description = "Default branch, tag or commit to build (an environment's source_version overrides it). null: the repository's default branch."
  type        = string
  default     = null
}

variable "state_bucket" {
  description = "S3 bucket of the team's Terraform state (S3 backend with use_lockfile = true). The project roles get read/write on their own state key and its .tflock only."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.state_bucket))
    error_message = "state_bucket must be a valid S3 bucket name."
  }
}

variable "state_region" {
  description = "Region of the state bucket. null: this stack's region."
  type        = string
  default     = null
}

variable "terraform_version" {
  description = "Terraform version the builds install (1.10+ for use_lockfile), e.g. `1.11.4`."
  type        = string

  validation {
    condition     = can(regex("^1\\.(1[0-9]|[2-9][0-9])\\.[0-9]+$", var.terraform_version))
    error_message = "terraform_version must be an exact release, 1.10.0 or newer (use_lockfile)."
  }
}

variable "terraform_sha256" {
  description = "SHA-256 (hex) of `terraform_<version>_<platform>.zip` from https://releases.hashicorp.com/terraform/<version>/terraform_<version>_SHA256SUMS (verify that file's signature once when you pin). The build refuses any other zip."
  type        = string

  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.terraform_sha256))
    error_message = "terraform_sha256 must be 64 lowercase hex characters."
  }
}

variable "terraform_lock_timeout" {
  description = "How long `terraform apply` waits for the state lock (a person running Terraform by hand)."
  type        = string
  default     = "10m"

  validation {
    condition     = can(regex("^[0-9]+(s|m|h)$", var.terraform_lock_timeout))
    error_message = "terraform_lock_timeout must look like 300s, 10m or 1h."
  }
}

variable "codebuild_compute" {
  description = "Build environment. The default is the smallest ARM build host; `terraform_platform` must match the image's architecture (linux_arm64 for ARM_CONTAINER, linux_amd64 for LINUX_CONTAINER)."
  type = object({
    type               = optional(string, "ARM_CONTAINER")
    compute_type       = optional(string, "BUILD_GENERAL1_SMALL")
    image              = optional(string, "aws/codebuild/amazonlinux-aarch64-standard:3.0")
    terraform_platform = optional(string, "linux_arm64")
  })
  default = {}

  validation {
    condition     = contains(["linux_arm64", "linux_amd64"], var.codebuild_compute.terraform_platform)
    error_message = "codebuild_compute.terraform_platform must be linux_arm64 or linux_amd64."
  }

  validation {
    condition     = (var.codebuild_compute.type == "ARM_CONTAINER") == (var.codebuild_compute.terraform_platform == "linux_arm64")
    error_message = "codebuild_compute.terraform_platform must match the container type: linux_arm64 with ARM_CONTAINER, linux_amd64 otherwise."
  }
}

variable "build_timeout_in_minutes" {
  description = "Build timeout of the Terraform runs."
  type        = number
  default     = 60

  validation {
    condition     = var.build_timeout_in_minutes >= 5 && var.build_timeout_in_minutes <= 2160
    error_message = "build_timeout_in_minutes must be between 5 and 2160."
  }
}

################################################################################
# Alarms
################################################################################

variable "alarm_email_addresses" {
  description = "Email addresses subscribed to the alarm topic (each must confirm the subscription). Subscribe anything else to the `alarm_topic_arn` output."
  type        = list(string)
  default     = []
}
