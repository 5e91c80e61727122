"""ECS deployments that move as ECS's do, for launcher.py (moto 5.2.5's never move).

moto creates one deployment per service, whose rolloutState never changes; UpdateService stores
the task definition as given and creates no deployment; deploymentConfiguration is dropped on
CreateService; there are no events. Here every CreateService, and every UpdateService that
changes the task definition or forces a new deployment, starts a new PRIMARY deployment
(IN_PROGRESS) and demotes the previous one to ACTIVE; a timer then completes it, or fails it
when its image is marked as crashing and the circuit breaker is on (then rolls back when asked
to). "ECS Deployment State Change" events go out through the launcher's emit(). See README.md.

Facts and wording: the ECS Developer Guide's deployment event samples
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html),
its circuit breaker page (deployment-circuit-breaker.html), the ECS API Reference's Deployment
and DescribeServices, and moto 5.2.5's moto/ecs/models.py (what it lacks). Deployment dicts are never changed in
place: a change replaces the service's list, and every ECS request runs under the launcher's LOCK
(serialisation included), so no answer shows a half-made change.
"""

import math
import random
import threading

from moto.core.responses import ActionResult
from moto.core.utils import camelcase_to_underscores, utcnow

DETAIL_TYPE = "ECS Deployment State Change"
BREAKER_FAILED = "ECS deployment circuit breaker: tasks failed to start."
ROLLING_BACK = "ECS deployment circuit breaker: rolling back to deploymentId "
# DescribeServices takes at most 10 services; the message is the one ECS answers (reported in
# e.g. remind101/empire#468, aws/aws-toolkit-vscode#2362).
DESCRIBE_LIMIT = 10
TOO_MANY = "service names can have at most 10 items."
# What ECS reports for a rolling-update service created without a deploymentConfiguration.
DEFAULT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}

# Set by the tests (POST /_tagrelay/ecs/behaviour, /_tagrelay/ecs/crashing).
TIMING = {"rollout_seconds": 1.0, "failure_seconds": 1.0}
CRASHING = set()  # image references (repo:tag) or bare tags whose tasks never start
PENDING = {"timers": 0}  # deployment timers not yet run: something will still move

_hooks = {}  # "lock", "emit", "log": the launcher's, given by connect() before it serves


def connect(lock, emit, log):
    _hooks.update(lock=lock, emit=emit, log=log)


def patch():
    """Patches moto's ECS responses (after connect())."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.responses import EC2ContainerServiceResponse as Response

    lock = _hooks["lock"]
    call_action, create_service, describe_services = (
        Response.call_action, Response.create_service, Response.describe_services)

    def locked_call_action(self):
        # Timers change deployments: a request, and the serialising of its answer, sees either
        # all of a change or none of it.
        with lock:
            return call_action(self)

    def create_service_deploying(self):
        result = create_service(self)
        service = result.result["service"]
        service.deployment_configuration = configuration(self._get_param("deploymentConfiguration"))
        if service.deployment_controller.get("type", "ECS") == "ECS":
            service.deployments = []
            start_deployment(service, service.task_definition)
        return result

    def update_service_deploying(self):
        # moto's own update_service rewrites the PRIMARY's id in place on forceNewDeployment and
        # stores the task definition as written ("app:2"): both are done here instead.
        backend = self.ecs_backend
        properties = {camelcase_to_underscores(k): v for k, v in self._get_params().items()}
        force = bool(properties.pop("force_new_deployment", False))
        service = backend._get_service(properties.get("cluster", "default"), properties["service"].split("/")[-1])
        before, config = service.task_definition, service.deployment_configuration
        service = backend.update_service(properties)
        if self._get_param("deploymentConfiguration") is not None:
            service.deployment_configuration = configuration({**(config or {}),
                                                              **self._get_param("deploymentConfiguration")})
        service.task_definition = backend.describe_task_definition(service.task_definition).arn
        if (service.task_definition != before or force) and service.deployment_controller.get("type") == "ECS":
            start_deployment(service, service.task_definition)
        return ActionResult({"service": service})

    def describe_services_limited(self):
        if len(self._get_param("services", [])) > DESCRIBE_LIMIT:
            raise InvalidParameterException(TOO_MANY)
        return describe_services(self)

    Response.call_action = locked_call_action
    Response.create_service = create_service_deploying
    Response.update_service = update_service_deploying
    Response.describe_services = describe_services_limited


def configuration(given):
    """deploymentConfiguration as ECS answers it: what was given over ECS's defaults."""
    merged = {**DEFAULT_CONFIGURATION, **(given or {})}
    merged["deploymentCircuitBreaker"] = {**DEFAULT_CONFIGURATION["deploymentCircuitBreaker"],
                                          **merged["deploymentCircuitBreaker"]}
    return merged


def new_deployment_id():
    # ECS's ids are long decimal numbers (e.g. ecs-svc/9223370564341623665).
    return f"ecs-svc/{random.randint(10**18, 2**63 - 1)}"


def deploy(service, task_definition_arn):
    """Points the service at a task definition and starts its deployment (Terraform's
    UpdateService, for terraform_apply.py). Caller holds the lock."""
    service.task_definition = task_definition_arn
    start_deployment(service, task_definition_arn)


