"""tagrelay's local AWS: moto's server, in this process, with CodeBuild and ECS made faithful enough
for tagrelay and EventBridge events sent where the tests listen.

    .venv/bin/python testbed/local_aws/launcher.py --host 127.0.0.1 --port 5000 \
        [--event-sink http://127.0.0.1:9000] [--schedule-seconds 30]

PINNED TO moto 5.2.5's INTERNALS (moto.codebuild/ecr/ecs/ssm responses and models, moto.server's
WSGI app). ECS deployments live in ecs_deployments.py, what a build's Terraform does to ECS in
terraform_apply.py, CloudWatch alarms (their RPC v2 CBOR protocol, transitions, history and
events) in cloudwatch_alarms.py, the count of every AWS request in call_counts.py. The patches
wrap or replace methods of moto's response classes at start-up; nothing in site-packages is
edited. Another moto version is refused at start rather than half-patched.
See README.md next to this file for the control endpoint and the events.
"""

import argparse
import copy
import json
import os
import queue
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

import moto
from moto.core.exceptions import JsonRESTError
from werkzeug.serving import make_server

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

import call_counts
import cloudwatch_alarms
import ecs_deployments
import terraform_apply

MOTO_VERSION = "5.2.5"
ACCOUNT_ID = "123456789012"  # moto's default account
SCHEDULE_RULE = f"arn:aws:events:us-east-1:{ACCOUNT_ID}:rule/tagrelay-sweep"
OUTCOMES = ("SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT")
IDEMPOTENCY_WINDOW_SECONDS = 300  # StartBuild's idempotencyToken "is valid for 5 minutes" (API reference)
PAGE_SIZE = 100  # ListBuildsForProject returns at most 100 ids per call

# Every CodeBuild and ECS change goes through this lock: request threads and timers both mutate them.
LOCK = threading.RLock()
# project name -> {"duration": seconds, "outcome": str, "queue": [outcome, ...]}, set by the tests.
BEHAVIOURS = {}
# The account's quota of running builds (None: no quota), set by POST /_tagrelay/codebuild/account.
ACCOUNT = {"max_builds_in_queue": None}
# AWS requests wait for the patches, so no request ever runs unpatched moto code (see main()).
PATCHED = threading.Event()
EVENTS = None  # the EventSender, once a sink is given (--event-sink or POST /_tagrelay/events/sink)
# detail-type -> how many of the next such events are lost (ECR's best-effort delivery), set by tests.
DROPS = {}


def log(message):
    print(f"tagrelay-launcher: {message}", file=sys.stderr, flush=True)


def now():
    return datetime.now(timezone.utc)


# ----------------------------------------------------------------------------------------------
# EventBridge events: one sender thread, in order, to {sink}/events.


class EventSender:
    ATTEMPTS = 5  # a refused connection is retried (the sink may be starting); anything else is not

    def __init__(self, sink):
        self.url = sink.rstrip("/") + "/events"
        self.queue = queue.Queue()
        # No proxy: HTTP_PROXY in the environment must not divert loopback traffic.
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        threading.Thread(target=self._run, name="event-sender", daemon=True).start()

    def emit(self, event):
        self.queue.put(event)

    def _run(self):
        while True:
            event = self.queue.get()
            body = json.dumps(event).encode()
            for attempt in range(self.ATTEMPTS):
                request = urllib.request.Request(
                    self.url, data=body, method="POST", headers={"content-type": "application/json"}
                )
                try:
                    with self.opener.open(request, timeout=10) as response:
                        response.read()
                    break
                except urllib.error.HTTPError as err:  # the sink answered: it has the event
                    log(f"event sink answered {err.code} to {event['detail-type']}")
                    break
                except (urllib.error.URLError, OSError) as err:
                    reason = getattr(err, "reason", err)
                    if isinstance(reason, ConnectionRefusedError) and attempt + 1 < self.ATTEMPTS:
                        time.sleep(0.1 * 2**attempt)
                        continue
                    log(f"dropped {event['detail-type']} ({event['id']}): {reason}")
                    break


