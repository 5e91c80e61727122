################################################################################
# Where the functions find their configuration document (local.tagrelay_config, main.tf).
#
# TAGRELAY_CONFIG holds either the JSON document itself or a reference to it in Parameter Store,
# `ssm:<head>:<version>`. Lambda allows 4 KB for all of a function's environment variables
# together (Lambda quotas), measured as the variables written as one JSON object
# (`{"TAGRELAY_CONFIG":"…"}`, the document's quotes escaped): about 25 services' worth. A larger
# document is stored as "tagrelay parts/1" in String parameters this stack writes:
#
#   /tagrelay/_config          {"tagrelay_parts":{"sha256":"<SHA-256 of the document>",
#                                "parts":["/tagrelay/_config-part/0:<version>", …]}}
#   /tagrelay/_config-part/<i> the document's characters 4000 i … 4000 i + 3999
#
# The head names each part at its version and the functions name the head at its version, so a
# change of configuration is a new version of the parts it touches, then of the head, then a new
# TAGRELAY_CONFIG: visible in the plan, read by every new execution environment, and starting no
# Terraform run (no rule listens to /tagrelay/_config…). Intelligent-Tiering: a part of 4,000
# ASCII characters fits the Standard tier's 4 KB (free); one with many multi-byte characters goes
# to Advanced ($0.05 a month), whose limit is 8 KB, checked below.
################################################################################

locals {
  config_json = jsonencode(local.tagrelay_config)

  # What Lambda would measure with the document inline, in bytes, bounded from above: the variables
  # as jsonencode writes them (Go's escapes, at least as long as any other JSON writer's), each
  # character outside ASCII counted as 12 bytes (written as a \uXXXX\uXXXX surrogate pair, the most
  # any writer makes of one character; UTF-8 takes at most 4).
  config_inline_variables = jsonencode({ TAGRELAY_CONFIG = local.config_json })
  config_inline_bytes     = length(local.config_inline_variables) + 11 * length(regexall("[^\\x00-\\x7f]", local.config_inline_variables))
  # Inline while at most 3,584 bytes: 512 (one eighth) below Lambda's 4,096, for a variable added
  # later and for a measure that differs from this one.
  config_inline_limit = 3584
  config_in_ssm       = var.config_storage == "ssm" || (var.config_storage == "auto" && local.config_inline_bytes > local.config_inline_limit)

  config_parameter  = "/tagrelay/_config"
  config_part_chars = 4000
  config_part_count = local.config_in_ssm ? ceil(length(local.config_json) / local.config_part_chars) : 0
  config_parts = [
    for i in range(local.config_part_count) : substr(local.config_json, i * local.config_part_chars, local.config_part_chars)
  ]
  config_parameter_arns = [
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.config_parameter}",
    "arn:${local.partition}:ssm:${local.region}:${local.account_id}:parameter${local.config_parameter}-part/*",
  ]

  # The functions' TAGRELAY_CONFIG: the reference to the head at its version, or the document.
  config_reference         = join("", [for head in aws_ssm_parameter.config : "ssm:${head.name}:${head.version}"])
  function_tagrelay_config = local.config_in_ssm ? local.config_reference : local.config_json
}

resource "aws_ssm_parameter" "config_part" {
  # checkov:skip=CKV2_AWS_34:The configuration holds names (services, repositories, environments, alarms) and no secret; a String parameter needs no KMS grant for the functions.
  count = local.config_part_count

  name           = "${local.config_parameter}-part/${count.index}"
  description    = "tagrelay configuration document, one part (the head ${local.config_parameter} lists them at their versions)"
  type           = "String"
  tier           = "Intelligent-Tiering"
  insecure_value = local.config_parts[count.index]
  tags           = local.tags

  lifecycle {
    # An Advanced parameter holds 8 KB (8,192 bytes); 4,000 characters of UTF-8 may take up to
    # 16,000. base64encode's length is 4 x ceil(bytes / 3): at most 10,920 exactly when the part
    # takes at most 8,190 bytes.
    precondition {
      condition     = length(base64encode(local.config_parts[count.index])) <= 10920
      error_message = "Part ${count.index} of the tagrelay configuration takes more than 8,190 bytes (many characters outside ASCII in names, alarm names or tag patterns): SSM's Advanced tier holds 8,192. Shorten those names."
    }
  }
}

resource "aws_ssm_parameter" "config" {
  # checkov:skip=CKV2_AWS_34:The head holds a digest and the parts' names and versions, no secret.
  count = local.config_in_ssm ? 1 : 0

  name        = local.config_parameter
  description = "tagrelay configuration (tagrelay parts/1): the document's SHA-256 and its parts at their versions"
  type        = "String"
  tier        = "Intelligent-Tiering"
  insecure_value = jsonencode({
    tagrelay_parts = {
      sha256 = sha256(local.config_json)
      parts  = [for part in aws_ssm_parameter.config_part : "${part.name}:${part.version}"]
    }
  })
  tags = local.tags

  lifecycle {
    precondition {
      condition     = local.config_part_count <= 100
      error_message = "The tagrelay configuration takes ${local.config_part_count} parts of ${local.config_part_chars} characters; tagrelay reads at most 100."
    }
  }
}
