"""CloudWatch alarms as tagrelay reads them, for launcher.py: the Smithy RPC v2 CBOR protocol the
Rust SDK speaks (aws-sdk-cloudwatch 1.140), on top of moto 5.2.5's CloudWatch model.

moto speaks only CloudWatch's query protocol, has no DescribeAlarmHistory, no PutCompositeAlarm,
creates alarms in OK, resets an alarm's state when PutMetricAlarm updates it, keeps no
StateTransitionedTimestamp and sends no events. Here:

* POST /service/GraniteServiceVersion20100801/operation/<Op> (content-type application/cbor,
  header smithy-protocol: rpc-v2-cbor) answers DescribeAlarms, DescribeAlarmHistory,
  SetAlarmState, PutMetricAlarm, PutCompositeAlarm and DeleteAlarms in CBOR; errors as AWS sends
  them (CBOR `{"__type": "com.amazonaws.cloudwatch#Code", "message"}`, `x-amzn-query-error:
  Code;Sender`, since CloudWatch is query-compatible); any other operation, or a parameter this
  front does not emulate, is refused naming it (400 NotEmulated) rather than half-answered.
* moto's model is patched, so moto's own query-protocol calls behave the same: alarms start in
  INSUFFICIENT_DATA ("Unchecked: Initial alarm creation"); an update keeps the state; a state
  *value* change sets StateTransitionedTimestamp, records a StateUpdate history item whose
  HistoryData is written as CloudWatch writes it, and emits "CloudWatch Alarm State Change";
  setting the same value again only updates the reason and StateUpdatedTimestamp.

Sources: the CloudWatch API Reference (DescribeAlarms, DescribeAlarmHistory, SetAlarmState,
PutMetricAlarm: "When you update an existing alarm, its state is left unchanged"), the User
Guide's "Alarm events and EventBridge" samples (tests/fixtures/events/cloudwatch-alarm-*.json),
the AWS CLI's describe-alarm-history example (HistoryData), smithy.io's RPC v2 CBOR protocol and
the SDK crate's own (de)serialisers. See README.md and testbed/README.md for what differs.
"""

import json
import uuid
from datetime import datetime, timezone

from moto.core import DEFAULT_ACCOUNT_ID

SERVICE_PATH = "/service/GraniteServiceVersion20100801/operation/"
DETAIL_TYPE = "CloudWatch Alarm State Change"
NAMESPACE = "com.amazonaws.cloudwatch"
STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")
INITIAL_REASON = "Unchecked: Initial alarm creation"
MAX_NAMES = 100  # DescribeAlarms' AlarmNames: "Array Members: Maximum number of 100 items."
MAX_RECORDS = 100  # DescribeAlarms' and DescribeAlarmHistory's MaxRecords: 1 to 100
DEFAULT_RECORDS = {"DescribeAlarms": 50, "DescribeAlarmHistory": 100}

# (account, region) -> alarm name -> [history item]; AWS keeps an alarm's history after it is
# deleted, so it lives beside the alarms, not in them.
HISTORY = {}

_hooks = {}  # "lock", "emit", "log": the launcher's, given by connect() before it serves
_cbor = {}  # "module": cbor2, once patch() found it


def connect(lock, emit, log):
    _hooks.update(lock=lock, emit=emit, log=log)


class Refusal(Exception):
    """An error answered as AWS would: HTTP status, error code (the Smithy shape's name), message."""

    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def not_emulated(what):
    return Refusal("NotEmulated", f"tagrelay's local CloudWatch does not emulate {what}")


def now():
    return datetime.now(timezone.utc)


def aware(moment):
    """moto's utcnow() is naive UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def event_time(moment):
    """CloudWatch's event and reason timestamps: 2019-10-02T17:04:40.989+0000."""
    moment = aware(moment)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}+0000"


# ----------------------------------------------------------------------------------------------
# moto's model: initial state, state kept on update, transitions, history and events.