def emit(source, detail_type, region, account, resources, detail):
    """Queues an event in EventBridge's envelope (no sink, or a drop asked for: nothing happens)."""
    if EVENTS is None:
        return
    with LOCK:
        if DROPS.get(detail_type, 0) > 0:
            DROPS[detail_type] -= 1
            log(f"dropped {detail_type} as asked (best-effort delivery)")
            return
    EVENTS.emit(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": detail_type,
            "source": source,
            "account": account,
            "time": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": resources,
            "detail": detail,
        }
    )


def schedule(every):
    """Sends "Scheduled Event" as a rate(...) rule does: the first one after one period."""
    while True:
        time.sleep(every)
        emit("aws.events", "Scheduled Event", "us-east-1", "123456789012", [SCHEDULE_RULE], {})


# ----------------------------------------------------------------------------------------------
# ECR: "ECR Image Action" after a successful PutImage (PUSH) and per image BatchDeleteImage
# removed (DELETE). Shapes: ECR User Guide, "Amazon ECR events and EventBridge", plus the
# media types ECR sends today (tests/fixtures/events/ecr-push-media-types.json). moto's own
# internal tag moves (PutImage moving a tag) are not events: the hooks sit on the API, not the model.


def patch_ecr():
    from moto.ecr.responses import ECRResponse

    put_image, batch_delete_image = ECRResponse.put_image, ECRResponse.batch_delete_image

    def ecr_event(self, detail):
        emit("aws.ecr", "ECR Image Action", self.region, self.current_account, [], detail)

    def put_image_with_event(self):
        result = put_image(self)
        image = result.result["image"]
        try:
            config_type = json.loads(image.image_manifest).get("config", {}).get("mediaType")
        except ValueError:
            config_type = None
        detail = {
            "result": "SUCCESS",
            "repository-name": image.repository_name,
            "image-digest": image.image_digest,
            "action-type": "PUSH",
            "image-tag": self._get_param("imageTag") or "",
        }
        if config_type:
            detail["artifact-media-type"] = config_type
        detail["manifest-media-type"] = image.image_manifest_media_type
        ecr_event(self, detail)
        return result

    def batch_delete_image_with_event(self):
        result = batch_delete_image(self)
        for image_id in result.result["imageIds"]:
            ecr_event(
                self,
                {
                    "result": "SUCCESS",
                    "repository-name": self._get_param("repositoryName"),
                    "image-digest": image_id.image_digest,
                    "action-type": "DELETE",
                    "image-tag": image_id.image_tag or "",
                },
            )
        return result

    ECRResponse.put_image = put_image_with_event
    ECRResponse.batch_delete_image = batch_delete_image_with_event


# ----------------------------------------------------------------------------------------------
# SSM: "Parameter Store Change" (Systems Manager User Guide, "Parameter Store events"): detail
# {operation, name, type, description?}, resources [parameter ARN]. Create/Update is decided by
# whether the parameter existed before the call.


def patch_ssm():
    from moto.ssm.responses import SimpleSystemManagerResponse as SSMResponse

    originals = {name: getattr(SSMResponse, name) for name in (
        "put_parameter", "delete_parameter", "delete_parameters", "label_parameter_version")}

    def current(self, name):
        try:
            return self.ssm_backend.get_parameter(name)
        except Exception:  # noqa: BLE001 - moto raises for odd names; "not there" is all we need
            return None

    def ssm_event(self, operation, parameter):
        detail = {"operation": operation, "name": parameter.name, "type": parameter.parameter_type}
        if parameter.description:
            detail["description"] = parameter.description
        arn = f"arn:aws:ssm:{self.region}:{self.current_account}:parameter/{parameter.name.lstrip('/')}"
        emit("aws.ssm", "Parameter Store Change", self.region, self.current_account, [arn], detail)

    def put_parameter(self):
        name = self._get_param("Name")
        existed = current(self, name) is not None
        result = originals["put_parameter"](self)
        ssm_event(self, "Update" if existed else "Create", current(self, name))
        return result

    def delete_parameter(self):
        parameter = current(self, self._get_param("Name"))
        result = originals["delete_parameter"](self)
        ssm_event(self, "Delete", parameter)
        return result

    def delete_parameters(self):
        before = {name: current(self, name) for name in self._get_param("Names")}
        result = originals["delete_parameters"](self)
        for name in result.result["DeletedParameters"]:
            ssm_event(self, "Delete", before[name])
        return result

    def label_parameter_version(self):
        result = originals["label_parameter_version"](self)
        ssm_event(self, "LabelParameterVersion", current(self, self._get_param("Name")))
        return result

    for name, method in (("put_parameter", put_parameter), ("delete_parameter", delete_parameter),
                         ("delete_parameters", delete_parameters),
                         ("label_parameter_version", label_parameter_version)):
        setattr(SSMResponse, name, method)


