"""Counts every AWS API request the local AWS answers, by service and operation, and by the
Lambda invocation that made it. Loaded by launcher.py, which calls count() before it hands a
request to moto (or to the CloudWatch CBOR front) and serves the two control endpoints.

How a request is named, by protocol (what the SDKs send):

* service: the SigV4 credential scope, `Authorization: AWS4-HMAC-SHA256 Credential=<key>/<date>/
  <region>/<service>/aws4_request` (`ssm`, `ecr`, `codebuild`, `ecs`, `sqs`, `monitoring`, ...);
  an unsigned request is `unsigned`.
* operation: JSON protocols (SSM, ECR, CodeBuild, ECS, SQS): `X-Amz-Target: <prefix>.<Operation>`;
  RPC v2 CBOR (CloudWatch, the Rust SDK): the path `/service/<service id>/operation/<Operation>`;
  query protocol (moto's CloudWatch, STS, ...): `Action`, from the query string or the
  form-encoded body; anything else (REST protocols: no service tagrelay calls uses one) is
  `<METHOD> /<first path segment>`, so it is still counted and visibly unnamed.
* invocation: the `X-Amzn-Trace-Id` header, which the AWS SDKs add inside a Lambda function
  (their recursion-detection interceptor copies `_X_AMZN_TRACE_ID`, which the Rust runtime sets
  per invocation from the Runtime API's `Lambda-Runtime-Trace-Id`). Requests without it (a
  function's init, the test bed's own calls) are counted under no trace.

Each request counts once when it arrives, whatever the answer: a throttled or failed call costs
a transaction in AWS too, and an SDK retry is a request of its own.
"""

import io
import threading
import time
from urllib.parse import parse_qs

CBOR_PREFIX = "/service/"
FORM = "application/x-www-form-urlencoded"

_lock = threading.Lock()
_state = {"counts": {}, "by_trace": {}, "since": time.time()}


def _service(environ):
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return "unsigned"
    scope = authorization[start + len(marker):].split(",", 1)[0].split("/")
    # <key>/<date>/<region>/<service>/aws4_request
    return scope[3] if len(scope) >= 5 else "unsigned"


def _query_action(environ):
    action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if action:
        return action[0]
    if environ.get("REQUEST_METHOD") != "POST" or not environ.get("CONTENT_TYPE", "").startswith(FORM):
        return None
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    # Put the body back for moto.
    environ["wsgi.input"] = io.BytesIO(body)
    action = parse_qs(body.decode("utf-8", "replace")).get("Action")
    return action[0] if action else None


def classify(environ):
    """(service, operation) of an AWS request."""
    service = _service(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service, target.rsplit(".", 1)[-1]
    path = environ.get("PATH_INFO", "")
    if path.startswith(CBOR_PREFIX) and "/operation/" in path:
        return service, path.rsplit("/operation/", 1)[1]
    action = _query_action(environ)
    if action:
        return service, action
    segment = path.lstrip("/").split("/", 1)[0]
    return service, f"{environ.get('REQUEST_METHOD', '?')} /{segment}"


def count(environ):
    service, operation = classify(environ)
    key = f"{service}:{operation}"
    trace = environ.get("HTTP_X_AMZN_TRACE_ID")
    with _lock:
        counts = _state["counts"]
        counts[key] = counts.get(key, 0) + 1
        if trace:
            calls = _state["by_trace"].setdefault(trace, {})
            calls[key] = calls.get(key, 0) + 1


def _snapshot():
    calls = []
    for key, n in sorted(_state["counts"].items()):
        service, operation = key.split(":", 1)
        calls.append({"service": service, "operation": operation, "count": n})
    by_trace = {trace: dict(sorted(ops.items())) for trace, ops in _state["by_trace"].items()}
    return {"since": _state["since"], "total": sum(_state["counts"].values()), "calls": calls, "by_trace": by_trace}


def snapshot(_body):
    """POST /_tagrelay/calls: every request counted since the start or the last reset."""
    with _lock:
        return _snapshot()


def reset(_body):
    """POST /_tagrelay/calls/reset: answers what was counted, and starts again from zero."""
    with _lock:
        answer = _snapshot()
        _state.update(counts={}, by_trace={}, since=time.time())
        return answer
