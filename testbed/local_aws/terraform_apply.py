"""What the team's Terraform does to ECS when a tagrelay build applies, for launcher.py.

A project with an ECS mapping (POST /_tagrelay/ecs/terraform) applies before its build reports
SUCCEEDED: the build's TAGRELAY_FINGERPRINT (`sha256:<hex>`, shared/src/deploy/fingerprint.rs)
is resolved to values through its run manifest, as the buildspec does: the newest version of
`/tagrelay/<TAGRELAY_ENVIRONMENT>/manifest` described `tagrelay run <fingerprint>`, its parts
joined and checked ("tagrelay parts/1", shared/src/document/format.rs), its `parameters`' values
(Terraform gets the fingerprint's values, not the newest ones). A fingerprint of an older tagrelay
(`name=version@digest8,...`) reads each parameter at that version. A build without a fingerprint
(manual) reads the current values. Each mapped service whose container runs another
image gets a new task definition revision (family = service name) with `<image_repository>:<tag>`
and an UpdateService to it. Terraform does not wait for steady state. A failure here (a version
gone, a value that is not the fingerprint's, a service or container missing) fails the build as
a failed `terraform apply` would.
"""

import copy
import hashlib
import json

import ecs_deployments

MAPPINGS = {}  # project -> {"cluster": str, "services": {parameter: {service, container, image_repository}}}
_hooks = {}  # "lock", "log": the launcher's, given by connect() before it serves


class ApplyError(Exception):
    pass


def connect(lock, log):
    _hooks.update(lock=lock, log=log)


def apply(build, account, region):
    """The outcome of a build that got to `terraform apply` (caller holds the lock)."""
    mapping = MAPPINGS.get(build["projectName"])
    if not mapping:
        return "SUCCEEDED"
    try:
        values = resolve(build, sorted(mapping["services"]), account, region)
        for parameter, target in sorted(mapping["services"].items()):
            update(mapping["cluster"], target, values[parameter], account, region)
    except ApplyError as err:
        _hooks["log"](f"terraform apply of {build['id']} failed: {err}")
        return "FAILED"
    except Exception as err:  # noqa: BLE001 - a bug here must end the build, not leave it running
        _hooks["log"](f"terraform apply of {build['id']} failed unexpectedly: {err!r}")
        return "FAULT"
    return "SUCCEEDED"


def variable_of(build, name):
    for variable in build["environment"].get("environmentVariables", []):
        if variable["name"] == name:
            return variable.get("value") or ""
    return ""


def fingerprint_of(build):
    return variable_of(build, "TAGRELAY_FINGERPRINT")


def manifest_of(ssm, environment, fingerprint):
    """The run manifest of `fingerprint` (a dict), or ApplyError as the buildspec fails."""
    head = f"/tagrelay/{environment}/manifest"
    described = [p for p in ssm._parameters.get(head, []) if p.description == f"tagrelay run {fingerprint}"]
    if not described:
        raise ApplyError(f"no version of {head} is described 'tagrelay run {fingerprint}'")
    value = described[-1].value
    try:
        parsed = json.loads(value)
    except ValueError as err:
        raise ApplyError(f"{head}: not JSON: {err}") from err
    if isinstance(parsed, dict) and list(parsed) == ["tagrelay_parts"]:
        head_parts = parsed["tagrelay_parts"]
        texts = []
        for selector in head_parts["parts"]:
            part = ssm.get_parameter(selector)
            if part is None:
                raise ApplyError(f"{head}: part {selector} is missing")
            texts.append(part.value)
        value = "".join(texts)
        if hashlib.sha256(value.encode()).hexdigest() != head_parts["sha256"]:
            raise ApplyError(f"{head}: the parts do not add up to the document the head names")
        parsed = json.loads(value)
    entries = parsed.get("parameters", {})
    state = ",".join(
        f"{name}={entries[name]['version']}@{hashlib.sha256(entries[name]['value'].encode()).hexdigest()[:8]}"
        for name in sorted(entries))
    if parsed.get("environment") != environment or "sha256:" + hashlib.sha256(state.encode()).hexdigest() != fingerprint:
        raise ApplyError(f"{head}: the manifest is not the state of {fingerprint} in {environment}")
    return parsed