# ----------------------------------------------------------------------------------------------
# CodeBuild. moto 5.2.5 drops concurrentBuildLimit and environmentVariablesOverride, completes
# every build as SUCCEEDED when it is first read, flips a stopped build back to SUCCEEDED on the
# next read, ignores sortOrder, and has no idempotency. StartBuild, BatchGetBuilds, StopBuild and
# ListBuildsForProject are replaced; builds are kept where moto keeps them
# (backend.build_history / build_metadata_history), so ListBuilds and DeleteProject still work.


class AccountLimitExceededException(JsonRESTError):
    """What StartBuild answers when the project's concurrentBuildLimit is reached, and when the
    account's quota of running builds is (POST /_tagrelay/codebuild/account): one code for both.

    The code: AccountLimitExceededException (HTTP 400) is the only limit error StartBuild declares
    (botocore data/codebuild/2016-10-06/service-2.json, StartBuild "errors"), and the CodeBuild
    User Guide ("Builds in AWS CodeBuild") says that with a project concurrent build limit
    "builds return an error if the number of running builds reaches the concurrent build limit for
    the project" (they are not queued). The message: the only wording on record for this
    exception, e.g. "Cannot have more than 1 builds in queue for the account (Service:
    AWSCodeBuild; Status Code: 400; Error Code: AccountLimitExceededException" in
    github.com/aws-samples/aws-gateway-load-balancer-suricata-ids-ips-nsm/issues/12 (two builds
    in parallel) and awslabs/landing-zone-accelerator-on-aws/issues/249. No public source quotes
    a project-specific wording: match on the code, not the message.
    """

    code = 400

    def __init__(self, limit):
        super().__init__("AccountLimitExceededException",
                         f"Cannot have more than {limit} builds in queue for the account")


def cb_time(moment):
    """CodeBuild's event time format, e.g. "Sep 1, 2017 4:12:29 PM"."""
    return f"{moment:%b} {moment.day}, {moment.year} {int(moment.strftime('%I'))}:{moment:%M:%S %p}"


def phase(phase_type, start, end=None, status=None, context=None):
    entry = {"phaseType": phase_type, "startTime": start}
    if end is not None:
        entry.update(phaseStatus=status, endTime=end, durationInSeconds=int((end - start).total_seconds()),
                     contexts=[context or {"statusCode": "", "message": ""}])
    return entry


def merged_variables(project_vars, overrides):
    """CodeBuild's rule: an override replaces the project's variable of the same name, others add."""
    merged = [dict(v, type=v.get("type", "PLAINTEXT")) for v in project_vars or []]
    for override in overrides or []:
        override = dict(override, type=override.get("type", "PLAINTEXT"))
        for i, existing in enumerate(merged):
            if existing["name"] == override["name"]:
                merged[i] = override
                break
        else:
            merged.append(override)
    return merged


