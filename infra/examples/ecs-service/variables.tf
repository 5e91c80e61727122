variable "environment" {
  description = "Environment this configuration deploys (one of tagrelay's environments)."
  type        = string
}

variable "service" {
  description = "Service name as configured in tagrelay (names the parameter)."
  type        = string
  default     = "my-api"
}

variable "repository" {
  description = "ECR repository of the service's images (tagrelay's services.<svc>.repository)."
  type        = string
  default     = "my-api"
}

variable "parameter_template" {
  description = "tagrelay's parameter_template."
  type        = string
  default     = "/{service}/{environment}/docker-image-tag"
}

variable "parameter_placeholder" {
  description = "tagrelay's parameter_placeholder: the value before the first push. While the parameter holds it, or does not exist yet in a tagrelay run, the service runs no tasks."
  type        = string
  default     = "initial"
}

variable "tagrelay_image_tags" {
  description = "Set by a tagrelay run (TF_VAR_tagrelay_image_tags): every existing image-tag parameter of the environment -> the value the run was started for. Set (a tagrelay run): its value for this service's parameter is deployed; a parameter it does not name does not exist yet, and the service runs no tasks, as with the placeholder. Empty (a manual run): the parameter's newest value, read from SSM."
  type        = map(string)
  default     = {}
}

variable "cluster_arn" {
  description = "ECS cluster the service runs in."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the tasks."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups of the tasks."
  type        = list(string)
}

variable "execution_role_arn" {
  description = "Task execution role (pulls the image from ECR, writes logs)."
  type        = string
}

variable "task_role_arn" {
  description = "Task role (what the application may call). Not the execution role."
  type        = string
}

variable "log_group_name" {
  description = "Existing CloudWatch log group of the containers."
  type        = string
}

variable "container_port" {
  description = "Port the container listens on."
  type        = number
  default     = 8080
}

variable "cpu" {
  description = "Task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Task memory (MiB)."
  type        = number
  default     = 512
}

variable "desired_count" {
  description = "Number of tasks once an image tag has been recorded."
  type        = number
  default     = 2
}

variable "wait_for_steady_state" {
  description = "Whether `apply` waits for the deployment to reach a steady state. Off (default): the run ends once ECS accepted the new task definition; tagrelay's verified deploys (an ecs_cluster for the environment) wait for the rollout and hold the environment when it fails. On (only for an environment without verification): the build fails when the deployment does not come up, including when the circuit breaker rolled it back (the service's postcondition), at the cost of a run as long as the rollout."
  type        = bool
  default     = false
}