def resolve(build, names, account, region):
    """parameter name -> the value the build deploys."""
    from moto.ssm.models import ssm_backends

    ssm = ssm_backends[account][region]
    fingerprint = fingerprint_of(build)
    if fingerprint.startswith("sha256:"):
        manifest = manifest_of(ssm, variable_of(build, "TAGRELAY_ENVIRONMENT"), fingerprint)
        values = {}
        for name in names:
            entry = manifest["parameters"].get(name)
            if entry is None:
                raise ApplyError(f"parameter {name} is not in the run manifest of {fingerprint}")
            values[name] = entry["value"]
        return values
    pinned = {}
    for entry in filter(None, fingerprint_of(build).split(",")):
        name, _, state = entry.rpartition("=")  # SSM names cannot hold "=", "@" or ","
        version, _, digest = state.partition("@")
        pinned[name] = (version, digest)
    values = {}
    for name in names:
        version, digest = pinned.get(name, (None, ""))
        try:
            parameter = ssm.get_parameter(f"{name}:{version}" if version else name)
        except Exception as err:  # noqa: BLE001 - moto raises ParameterVersionNotFound
            raise ApplyError(f"reading {name} version {version}: {err}") from err
        if parameter is None:
            raise ApplyError(f"parameter {name} (version {version or 'current'}) not found")
        if digest and hashlib.sha256(parameter.value.encode()).hexdigest()[:8] != digest:
            raise ApplyError(f"{name} version {version} holds a value whose digest is not {digest}")
        values[name] = parameter.value
    return values


def update(cluster, target, tag, account, region):
    from moto.ecs.models import ecs_backends

    backend = ecs_backends[account][region]
    try:
        service = backend._get_service(cluster, target["service"])
        current = backend.describe_task_definition(service.task_definition)
    except Exception as err:  # noqa: BLE001 - moto's ECS exceptions: Terraform would fail too
        raise ApplyError(f"service {target['service']} in cluster {cluster}: {err}") from err
    image = f"{target['image_repository']}:{tag}"
    containers = copy.deepcopy(current.container_definitions)
    matching = [c for c in containers if c.get("name") == target["container"]]
    if not matching:
        raise ApplyError(f"task definition {current.arn} has no container {target['container']}")
    if matching[0].get("image") == image:
        return
    matching[0]["image"] = image
    # The revision keeps the rest of the task definition (moto sets some attributes only when given).
    kept = {key: getattr(current, key, None) for key in (
        "volumes", "network_mode", "requires_compatibilities", "cpu", "memory", "task_role_arn",
        "execution_role_arn")}
    revision = backend.register_task_definition(target["service"], containers, **kept)
    _hooks["log"](f"terraform apply: {cluster}/{target['service']} -> {revision.arn} ({image})")
    ecs_deployments.deploy(service, revision.arn)


def set_mapping(body):
    """POST /_tagrelay/ecs/terraform: what the project's Terraform deploys to ECS (replaces it)."""
    project, cluster, services = body.get("project"), body.get("cluster"), body.get("services", {})
    if not isinstance(project, str) or not project:
        raise ValueError("project: a CodeBuild project name is required")
    if not isinstance(cluster, str) or not cluster:
        raise ValueError("cluster: an ECS cluster name is required")
    if not isinstance(services, dict):
        raise ValueError("services: an object, parameter name -> {service, container, image_repository}")
    mapped = {}
    for parameter, target in services.items():
        if not isinstance(target, dict):
            raise ValueError(f"services.{parameter}: an object")
        for key in ("service", "container", "image_repository"):
            if not isinstance(target.get(key), str) or not target[key]:
                raise ValueError(f"services.{parameter}.{key}: a non-empty string")
        mapped[parameter] = {key: target[key] for key in ("service", "container", "image_repository")}
    with _hooks["lock"]:
        MAPPINGS[project] = {"cluster": cluster, "services": mapped}
    return {"project": project, "cluster": cluster, "services": mapped}