def build_event(build, account, region):
    """Queues a "CodeBuild Build State Change" shaped like the CodeBuild User Guide's "Build
    notifications input format reference" and events captured from AWS: the IN_PROGRESS event (sent
    at submission) has current-phase SUBMITTED and no build-number or phases."""
    terminal = build["buildComplete"]
    env, source = build["environment"], build["source"]
    info = {
        "cache": {"type": build["cache"].get("type", "NO_CACHE")},
        "timeout-in-minutes": build["timeoutInMinutes"],
        "build-complete": terminal,
        "initiator": build["initiator"],
        "build-start-time": cb_time(build["startTime"]),
        "source": {k: source[k] for k in ("buildspec", "location", "type") if source.get(k) is not None},
        "artifact": {"location": ""},
        "environment": {
            "image": env.get("image"),
            "privileged-mode": env.get("privilegedMode", False),
            "image-pull-credentials-type": env.get("imagePullCredentialsType", "CODEBUILD"),
            "compute-type": env.get("computeType"),
            "type": env.get("type"),
            "environment-variables": [{"name": v["name"], "type": v["type"], "value": v.get("value", "")}
                                      for v in env.get("environmentVariables", [])],
        },
        "logs": {"deep-link": build["logs"]["deepLink"]},
        "queued-timeout-in-minutes": build["queuedTimeoutInMinutes"],
    }
    if "sourceVersion" in build:
        info["source-version"] = build["sourceVersion"]
    if terminal:
        info["build-number"] = build["buildNumber"]
        info["logs"] = {"group-name": build["logs"]["groupName"], "stream-name": build["logs"]["streamName"],
                        "deep-link": build["logs"]["deepLink"]}
        info["phases"] = []
        for p in build["phases"]:
            entry = {"start-time": cb_time(p["startTime"]), "phase-type": p["phaseType"]}
            if "endTime" in p:
                contexts = [f"{c['statusCode']}: {c['message']}" for c in p["contexts"]]
                entry = {"phase-context": [] if p["phaseType"] in ("SUBMITTED", "QUEUED") else contexts,
                         **entry, "end-time": cb_time(p["endTime"]), "duration-in-seconds": p["durationInSeconds"],
                         "phase-status": p["phaseStatus"]}
            info["phases"].append(entry)
    detail = {
        "build-status": build["buildStatus"],
        "project-name": build["projectName"],
        "build-id": build["arn"],
        "additional-information": info,
        "current-phase": "COMPLETED" if terminal else "SUBMITTED",
        "current-phase-context": "[: ]" if terminal else "[]",
        "version": "1",
    }
    emit("aws.codebuild", "CodeBuild Build State Change", region, account, [build["arn"]], detail)


def finish(build, status, account, region):
    """Ends a running build (under LOCK): the running BUILD phase gets its end, then the phases
    CodeBuild runs after it. A stopped build skips POST_BUILD and UPLOAD_ARTIFACTS."""
    end = now()
    running = build["phases"][-1]
    context = None
    if status == "FAILED":
        context = {"statusCode": "COMMAND_EXECUTION_ERROR",
                   "message": "Error while executing command: terraform apply. Reason: exit status 1"}
    build["phases"][-1] = phase(running["phaseType"], running["startTime"], end, status, context)
    after = ["FINALIZING"] if status == "STOPPED" else ["POST_BUILD", "UPLOAD_ARTIFACTS", "FINALIZING"]
    build["phases"] += [phase(p, end, end, "SUCCEEDED") for p in after] + [phase("COMPLETED", end)]
    build.update(buildStatus=status, currentPhase="COMPLETED", endTime=end, buildComplete=True)
    build_event(build, account, region)