def patch():
    """Patches moto's CloudWatch model and query responses (after connect())."""
    from moto.cloudwatch.models import Alarm, CloudWatchBackend
    from moto.cloudwatch.responses import CloudWatchResponse

    try:
        import cbor2

        _cbor["module"] = cbor2
    except ImportError:
        # The rest of the local AWS still serves; every CBOR request is refused naming the cause.
        _hooks["log"]("cbor2 is not installed (run `make tools`): CloudWatch over CBOR is refused")

    lock = _hooks["lock"]
    init, put_metric_alarm, call_action = Alarm.__init__, CloudWatchBackend.put_metric_alarm, CloudWatchResponse.call_action

    def init_insufficient(self, *args, **kwargs):
        init(self, *args, **kwargs)
        # A new alarm has not been evaluated (the User Guide's metric math sample leaves
        # "Unchecked: Initial alarm creation" in INSUFFICIENT_DATA; composite alarms too).
        self.state_value = "INSUFFICIENT_DATA"
        self.state_reason = INITIAL_REASON
        self.state_reason_data = None
        self.state_transitioned_timestamp = None

    def put_keeping_state(self, name, *args, **kwargs):
        with lock:
            before = self.alarms.get(name)
            alarm = put_metric_alarm(self, name, *args, **kwargs)
            if before is not None:
                for field in ("state_value", "state_reason", "state_reason_data", "state_updated_timestamp",
                              "state_transitioned_timestamp", "history"):
                    setattr(alarm, field, getattr(before, field, None))
            return alarm

    def locked_call_action(self):
        with lock:
            return call_action(self)

    Alarm.__init__ = init_insufficient
    Alarm.update_state = update_state
    CloudWatchBackend.put_metric_alarm = put_keeping_state
    CloudWatchResponse.call_action = locked_call_action


def update_state(alarm, reason, reason_data, state_value):
    """Replaces moto's Alarm.update_state (SetAlarmState, whichever protocol asked)."""
    with _hooks["lock"]:
        old = {"value": alarm.state_value, "reason": alarm.state_reason, "reason_data": alarm.state_reason_data,
               "timestamp": alarm.state_updated_timestamp}
        at = now()
        alarm.state_reason, alarm.state_reason_data, alarm.state_value = reason, reason_data, state_value
        alarm.state_updated_timestamp = at
        if old["value"] == state_value:
            # SetAlarmState's actions run only "when the updated state differs from the previous
            # value" (API reference); events and history follow the same rule here.
            return
        alarm.state_transitioned_timestamp = at
        new = {"value": state_value, "reason": reason, "reason_data": reason_data, "timestamp": at}
        account, region = account_of(alarm), alarm.region_name
        HISTORY.setdefault((account, region), {}).setdefault(alarm.name, []).append({
            "AlarmName": alarm.name,
            "AlarmType": alarm_type(alarm),
            "Timestamp": at,
            "HistoryItemType": "StateUpdate",
            "HistorySummary": f"Alarm updated from {old['value']} to {state_value}",
            "HistoryData": json.dumps({"version": "1.0", "oldState": history_state(old),
                                       "newState": history_state(new)}, separators=(",", ":")),
        })
        _hooks["emit"]("aws.cloudwatch", DETAIL_TYPE, region, account, [alarm.alarm_arn], {
            "alarmName": alarm.name,
            "state": event_state(new),
            "previousState": event_state(old),
            "configuration": configuration(alarm),
        })


def account_of(alarm):
    # arn:aws:cloudwatch:<region>:<account>:alarm:<name>
    parts = alarm.alarm_arn.split(":")
    return parts[4] if len(parts) > 5 else DEFAULT_ACCOUNT_ID


def alarm_type(alarm):
    return "CompositeAlarm" if alarm.rule is not None else "MetricAlarm"


def reason_data_object(text):
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def history_state(state):
    """oldState/newState in HistoryData, as CloudWatch writes them (stateReasonData an object)."""
    entry = {"stateValue": state["value"], "stateReason": state["reason"]}
    data = reason_data_object(state["reason_data"])
    if data is not None:
        entry["stateReasonData"] = data
    return entry


