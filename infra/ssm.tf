################################################################################
# The image-tag parameters: one per (service, environment), unless manage_image_tag_parameters is
# false (then record-image-tag, promote and the CLI create each one, tagged, on its first write).
#
# Created once with a placeholder; from then on record-image-tag (and `tagrelay promote`) own the
# value, so Terraform ignores it and never fights the function. tagrelay cannot order the
# placeholder under any policy, which it reads as "any valid tag advances".
#
# Type String (not SecureString): an image tag is not a secret, and the team's Terraform reads it
# through `insecure_value`, so it is not marked sensitive in plans.
################################################################################

resource "aws_ssm_parameter" "image_tag" {
  # checkov:skip=CKV2_AWS_34:An image tag is not a secret; a String parameter keeps it readable in plans through insecure_value and needs no KMS grant for the functions and builds.
  for_each = var.manage_image_tag_parameters ? local.parameters : {}

  name        = each.value.name
  description = "Image tag of ${each.value.service} in ${each.value.environment}, written by tagrelay"
  type        = "String"
  tier        = "Standard"
  value       = var.parameter_placeholder

  tags = merge(local.tags, {
    service     = each.value.service
    environment = each.value.environment
  })

  lifecycle {
    # No image-tag parameter is under /tagrelay/: a precondition on the functions (lambda.tf).
    ignore_changes = [value, description]
  }
}