def patch_codebuild():
    from moto.codebuild import responses as cb
    from moto.codebuild.exceptions import InvalidInputException, ResourceNotFoundException
    from moto.codebuild.models import CodeBuildBackend

    # CodeBuild accepts a NO_SOURCE project without a location (buildspec inline); moto does not.
    validate_source = cb._validate_required_params_source

    def validate_source_allowing_no_source(source):
        if source.get("type") != "NO_SOURCE":
            validate_source(source)

    cb._validate_required_params_source = validate_source_allowing_no_source

    create_project = cb.CodeBuildResponse.create_project

    def create_project_keeping_limit(self):
        result = create_project(self)
        metadata = result.result["project"]
        limit = self._get_param("concurrentBuildLimit")
        if limit is not None:
            metadata["concurrentBuildLimit"] = limit
        # CodeBuild's defaults when the request leaves them out (moto stores 0).
        metadata["timeoutInMinutes"] = metadata["timeoutInMinutes"] or 60
        metadata["queuedTimeoutInMinutes"] = metadata["queuedTimeoutInMinutes"] or 480
        return result

    def project_builds(backend, name):
        return backend.build_metadata_history[name]

    def find_build(backend, build_id):
        for builds in backend.build_metadata_history.values():
            for build in builds:
                if build["id"] == build_id:
                    return build
        return None

    def start_build(self):
        name = self._get_param("projectName")
        cb._validate_required_params_project_name(name)
        backend = self.codebuild_backend
        account, region = self.current_account, self.region
        params = json.loads(self.body or "{}")
        with LOCK:
            project = backend.codebuild_projects.get(name)
            if project is None:
                raise ResourceNotFoundException(
                    f"Project cannot be found: arn:aws:codebuild:{region}:{account}:project/{name}")
            token = params.pop("idempotencyToken", None)
            tokens = backend.__dict__.setdefault("tagrelay_tokens", {})
            if token is not None and token in tokens:
                fingerprint, build, at = tokens[token]
                if time.monotonic() - at < IDEMPOTENCY_WINDOW_SECONDS:
                    if fingerprint != params:
                        # "If you repeat the StartBuild request with the same token, but change a
                        # parameter, CodeBuild returns a parameter mismatch error." (API reference)
                        raise InvalidInputException(
                            "Idempotency token was used with a different request: parameter mismatch")
                    return cb.ActionResult({"build": copy.deepcopy(build)})
            # The account's quota first: it counts every project's running builds. New accounts
            # can have a quota of 0 for a compute type ("Cannot have more than 0 builds in queue
            # for the account"), and then no build of any project runs.
            account_limit = ACCOUNT["max_builds_in_queue"]
            if account_limit is not None:
                running = sum(1 for history in backend.build_metadata_history.values()
                              for b in history if b["buildStatus"] == "IN_PROGRESS")
                if running >= account_limit:
                    raise AccountLimitExceededException(account_limit)
            meta = project.project_metadata
            builds = project_builds(backend, name)
            limit = meta.get("concurrentBuildLimit")
            if limit is not None and limit > 0:
                if sum(1 for b in builds if b["buildStatus"] == "IN_PROGRESS") >= limit:
                    raise AccountLimitExceededException(limit)

            behaviour = BEHAVIOURS.get(name, {})
            duration = behaviour.get("duration", 1.0)
            outcome = behaviour["queue"].pop(0) if behaviour.get("queue") else behaviour.get("outcome", "SUCCEEDED")

            started = now()
            build_id = f"{name}:{uuid.uuid4()}"
            stream = build_id.split(":", 1)[1]
            env = copy.deepcopy(meta.get("environment") or {})
            for override, key in (("imageOverride", "image"), ("computeTypeOverride", "computeType"),
                                  ("environmentTypeOverride", "type"), ("privilegedModeOverride", "privilegedMode")):
                if params.get(override) is not None:
                    env[key] = params[override]
            env["environmentVariables"] = merged_variables(env.get("environmentVariables"),
                                                           params.get("environmentVariablesOverride"))
            env.setdefault("privilegedMode", False)
            env.setdefault("imagePullCredentialsType", "CODEBUILD")
            source = copy.deepcopy(meta.get("source") or {"type": "NO_SOURCE"})
            if params.get("buildspecOverride"):
                source["buildspec"] = params["buildspecOverride"]
            log_group = f"/aws/codebuild/{name}"
            build = {
                "id": build_id,
                "arn": f"arn:aws:codebuild:{region}:{account}:build/{build_id}",
                "buildNumber": max((b.get("buildNumber", 0) for b in builds), default=0) + 1,
                "startTime": started,
                "currentPhase": "BUILD",
                "buildStatus": "IN_PROGRESS",
                "projectName": name,
                # Submitted, provisioned and set up at once; BUILD (terraform apply) runs until the end.
                "phases": [phase(p, started, started, "SUCCEEDED") for p in
                           ("SUBMITTED", "QUEUED", "PROVISIONING", "DOWNLOAD_SOURCE", "INSTALL", "PRE_BUILD")]
                + [phase("BUILD", started)],
                "source": source,
                "secondarySources": [],
                "artifacts": {"location": ""},
                "cache": copy.deepcopy(meta.get("cache") or {"type": "NO_CACHE"}),
                "environment": env,
                "serviceRole": meta["serviceRole"],
                "logs": {
                    "groupName": log_group,
                    "streamName": stream,
                    "deepLink": f"https://console.aws.amazon.com/cloudwatch/home?region={region}"
                                f"#logsV2:log-groups/log-group/{log_group.replace('/', '$252F')}/log-events/{stream}",
                    "cloudWatchLogsArn": f"arn:aws:logs:{region}:{account}:log-group:{log_group}:log-stream:{stream}",
                    "cloudWatchLogs": {"status": "ENABLED"},
                    "s3Logs": {"status": "DISABLED", "encryptionDisabled": False},
                },
                "timeoutInMinutes": params.get("timeoutInMinutesOverride") or meta.get("timeoutInMinutes") or 60,
                "queuedTimeoutInMinutes": params.get("queuedTimeoutInMinutesOverride")
                or meta.get("queuedTimeoutInMinutes") or 480,
                "buildComplete": False,
                "initiator": "tagrelay-local",
                "encryptionKey": meta.get("encryptionKey"),
            }
            if params.get("sourceVersion"):
                build["sourceVersion"] = params["sourceVersion"]
            builds.append(build)
            backend.build_history.setdefault(name, []).append(build_id)
            if token is not None:
                tokens[token] = (params, build, time.monotonic())
            build_event(build, account, region)
            answer = copy.deepcopy(build)

        def complete():
            with LOCK:
                if build["buildStatus"] == "IN_PROGRESS":  # not stopped meanwhile
                    # A build set to fail never gets to apply; one that does may still fail there.
                    status = terraform_apply.apply(build, account, region) if outcome == "SUCCEEDED" else outcome
                    finish(build, status, account, region)

        timer = threading.Timer(duration, complete)
        timer.daemon = True
        timer.start()
        return cb.ActionResult({"build": answer})

    def batch_get_builds(self):
        ids = self._get_param("ids")
        for build_id in ids:
            if ":" not in build_id:
                raise InvalidInputException("Invalid build ID provided")
        with LOCK:
            found = {i: find_build(self.codebuild_backend, i) for i in ids}
            builds = [copy.deepcopy(b) for b in found.values() if b is not None]
        missing = [i for i, b in found.items() if b is None]
        return cb.ActionResult({"builds": builds, "buildsNotFound": missing})

    def stop_build(self):
        build_id = self._get_param("id")
        with LOCK:
            cb._validate_required_params_id(build_id, self.codebuild_backend.list_builds())
            build = find_build(self.codebuild_backend, build_id)
            if build["buildStatus"] == "IN_PROGRESS":
                finish(build, "STOPPED", self.current_account, self.region)
            return cb.ActionResult({"build": copy.deepcopy(build)})

    def list_builds_for_project(self):
        name = self._get_param("projectName")
        cb._validate_required_params_project_name(name)
        backend = self.codebuild_backend
        with LOCK:
            if name not in backend.codebuild_projects:
                raise ResourceNotFoundException(
                    f"The provided project arn:aws:codebuild:{self.region}:{self.current_account}"
                    f":project/{name} does not exist")
            builds = sorted(project_builds(backend, name), key=lambda b: b["buildNumber"],
                            reverse=self._get_param("sortOrder", "DESCENDING") != "ASCENDING")
            ids = [b["id"] for b in builds]
        start = int(self._get_param("nextToken") or 0)
        page = {"ids": ids[start:start + PAGE_SIZE]}
        if start + PAGE_SIZE < len(ids):
            page["nextToken"] = str(start + PAGE_SIZE)
        return cb.ActionResult(page)

    cb.CodeBuildResponse.create_project = create_project_keeping_limit
    cb.CodeBuildResponse.start_build = start_build
    cb.CodeBuildResponse.batch_get_builds = batch_get_builds
    cb.CodeBuildResponse.stop_build = stop_build
    cb.CodeBuildResponse.list_builds_for_project = list_builds_for_project
    # moto's models mutate builds on read: make sure nothing reaches them.
    for name in ("batch_get_builds", "stop_build", "_set_phases"):
        setattr(CodeBuildBackend, name, None)