def event_state(state):
    """state/previousState of the event (reasonData a JSON string, only when there is one)."""
    entry = {"value": state["value"], "reason": state["reason"], "timestamp": event_time(state["timestamp"])}
    if state["reason_data"]:
        entry["reasonData"] = state["reason_data"]
    return entry


def configuration(alarm):
    """detail.configuration as in the User Guide's samples: the metric, or the composite's rule."""
    if alarm.rule is not None:
        return {"alarmRule": alarm.rule}
    config = {}
    if alarm.description:
        config["description"] = alarm.description
    if alarm.metric_name:
        config["metrics"] = [{
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, alarm.alarm_arn)),
            "metricStat": {
                "metric": {"dimensions": {d.name: d.value for d in alarm.dimensions}, "name": alarm.metric_name,
                           "namespace": alarm.namespace},
                "period": alarm.period,
                "stat": alarm.statistic or alarm.extended_statistic,
            },
            "returnData": True,
        }]
    return config


# ----------------------------------------------------------------------------------------------
# The RPC v2 CBOR front.


def handles(path):
    return path.startswith(SERVICE_PATH)


def serve(environ, start_response):
    """A WSGI answer to POST /service/GraniteServiceVersion20100801/operation/<Op>."""
    operation = environ.get("PATH_INFO", "")[len(SERVICE_PATH):]
    try:
        cbor2 = _cbor.get("module")
        if cbor2 is None:
            raise Refusal("NotEmulated", "cbor2 is not installed in the local AWS's venv: run `make tools`", 500)
        if environ.get("REQUEST_METHOD") != "POST":
            raise Refusal("NotEmulated", f"{environ.get('REQUEST_METHOD')} {operation}: RPC v2 CBOR is POST only", 405)
        if environ.get("HTTP_SMITHY_PROTOCOL") != "rpc-v2-cbor":
            raise not_emulated(f"{operation} without the header smithy-protocol: rpc-v2-cbor")
        handler = OPERATIONS.get(operation)
        if handler is None:
            raise not_emulated(f"the operation {operation!r} (emulated: {', '.join(sorted(OPERATIONS))})")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            params = cbor2.loads(body) if body else {}
        except Exception as err:  # noqa: BLE001 - any decoding failure is the client's
            raise Refusal("SerializationException", f"{operation}: the body is not CBOR: {err}") from err
        if not isinstance(params, dict):
            raise Refusal("SerializationException", f"{operation}: the body is not a CBOR map")
        region = region_of(environ)
        with _hooks["lock"]:
            from moto.cloudwatch.models import cloudwatch_backends

            backend = cloudwatch_backends[DEFAULT_ACCOUNT_ID][region]
            answer = handler(backend, params)
        return respond(start_response, "200 OK", answer)
    except Refusal as refusal:
        if refusal.code == "NotEmulated":
            _hooks["log"](f"CloudWatch refused: {refusal.message}")
        return refuse(start_response, refusal)
    except Exception as err:  # noqa: BLE001 - moto's own errors carry their code
        code = getattr(err, "code", None)
        if isinstance(code, str):
            message = getattr(err, "message", None) or str(err) or code
            return refuse(start_response, Refusal(code, message))
        _hooks["log"](f"CloudWatch {operation} failed in the emulation: {err!r}")
        return refuse(start_response, Refusal("InternalServiceError", f"{operation}: {err!r}", 500))


def region_of(environ):
    """The region of the SigV4 credential scope (…/<date>/<region>/monitoring/aws4_request)."""
    authorization = environ.get("HTTP_AUTHORIZATION", "")
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[2] if len(scope) > 3 else "us-east-1"


def headers(length):
    return [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor"),
            ("x-amzn-requestid", str(uuid.uuid4())), ("Content-Length", str(length))]


def respond(start_response, status, answer):
    data = _cbor["module"].dumps(answer)
    start_response(status, headers(len(data)))
    return [data]


