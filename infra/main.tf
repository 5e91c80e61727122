# tagrelay: continuous delivery for ECS services whose infrastructure lives in Terraform.
# This file derives names and the configuration document; the resources are split by concern:
#   kms.tf        the customer managed key for logs, queues and the alarm topic
#   lambda.tf     the three functions, their log groups, async invoke config and dead-letter queues
#   iam.tf        one least-privilege role per function
#   events.tf     EventBridge rules (patterns from event-patterns/, narrowed to what is ours)
#   ssm.tf        the image-tag parameters
#   codebuild.tf  one project per environment running the team's Terraform
#   monitoring.tf alarms, the alarm topic, metric filters, saved queries and the dashboard

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  # region: aws_region's `id` is the region's name in AWS provider 5 and 6 alike. `name` is
  # deprecated in 6 (a warning on every plan; gone in 7), and `region`, its successor, is not in 5.
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.id
  partition  = data.aws_partition.current.partition

  tags = merge(var.tags, { "managed-by" = "tagrelay" })

  functions = toset(["promote", "record-image-tag", "trigger-deploy"])

  # Environments with their defaults filled in.
  environments = {
    for name, env in var.environments : name => merge(env, {
      codebuild_project = coalesce(env.codebuild_project, "${var.name_prefix}-${name}")
      state_key         = coalesce(env.state_key, "${name}/terraform.tfstate")
      source_version    = try(coalesce(env.source_version, var.source_version), null)
    })
  }

  services = {
    for name, svc in var.services : name => merge(svc, {
      repository = coalesce(svc.repository, name)
    })
  }

  # One parameter per (service, environment), keyed "<service>/<environment>".
  parameters = {
    for pair in setproduct(keys(local.services), keys(local.environments)) :
    "${pair[0]}/${pair[1]}" => {
      service     = pair[0]
      environment = pair[1]
      name        = replace(replace(var.parameter_template, "{service}", pair[0]), "{environment}", pair[1])
    }
  }

  parameter_names = sort([for p in values(local.parameters) : p.name])
  repositories    = sort(distinct([for svc in values(local.services) : svc.repository]))
  projects        = sort([for env in values(local.environments) : env.codebuild_project])

  parameter_arns  = [for name in local.parameter_names : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${name}"]
  repository_arns = [for repo in local.repositories : "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${repo}"]
  project_arns    = [for project in local.projects : "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/${project}"]

  function_names = { for fn in local.functions : fn => "${var.name_prefix}-${fn}" }
  dlq_names      = { for fn in local.functions : fn => "${local.function_names[fn]}-dlq" }

  # Log groups are created here (not by Lambda/CodeBuild on first use) so that they carry the
  # retention and the KMS key; the key policy lets CloudWatch Logs use the key for these only.
  function_log_groups = { for fn in local.functions : fn => "/aws/lambda/${local.function_names[fn]}" }
  build_log_groups    = { for name, env in local.environments : name => "/aws/codebuild/${env.codebuild_project}" }
  log_group_names     = concat(values(local.function_log_groups), values(local.build_log_groups))

  # Verified deploys. The ECS clusters of the environments that have one; the services verified
  # there (verify_on_ecs), by their ECS name (default: the service's); each environment's release
  # record, which trigger-deploy writes (PutParameter creates it; Terraform does not manage it).
  ecs_clusters = sort(distinct([for env in values(local.environments) : env.ecs_cluster if env.ecs_cluster != null]))
  # What the ECS deployment rule matches: the long service ARN format names the cluster. One
  # prefix per cluster while the rule fits local.event_pattern_budget (events.tf; ten clusters of
  # 255 characters would not); beyond, the service ARN prefix of the account and region: every
  # ECS deployment here reaches trigger-deploy, which ignores services of clusters it does not
  # know (one INFO line each).
  ecs_cluster_service_arn_prefixes = [
    for cluster in local.ecs_clusters : { prefix = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${cluster}/" }
  ]
  ecs_service_arn_prefixes = (
    length(jsonencode(merge(local.base_patterns.ecs, { resources = local.ecs_cluster_service_arn_prefixes }))) <= local.event_pattern_budget
    ? local.ecs_cluster_service_arn_prefixes
    : [{ prefix = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/" }]
  )
  ecs_service_arns = sort(distinct(flatten([
    for env in values(local.environments) : [
      for name, svc in local.services :
      "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${env.ecs_cluster}/${coalesce(svc.ecs_service, name)}"
      if svc.verify_on_ecs
    ] if env.ecs_cluster != null
  ])))
  release_record_arns = [
    for name in sort(keys(local.environments)) : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/verified"
  ]
  # What trigger-deploy writes besides (and reads back): a release record too large for one
  # parameter in parts, /tagrelay/<env>/verified-part/<i>, and the run manifest of each build it
  # starts, /tagrelay/<env>/manifest (the head, found again by its history) and its parts.
  release_record_write_arns = flatten([
    for name in sort(keys(local.environments)) : [
      for record in ["verified", "verified-part/*", "manifest-part/*"] :
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/${record}"
    ]
  ])
  run_manifest_arns = [
    for name in sort(keys(local.environments)) : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/manifest"
  ]

  # Promotion and rollback (promote). The environments whose releases move on into another one
  # (some environment's promote_from) and those with rollback_alarms: promote reacts to a change
  # of their release record. The image-tag parameters promote may write are those of the
  # environments it feeds (promote_from) or rolls back (rollback_alarms).
  promotion_sources     = sort(distinct([for env in values(local.environments) : env.promote_from if env.promote_from != null]))
  rollback_environments = sort([for name, env in local.environments : name if(env.rollback_alarms == null ? 0 : length(env.rollback_alarms)) > 0])
  promoted_environments = sort([for name, env in local.environments : name if env.promote_from != null || contains(local.rollback_environments, name)])
  approval_environments = sort([for name, env in local.environments : name if env.approval == true])

  # What the promote-parameter-change rule takes: the release records, while some environment is
  # promoted from another or has rollback_alarms, and the approval records, while one waits for
  # approvals. One wildcard each, whatever the number of environments: `*` matches any run of
  # characters, but a record's own name ends in /verified (or /approval), so neither its parts
  # (/tagrelay/<env>/verified-part/<i>) nor the run manifests (/tagrelay/<env>/manifest…) nor the
  # configuration (/tagrelay/_config…) match. The records of environments nothing depends on reach
  # promote too; it ignores them (one INFO line). Two wildcard values keep the rule's wildcard
  # complexity at 4 (events.tf says why that matters).
  promote_parameter_names = concat(
    length(concat(local.promotion_sources, local.rollback_environments)) > 0 ? [{ wildcard = "/tagrelay/*/verified" }] : [],
    length(local.approval_environments) > 0 ? [{ wildcard = "/tagrelay/*/approval" }] : [],
  )
  # Every gate and rollback alarm, once (the alarm-state-change rule).
  promotion_alarm_names = sort(distinct(flatten([
    for env in values(local.environments) : concat(
      env.gate_alarms == null ? [] : env.gate_alarms,
      env.rollback_alarms == null ? [] : env.rollback_alarms,
    )
  ])))

  # promote's grants: the image-tag parameters of the environments it writes, and the records.
  promoted_parameter_arns = [
    for key, p in local.parameters :
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${p.name}" if contains(local.promoted_environments, p.environment)
  ]
  promotion_record_arns = flatten([
    for name in sort(keys(local.environments)) : [
      for record in ["verified", "approval", "rollback"] :
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/${record}"
    ]
  ])
  # The records' parts (a record too large for one parameter): promote reads the parts of every
  # environment's records and writes those of its rollback records.
  promotion_record_part_arns = flatten([
    for name in sort(keys(local.environments)) : [
      for record in ["verified", "approval", "rollback"] :
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/${record}-part/*"
    ]
  ])
  rollback_record_arns = flatten([
    for name in local.rollback_environments : [
      for record in ["rollback", "rollback-part/*"] :
      "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter/tagrelay/${name}/${record}"
    ]
  ])

  # The grants on names that are the team's or that grow with the services: the exact ARNs while
  # their list stays within this budget (characters, as IAM counts a policy: without whitespace);
  # beyond, one ARN with a wildcard per environment (IAM's `*` spans `/`). A role's inline policies
  # may hold 10,240 characters together (IAM quotas); 1,000 services x 10 environments list
  # 10,000 image-tag parameters (about 700,000 characters). The wildcard grants what the rules
  # hear: every parameter of an environment that the template shape names (a service added later
  # included), and never a record, manifest or the configuration (a precondition on the roles'
  # policies).
  iam_arn_list_budget = 1500
  image_tag_arn_wildcards = {
    for name in keys(local.environments) :
    name => "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${replace(replace(var.parameter_template, "{service}", "*"), "{environment}", name)}"
  }
  image_tag_grant_arns = (
    length(jsonencode(local.parameter_arns)) <= local.iam_arn_list_budget ? local.parameter_arns : [for name in sort(keys(local.environments)) : local.image_tag_arn_wildcards[name]]
  )
  promoted_image_tag_grant_arns = (
    length(jsonencode(local.promoted_parameter_arns)) <= local.iam_arn_list_budget ? local.promoted_parameter_arns : [for name in local.promoted_environments : local.image_tag_arn_wildcards[name]]
  )
  # The build role of each environment reads that environment's image tags.
  environment_parameter_arns = {
    for env in keys(local.environments) : env => [
      for key, p in local.parameters : "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${p.name}" if p.environment == env
    ]
  }
  build_image_tag_grant_arns = {
    for env, arns in local.environment_parameter_arns : env => length(jsonencode(arns)) <= local.iam_arn_list_budget ? arns : [local.image_tag_arn_wildcards[env]]
  }
  # Repositories: their names, or the repository_prefixes, or every repository (ecr:DescribeImages,
  # read only).
  repository_grant_arns = (
    length(jsonencode(local.repository_arns)) <= local.iam_arn_list_budget ? local.repository_arns :
    length(var.repository_prefixes) > 0 ? [for prefix in var.repository_prefixes : "arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/${prefix}*"] :
    ["arn:${local.partition}:ecr:${local.region}:${local.account_id}:repository/*"]
  )
  # ECS services: their ARNs, or every service of the environments' clusters.
  ecs_service_grant_arns = (
    length(jsonencode(local.ecs_service_arns)) <= local.iam_arn_list_budget ? local.ecs_service_arns :
    [for cluster in local.ecs_clusters : "arn:${local.partition}:ecs:${local.region}:${local.account_id}:service/${cluster}/*"]
  )
  # The names tagrelay keeps for itself, which no image-tag grant may cover (checked on the roles'
  # policies): each environment's records, their parts, the run manifests, the configuration.
  reserved_parameter_samples = concat(
    flatten([
      for name in keys(local.environments) : [
        for record in ["verified", "approval", "rollback", "manifest"] : ["/tagrelay/${name}/${record}", "/tagrelay/${name}/${record}-part/0"]
      ]
    ]),
    ["/tagrelay/_config", "/tagrelay/_config-part/0"],
  )
  # A wildcard ARN as a regular expression: `.` literal, `*` any run (template names hold no other
  # special character: variables.tf).
  image_tag_wildcard_regexes = [
    for arn in distinct(concat(local.image_tag_grant_arns, flatten(values(local.build_image_tag_grant_arns)))) :
    "^${replace(replace(arn, ".", "\\."), "*", ".*")}$" if strcontains(arn, "*")
  ]
  image_tag_grants_cover_reserved = sort(distinct(flatten([
    for regex in local.image_tag_wildcard_regexes : [
      for sample in local.reserved_parameter_samples : sample
      if length(regexall(regex, "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${sample}")) > 0
    ]
  ])))

  # A loop in the promotion chain, found without recursion: what each environment is promoted
  # from, followed 1, 2, 4, ... 64 steps (each map composed with itself). Without a loop every
  # chain ends (null) within 63 steps as long as there are at most 64 environments; with one,
  # the environments on or behind it still have somewhere to go after 64 (a precondition of the
  # functions refuses it; tagrelay refuses it too, at cold start, for any number).
  promotion_up_1  = { for name, env in var.environments : name => env.promote_from }
  promotion_up_2  = { for name, up in local.promotion_up_1 : name => up == null ? null : lookup(local.promotion_up_1, up, null) }
  promotion_up_4  = { for name, up in local.promotion_up_2 : name => up == null ? null : lookup(local.promotion_up_2, up, null) }
  promotion_up_8  = { for name, up in local.promotion_up_4 : name => up == null ? null : lookup(local.promotion_up_4, up, null) }
  promotion_up_16 = { for name, up in local.promotion_up_8 : name => up == null ? null : lookup(local.promotion_up_8, up, null) }
  promotion_up_32 = { for name, up in local.promotion_up_16 : name => up == null ? null : lookup(local.promotion_up_16, up, null) }
  promotion_up_64 = { for name, up in local.promotion_up_32 : name => up == null ? null : lookup(local.promotion_up_32, up, null) }
  promotion_loops = sort([for name, up in local.promotion_up_64 : name if up != null])

  # The document the functions read from TAGRELAY_CONFIG. The code refuses unknown fields, so
  # only the fields it knows are rendered (not the CodeBuild settings of var.environments), and an
  # optional field only when it is set: absent, the code's default applies (no ECS verification,
  # verify_timeout 30m, no promotion, soak 0s, no gate or rollback alarms, no approval,
  # rollback_window 30m, ecs_service and container = the service's name).
  tagrelay_config = {
    parameter_template    = var.parameter_template
    parameter_placeholder = var.parameter_placeholder
    environments = {
      for name, env in local.environments : name => merge(
        { codebuild_project = env.codebuild_project },
        { for field, value in {
          ecs_cluster     = env.ecs_cluster
          verify_timeout  = env.verify_timeout
          promote_from    = env.promote_from
          soak            = env.soak
          gate_alarms     = env.gate_alarms
          approval        = env.approval
          rollback_alarms = env.rollback_alarms
          rollback_window = env.rollback_window
        } : field => value if value != null },
      )
    }
    services = {
      for name, svc in local.services : name => merge(
        {
          repository     = svc.repository
          deploy_on_push = svc.deploy_on_push
          tag_pattern    = svc.tag_pattern
          order          = svc.order
        },
        { for field, value in { ecs_service = svc.ecs_service, container = svc.container } : field => value if value != null },
        # Not an ECS service: `"ecs_service": null` (optional() cannot express null, hence verify_on_ecs).
        { for field in(svc.verify_on_ecs ? [] : ["ecs_service"]) : field => null },
      )
    }
  }
}