# ----------------------------------------------------------------------------------------------
# The control endpoint and the WSGI wrapper in front of moto.


def set_behaviour(body):
    """POST /_tagrelay/codebuild/behaviour: how the project's next builds run (see README.md)."""
    project = body.get("project")
    if not isinstance(project, str) or not project:
        raise ValueError("project: a project name is required")
    duration = body.get("duration_seconds", 1.0)
    if not isinstance(duration, (int, float)) or isinstance(duration, bool) or duration < 0:
        raise ValueError("duration_seconds: a number >= 0")
    outcome = body.get("outcome", "SUCCEEDED")
    outcomes = body.get("outcomes", [])
    if not isinstance(outcomes, list):
        raise ValueError("outcomes: a list of outcomes")
    for value in [outcome, *outcomes]:
        if value not in OUTCOMES:
            raise ValueError(f"unknown outcome {value!r} (expected one of {', '.join(OUTCOMES)})")
    with LOCK:
        BEHAVIOURS[project] = {"duration": float(duration), "outcome": outcome, "queue": list(outcomes)}
    return {"project": project, "duration_seconds": float(duration), "outcome": outcome, "outcomes": outcomes}


def set_account(body):
    """POST /_tagrelay/codebuild/account: the account's quota of running builds (see README.md)."""
    limit = body.get("max_builds_in_queue")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError("max_builds_in_queue: an integer >= 0, or null for no quota")
    with LOCK:
        ACCOUNT["max_builds_in_queue"] = limit
    return {"max_builds_in_queue": limit}