def refuse(start_response, refusal):
    cbor2 = _cbor.get("module")
    body = {"__type": f"{NAMESPACE}#{refusal.code}", "message": refusal.message}
    data = cbor2.dumps(body) if cbor2 else json.dumps(body).encode()
    reason = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(refusal.status, "Error")
    side = "Sender" if refusal.status < 500 else "Receiver"
    start_response(f"{refusal.status} {reason}",
                   headers(len(data)) + [("x-amzn-query-error", f"{refusal.code};{side}")])
    return [data]


def timestamp(moment):
    """A Smithy timestamp in CBOR: tag 1, epoch seconds as a float (what the SDK's encoder writes)."""
    return _cbor["module"].CBORTag(1, aware(moment).timestamp())


def only(params, operation, allowed):
    """Refuses a parameter this front does not emulate, naming it."""
    for name in params:
        if name not in allowed:
            raise not_emulated(f"{operation}'s parameter {name}")


def text(params, name, required=False):
    value = params.get(name)
    if value is None and required:
        raise Refusal("MissingParameter", f"The request must contain the parameter {name}.")
    if value is not None and not isinstance(value, str):
        raise Refusal("ValidationError", f"1 validation error detected: {name} must be a string")
    return value


def strings(params, name):
    value = params.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Refusal("ValidationError", f"1 validation error detected: {name} must be a list of strings")
    return value


def page(params, operation, items):
    """(this page, NextToken or None): NextToken is the offset of the next item."""
    size = params.get("MaxRecords", DEFAULT_RECORDS[operation])
    if not isinstance(size, int) or not 1 <= size <= MAX_RECORDS:
        raise Refusal("ValidationError", "1 validation error detected: Value at 'maxRecords' failed to satisfy "
                                         f"constraint: Member must have value between 1 and {MAX_RECORDS}")
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise Refusal("InvalidNextToken", "The service couldn't process the next token.") from None
    rest = items[start:start + size]
    return rest, (str(start + size) if start + size < len(items) else None)


def alarm_types(params):
    types = strings(params, "AlarmTypes") or ["MetricAlarm"]  # "If you omit this parameter, only metric alarms"
    for kind in types:
        if kind not in ("MetricAlarm", "CompositeAlarm"):
            raise not_emulated(f"AlarmTypes {kind}")
    return types


def describe_alarms(backend, params):
    only(params, "DescribeAlarms", {"AlarmNames", "AlarmNamePrefix", "AlarmTypes", "StateValue", "MaxRecords",
                                    "NextToken"})
    names, prefix, state = strings(params, "AlarmNames"), text(params, "AlarmNamePrefix"), text(params, "StateValue")
    if len(names) > MAX_NAMES:
        raise Refusal("ValidationError", f"1 validation error detected: Value '{names}' at 'alarmNames' failed to "
                                         f"satisfy constraint: Member must have length less than or equal to {MAX_NAMES}")
    if names and prefix is not None:
        raise Refusal("InvalidParameterCombination", "AlarmNames and AlarmNamePrefix cannot be used together.")
    types = alarm_types(params)
    alarms = sorted((a for a in backend.alarms.values()
                     if alarm_type(a) in types
                     and (not names or a.name in names)
                     and (prefix is None or a.name.startswith(prefix))
                     and (state is None or a.state_value == state)), key=lambda a: a.name)
    shown, token = page(params, "DescribeAlarms", alarms)
    answer = {"MetricAlarms": [metric_alarm(a) for a in shown if a.rule is None],
              "CompositeAlarms": [composite_alarm(a) for a in shown if a.rule is not None]}
    if token:
        answer["NextToken"] = token
    return answer


def common(alarm):
    fields = {
        "AlarmName": alarm.name,
        "AlarmArn": alarm.alarm_arn,
        "AlarmConfigurationUpdatedTimestamp": timestamp(alarm.configuration_updated_timestamp),
        "ActionsEnabled": bool(alarm.actions_enabled),
        "OKActions": list(alarm.ok_actions or []),
        "AlarmActions": list(alarm.alarm_actions or []),
        "InsufficientDataActions": list(alarm.insufficient_data_actions or []),
        "StateValue": alarm.state_value,
        "StateReason": alarm.state_reason,
        "StateUpdatedTimestamp": timestamp(alarm.state_updated_timestamp),
    }
    if alarm.description:
        fields["AlarmDescription"] = alarm.description
    if alarm.state_reason_data:
        fields["StateReasonData"] = alarm.state_reason_data
    # Unset until the state value first changes (the port's reading of the API reference, which
    # says only "the date and time that the alarm's StateValue most recently changed").
    if getattr(alarm, "state_transitioned_timestamp", None) is not None:
        fields["StateTransitionedTimestamp"] = timestamp(alarm.state_transitioned_timestamp)
    return fields