def start_deployment(service, task_definition, rolling_back_to=None):
    """A new PRIMARY, IN_PROGRESS; the previous ones become ACTIVE. Caller holds the lock."""
    at = utcnow()
    ident = new_deployment_id()
    reason = (f"{ROLLING_BACK}{rolling_back_to}." if rolling_back_to
              else f"ECS deployment {ident} in progress.")
    desired = service.desired_count
    deployment = {
        "id": ident,
        "status": "PRIMARY",
        "taskDefinition": task_definition,
        "desiredCount": desired,
        "pendingCount": desired,
        "runningCount": 0,
        "failedTasks": 0,
        "createdAt": at,
        "updatedAt": at,
        "launchType": service.launch_type,
        "platformFamily": "EC2" if service.launch_type == "EC2" else "FARGATE",
        "rolloutState": "IN_PROGRESS",
        "rolloutStateReason": reason,
    }
    service.deployments = [deployment] + [dict(d, status="ACTIVE") for d in service.deployments]
    service.task_definition = task_definition
    service.pending_count = desired
    event(service, deployment, "SERVICE_DEPLOYMENT_IN_PROGRESS")
    if crashes(service, task_definition):
        after(TIMING["failure_seconds"], fail, service, ident)
    else:
        after(TIMING["rollout_seconds"], complete, service, ident)


def after(seconds, action, service, ident):
    """Runs `action` on the deployment after `seconds` if it is still the IN_PROGRESS PRIMARY.
    Caller holds the lock."""
    PENDING["timers"] += 1

    def run():
        with _hooks["lock"]:
            PENDING["timers"] -= 1
            primary = service.deployments[0] if service.deployments else None
            # Superseded by a newer deployment, or the service was deleted: nothing to do.
            if primary and primary["id"] == ident and primary["rolloutState"] == "IN_PROGRESS" \
                    and service.status == "ACTIVE":
                action(service, primary)

    timer = threading.Timer(seconds, run)
    timer.daemon = True
    timer.start()


def complete(service, deployment):
    """Steady state: COMPLETED, every other deployment drained."""
    desired = service.desired_count
    done = dict(deployment, rolloutState="COMPLETED", rolloutStateReason=f"ECS deployment {deployment['id']} completed.",
                runningCount=desired, pendingCount=0, updatedAt=utcnow())
    service.deployments = [done]
    service.running_count, service.pending_count = desired, 0
    event(service, done, "SERVICE_DEPLOYMENT_COMPLETED")


def fail(service, deployment):
    """Its tasks never start. With the circuit breaker: FAILED, then (rollback on, a COMPLETED
    deployment to go back to, and not itself a rollback) a rollback deployment. Without it ECS
    keeps replacing the failed tasks and the deployment stays IN_PROGRESS."""
    breaker = (service.deployment_configuration or {}).get("deploymentCircuitBreaker") or {}
    threshold = min(200, max(3, math.ceil(deployment["desiredCount"] / 2)))
    rest = service.deployments[1:]
    if not breaker.get("enable"):
        service.deployments = [dict(deployment, failedTasks=threshold, updatedAt=utcnow())] + rest
        return
    failed = dict(deployment, rolloutState="FAILED", rolloutStateReason=BREAKER_FAILED, failedTasks=threshold,
                  pendingCount=0, updatedAt=utcnow())
    service.deployments = [failed] + rest
    event(service, failed, "SERVICE_DEPLOYMENT_FAILED")
    target = next((d for d in rest if d["rolloutState"] == "COMPLETED"), None)
    if breaker.get("rollback") and target and not deployment["rolloutStateReason"].startswith(ROLLING_BACK):
        start_deployment(service, target["taskDefinition"], rolling_back_to=target["id"])


def crashes(service, task_definition):
    """Whether a container image of the task definition is marked as crashing."""
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[service._account_id][service.region_name]
    try:
        containers = backend.describe_task_definition(task_definition).container_definitions
    except Exception:  # noqa: BLE001 - a task definition gone since: nothing runs it
        return False
    for container in containers:
        image = container.get("image") or ""
        tag = image.rpartition(":")[2]
        if image in CRASHING or ("/" not in tag and "@" not in image and tag in CRASHING):
            return True
    return False


def event(service, deployment, name):
    """"ECS Deployment State Change" as in the ECS Developer Guide's samples."""
    detail = {
        "eventType": "ERROR" if name == "SERVICE_DEPLOYMENT_FAILED" else "INFO",
        "eventName": name,
        "deploymentId": deployment["id"],
        "updatedAt": deployment["updatedAt"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reason": deployment["rolloutStateReason"],
    }
    _hooks["emit"]("aws.ecs", DETAIL_TYPE, service.region_name, service._account_id, [service.arn], detail)


# ----------------------------------------------------------------------------------------------
# Control endpoints.


def set_behaviour(body):
    """POST /_tagrelay/ecs/behaviour: how long deployments take to complete or to fail."""
    timing = {}
    for key in ("rollout_seconds", "failure_seconds"):
        value = body.get(key, 1.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key}: a number >= 0")
        timing[key] = float(value)
    with _hooks["lock"]:
        TIMING.update(timing)
    return timing


def set_crashing(body):
    """POST /_tagrelay/ecs/crashing: the images (repo:tag references, or bare tags) whose tasks
    never start, replacing the previous list. Deployments started afterwards see it."""
    images = body.get("images")
    if not isinstance(images, list) or not all(isinstance(i, str) and i for i in images):
        raise ValueError("images: a list of image references or tags")
    with _hooks["lock"]:
        CRASHING.clear()
        CRASHING.update(images)
    return {"images": sorted(CRASHING)}


def pending(_body):
    """POST /_tagrelay/ecs/pending: how many deployments will still change by themselves (their
    timer has not run). A deployment that crashes without the circuit breaker is not counted: it
    stays IN_PROGRESS for ever, as in ECS."""
    with _hooks["lock"]:
        return {"timers": PENDING["timers"]}