def set_sink(body):
    """POST /_tagrelay/events/sink: where events go from now on. The local EventBridge needs this
    server's SQS (its dead-letter queues) before it can take events, so it is told afterwards."""
    global EVENTS
    url = body.get("url")
    if not isinstance(url, str) or not url.startswith("http://127.0.0.1:"):
        raise ValueError("url: a loopback base URL, http://127.0.0.1:PORT")
    with LOCK:
        if EVENTS is None:
            EVENTS = EventSender(url)
        else:
            EVENTS.url = url.rstrip("/") + "/events"
    return {"url": url}


def drop_events(body):
    """POST /_tagrelay/events/drop: the next `count` events of `detail_type` are never sent, as
    AWS may lose a best-effort event (ECR's). Replaces the count for that type."""
    detail_type = body.get("detail_type")
    if not isinstance(detail_type, str) or not detail_type:
        raise ValueError("detail_type: an event detail-type is required")
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 0:
        raise ValueError("count: an integer >= 0")
    with LOCK:
        DROPS[detail_type] = count
    return {"detail_type": detail_type, "count": count}


def put_parameters(body):
    """POST /_tagrelay/ssm/parameters: creates or overwrites many String parameters at once in
    moto's SSM model, as a Terraform apply long before the test would have: no request is
    counted and no event is sent. For set-ups of thousands of parameters, which one PutParameter
    each would take minutes to make."""
    parameters = body.get("parameters")
    if not isinstance(parameters, list) or not parameters:
        raise ValueError("parameters: a non-empty list of {name, value}")
    tier = body.get("tier", "Standard")
    if tier not in ("Standard", "Advanced", "Intelligent-Tiering"):
        raise ValueError(f"tier: Standard, Advanced or Intelligent-Tiering, not {tier!r}")
    for parameter in parameters:
        if not isinstance(parameter, dict) or not all(
                isinstance(parameter.get(key), str) and parameter.get(key) for key in ("name", "value")):
            raise ValueError(f"each parameter: {{name, value}}, both non-empty strings, not {parameter!r}")
    from moto.ssm.models import ssm_backends

    backend = ssm_backends[ACCOUNT_ID]["us-east-1"]
    with LOCK:
        for parameter in parameters:
            try:
                backend.put_parameter(name=parameter["name"], description=parameter.get("description"),
                                      value=parameter["value"], parameter_type="String", allowed_pattern=None,
                                      keyid=None, overwrite=True, tags=[], data_type="text", tier=tier,
                                      policies=None)
            except Exception as err:  # noqa: BLE001 - moto's own validation: name the parameter
                raise ValueError(f"{parameter['name']}: {err}") from err
    return {"written": len(parameters)}