def metric_alarm(alarm):
    fields = common(alarm)
    optional = {"MetricName": alarm.metric_name, "Namespace": alarm.namespace, "Statistic": alarm.statistic,
                "ExtendedStatistic": alarm.extended_statistic, "Unit": alarm.unit,
                "ComparisonOperator": alarm.comparison_operator, "TreatMissingData": alarm.treat_missing_data,
                "ThresholdMetricId": alarm.threshold_metric_id,
                "EvaluateLowSampleCountPercentile": alarm.evaluate_low_sample_count_percentile}
    fields.update({k: v for k, v in optional.items() if v is not None})
    for name, value in (("Period", alarm.period), ("EvaluationPeriods", alarm.evaluation_periods),
                        ("DatapointsToAlarm", alarm.datapoints_to_alarm)):
        if value is not None:
            fields[name] = int(value)
    if alarm.threshold is not None:
        fields["Threshold"] = float(alarm.threshold)
    fields["Dimensions"] = [{"Name": d.name, "Value": d.value} for d in alarm.dimensions]
    return fields


def composite_alarm(alarm):
    return dict(common(alarm), AlarmRule=alarm.rule)


def describe_alarm_history(backend, params):
    only(params, "DescribeAlarmHistory", {"AlarmName", "AlarmTypes", "HistoryItemType", "StartDate", "EndDate",
                                          "MaxRecords", "NextToken", "ScanBy"})
    kind = text(params, "HistoryItemType")
    if kind != "StateUpdate":
        # Only state changes are recorded here: answering ConfigurationUpdate or Action items (or
        # all types) with none would be a silent approximation.
        raise not_emulated(f"DescribeAlarmHistory for HistoryItemType {kind or '(all types)'}: ask for StateUpdate")
    name, types = text(params, "AlarmName"), alarm_types(params)
    start, end = params.get("StartDate"), params.get("EndDate")
    for field, value in (("StartDate", start), ("EndDate", end)):
        if value is not None and not isinstance(value, datetime):
            raise Refusal("ValidationError", f"1 validation error detected: {field} must be a timestamp")
    scan = text(params, "ScanBy") or "TimestampDescending"
    if scan not in ("TimestampDescending", "TimestampAscending"):
        raise Refusal("ValidationError", f"1 validation error detected: Value '{scan}' at 'scanBy' failed to satisfy "
                                         "constraint: Member must satisfy enum value set: "
                                         "[TimestampDescending, TimestampAscending]")
    histories = HISTORY.get((backend.account_id, backend.region_name), {})
    items = [item for alarm, entries in histories.items() if name is None or alarm == name for item in entries
             if item["AlarmType"] in types
             and (start is None or item["Timestamp"] >= aware(start))
             and (end is None or item["Timestamp"] <= aware(end))]
    items.sort(key=lambda item: item["Timestamp"], reverse=scan == "TimestampDescending")
    shown, token = page(params, "DescribeAlarmHistory", items)
    answer = {"AlarmHistoryItems": [dict(item, Timestamp=timestamp(item["Timestamp"])) for item in shown]}
    if token:
        answer["NextToken"] = token
    return answer


def set_alarm_state(backend, params):
    only(params, "SetAlarmState", {"AlarmName", "StateValue", "StateReason", "StateReasonData"})
    name, value = text(params, "AlarmName", True), text(params, "StateValue", True)
    reason = text(params, "StateReason", True)
    # moto checks the JSON, the alarm and the state value, with AWS's codes.
    backend.set_alarm_state(name, reason, text(params, "StateReasonData"), value)
    return {}


def put_metric_alarm(backend, params):
    only(params, "PutMetricAlarm", {"AlarmName", "AlarmDescription", "ActionsEnabled", "OKActions", "AlarmActions",
                                    "InsufficientDataActions", "MetricName", "Namespace", "Statistic",
                                    "ExtendedStatistic", "Dimensions", "Period", "Unit", "EvaluationPeriods",
                                    "DatapointsToAlarm", "Threshold", "ComparisonOperator", "TreatMissingData",
                                    "EvaluateLowSampleCountPercentile", "ThresholdMetricId", "Tags"})
    name = text(params, "AlarmName", True)
    text(params, "ComparisonOperator", True)
    if params.get("EvaluationPeriods") is None:
        raise Refusal("MissingParameter", "The request must contain the parameter EvaluationPeriods.")
    existing = backend.alarms.get(name)
    if existing is not None and existing.rule is not None:
        raise Refusal("InvalidParameterCombination", f"{name} is a composite alarm")
    backend.put_metric_alarm(
        name=name, namespace=params.get("Namespace"), metric_name=params.get("MetricName"),
        comparison_operator=params.get("ComparisonOperator"), evaluation_periods=params.get("EvaluationPeriods"),
        period=params.get("Period"), threshold=params.get("Threshold"), statistic=params.get("Statistic"),
        description=params.get("AlarmDescription"), dimensions=params.get("Dimensions") or [],
        alarm_actions=strings(params, "AlarmActions"), datapoints_to_alarm=params.get("DatapointsToAlarm"),
        extended_statistic=params.get("ExtendedStatistic"), ok_actions=strings(params, "OKActions"),
        insufficient_data_actions=strings(params, "InsufficientDataActions"), unit=params.get("Unit"),
        actions_enabled=params.get("ActionsEnabled", True), treat_missing_data=params.get("TreatMissingData"),
        evaluate_low_sample_count_percentile=params.get("EvaluateLowSampleCountPercentile"),
        threshold_metric_id=params.get("ThresholdMetricId"), rule=None, tags=params.get("Tags") or [],
    )
    return {}


def put_composite_alarm(backend, params):
    only(params, "PutCompositeAlarm", {"AlarmName", "AlarmRule", "AlarmDescription", "ActionsEnabled",
                                       "AlarmActions", "OKActions", "InsufficientDataActions", "Tags"})
    name, rule = text(params, "AlarmName", True), text(params, "AlarmRule", True)
    existing = backend.alarms.get(name)
    if existing is not None and existing.rule is None:
        raise Refusal("InvalidParameterCombination", f"{name} is a metric alarm")
    # The rule is stored, not evaluated: the composite's state moves only by SetAlarmState.
    backend.put_metric_alarm(
        name=name, namespace=None, metric_name=None, comparison_operator=None, evaluation_periods=None,
        period=None, threshold=None, statistic=None, description=params.get("AlarmDescription"), dimensions=[],
        alarm_actions=strings(params, "AlarmActions"), ok_actions=strings(params, "OKActions"),
        insufficient_data_actions=strings(params, "InsufficientDataActions"),
        actions_enabled=params.get("ActionsEnabled", True), rule=rule, tags=params.get("Tags") or [],
    )
    return {}


def delete_alarms(backend, params):
    only(params, "DeleteAlarms", {"AlarmNames"})
    names = strings(params, "AlarmNames")
    missing = [n for n in names if n not in backend.alarms]
    if missing:
        # "If you specify an incorrect alarm name ..., no alarms are deleted." (API reference)
        raise Refusal("ResourceNotFound", f"Could not find alarm(s): {', '.join(missing)}")
    backend.delete_alarms(names)
    return {}


OPERATIONS = {
    "DescribeAlarms": describe_alarms,
    "DescribeAlarmHistory": describe_alarm_history,
    "SetAlarmState": set_alarm_state,
    "PutMetricAlarm": put_metric_alarm,
    "PutCompositeAlarm": put_composite_alarm,
    "DeleteAlarms": delete_alarms,
}