CONTROL = {
    "/_tagrelay/calls": call_counts.snapshot,
    "/_tagrelay/calls/reset": call_counts.reset,
    "/_tagrelay/ssm/parameters": put_parameters,
    "/_tagrelay/codebuild/behaviour": set_behaviour,
    "/_tagrelay/codebuild/account": set_account,
    "/_tagrelay/events/sink": set_sink,
    "/_tagrelay/events/drop": drop_events,
    "/_tagrelay/ecs/terraform": terraform_apply.set_mapping,
    "/_tagrelay/ecs/behaviour": ecs_deployments.set_behaviour,
    "/_tagrelay/ecs/crashing": ecs_deployments.set_crashing,
    "/_tagrelay/ecs/pending": ecs_deployments.pending,
}


def application(moto_app):
    def respond(start_response, status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path in CONTROL:
            if environ["REQUEST_METHOD"] != "POST":
                return respond(start_response, "405 Method Not Allowed", {"message": "POST only"})
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                if not isinstance(body, dict):
                    raise ValueError("the body must be a JSON object")
                return respond(start_response, "200 OK", CONTROL[path](body))
            except ValueError as err:
                return respond(start_response, "400 Bad Request", {"message": str(err)})
        if path.startswith("/_tagrelay/"):
            return respond(start_response, "404 Not Found", {"message": f"no control endpoint {path}"})
        if not path.startswith("/moto-api"):
            call_counts.count(environ)  # every AWS request, before anything can refuse it
        if cloudwatch_alarms.handles(path):
            # moto speaks no CBOR: the CloudWatch front answers the SDK's RPC v2 CBOR calls.
            if not PATCHED.wait(120):
                return respond(start_response, "503 Service Unavailable", {"message": "patches not applied"})
            return cloudwatch_alarms.serve(environ, start_response)
        if not path.startswith("/moto-api") and not PATCHED.wait(120):
            return respond(start_response, "503 Service Unavailable", {"message": "patches not applied"})
        return moto_app(environ, start_response)

    return app


def apply_patches():
    try:
        patch_ecr()
        patch_ssm()
        patch_codebuild()
        ecs_deployments.patch()
        cloudwatch_alarms.patch()
    except Exception as err:  # noqa: BLE001 - a half-patched moto must not serve
        log(f"patching moto failed, exiting: {err!r}")
        sys.stderr.flush()
        os._exit(3)
    PATCHED.set()


def main():
    global EVENTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--event-sink", help="base URL; events are POSTed to {URL}/events")
    parser.add_argument("--schedule-seconds", type=float, default=0.0,
                        help='send a "Scheduled Event" every S seconds (0: never)')
    args = parser.parse_args()

    # What moto_server does too: services that build URLs (SQS queue URLs) put this port in them.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    if moto.__version__ != MOTO_VERSION:
        log(f"moto {moto.__version__} found; these patches are for moto {MOTO_VERSION}: run `make tools`")
        sys.exit(2)
    ecs_deployments.connect(LOCK, emit, log)
    cloudwatch_alarms.connect(LOCK, emit, log)
    terraform_apply.connect(LOCK, log)
    if args.event_sink:
        EVENTS = EventSender(args.event_sink)
    if args.schedule_seconds > 0:
        threading.Thread(target=schedule, args=(args.schedule_seconds,), name="schedule", daemon=True).start()

    # Bind and answer first (moto's own API answers at once); importing and patching the four
    # services takes ~2 s more, done meanwhile. AWS requests wait for it (application()).
    # make_server exits with "Address already in use" when the port is taken.
    server = make_server(args.host, args.port, application(DomainDispatcherApplication(create_backend_app)),
                         threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=apply_patches, name="patch", daemon=True).start()
    log(f"moto {moto.__version__} on http://{args.host}:{args.port} (events: {args.event_sink or 'none'}, "
        f"schedule: {args.schedule_seconds or 'none'})")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
