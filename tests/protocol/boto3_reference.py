"""Each documented error and limit of each operation workers and deciders use,
driven with boto3 (client-side validation off, so the server must validate)
and, for a few commands, the AWS CLI, on both halves of an endpoint. Run by tests/e2e/local_endpoint.rs:

    python boto3_reference.py URL embedded     # the project's endpoint: every case must hold
    python boto3_reference.py URL localstack   # LocalStack/moto: the same table, known differences listed

Then, against the embedded endpoint only, the disconnect cases, for
GetActivityTask, PollForActivityTask and PollForDecisionTask: a poll whose
socket closes, whose client process is killed, or whose client times out
first stops counting at once; with 1,000 polls waiting the next is refused
(ActivityWorkerLimitExceeded, LimitExceededFault); after 1,000 abandoned polls
a poll still gets its task. They need the endpoint's /_local/state, which
LocalStack does not have, to see the waiting count.
"""
import json
import socket
import subprocess
import sys
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions

URL, BACKEND = sys.argv[1], sys.argv[2]
ROLE = "arn:aws:iam::000000000000:role/protocol"
session = boto3.session.Session(aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1")
# A poll the server accepts and holds times out here and counts as accepted.
raw = botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}, read_timeout=5)
sfn = session.client("stepfunctions", endpoint_url=URL, config=raw)
swf = session.client("swf", endpoint_url=URL, config=raw)

# What LocalStack (moto for SWF) answers differently, and why. A difference
# not listed here, or listed but not seen, fails the run.
LOCALSTACK_DIFFERENCES = {
    'GetActivityTask workerName empty': ('OK', 'LocalStack does not check member lengths'),
    'GetActivityTask workerName 81': ('OK', 'LocalStack does not check member lengths'),
    'GetActivityTask activityArn 257': ('InvalidArn', 'LocalStack does not check member lengths'),
    'SendTaskHeartbeat token empty': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskHeartbeat token 2049': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskHeartbeat token unknown': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskSuccess token empty': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskSuccess token 2049': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskSuccess token unknown': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskFailure token empty': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskFailure token 2049': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskFailure token unknown': ('InvalidToken', 'LocalStack answers InvalidToken for any token it does not hold; AWS tells malformed (ValidationException), foreign (InvalidToken) and unknown (TaskDoesNotExist) apart'),
    'SendTaskFailure error 257': ('InvalidToken', 'LocalStack looks the token up before checking lengths, and the token here is unknown'),
    'SendTaskFailure cause 32769': ('InvalidToken', 'LocalStack looks the token up before checking lengths, and the token here is unknown'),
    'SendTaskSuccess output 262145': ('InvalidToken', 'LocalStack looks the token up before checking lengths, and the token here is unknown'),
    'StartExecution input 262145': ('OK', 'LocalStack does not check member lengths'),
    'StartExecution name 81': ('OK', 'LocalStack does not check member lengths'),
    'SendTaskSuccess repeated': ('InvalidToken', 'LocalStack answers a closed task InvalidToken where AWS answers TaskTimedOut (both are closed-task answers to the worker)'),
    'SendTaskFailure after success': ('OK', 'LocalStack accepts a failure for a task that was already reported'),
    'SendTaskHeartbeat after success': ('InvalidToken', 'LocalStack answers a closed task InvalidToken where AWS answers TaskTimedOut (both are closed-task answers to the worker)'),
    "PollForActivityTask task list ''": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'a:b'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'a/b'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'a|b'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'a\\x01b'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list ' a'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'a '": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'arn'": ('OK', 'moto does not validate task list names or identities'),
    "PollForActivityTask task list 'xxxxxxxxxxxx'": ('OK', 'moto does not validate task list names or identities'),
    'PollForActivityTask identity 257': ('OK', 'moto does not validate task list names or identities'),
    'PollForActivityTask domain 257': ('UnknownResourceFault', 'moto looks the domain up before checking its length'),
    'RequestCancelActivityTask unknown id': ('InternalFailure', 'moto does not implement the RequestCancelActivityTask decision (InternalFailure)'),
    'CreateActivity name 81': ('InvalidName', 'LocalStack answers a long name as an invalid one; the reference constrains its length (ValidationException)'),
    'StopExecution error 257': ('ExecutionDoesNotExist', 'LocalStack looks the execution up before checking lengths'),
    'CreateStateMachine type': ('OK', 'LocalStack does not check the type enum'),
    "RegisterDomain name with ':'": ('OK', 'moto does not validate domain names'),
    'StartWorkflowExecution 6 tags': ('OK', 'moto does not limit tagList to 5 tags'),
    'SignalWorkflowExecution signalName 257': ('InternalError', 'moto fails on an unknown workflow before checking lengths'),
    'cli get-activity-task worker name 81': ('OK', 'LocalStack does not check member lengths'),
    'cli send-task-failure error 257': ('InvalidToken', 'LocalStack looks the token up before checking lengths'),
    'cli poll-for-activity-task task list a|b': ('OK', 'moto does not validate task list names'),
    'RegisterActivityType in a deprecated domain': ('OK', 'moto registers types in a deprecated domain'),
    'StartWorkflowExecution in a deprecated domain': ('OK', 'moto starts executions in a deprecated domain'),
    'scheduleToStartTimeout': (None, 'moto does not enforce scheduleToStartTimeout'),
    'cancel unknown id': (None, 'moto does not implement the RequestCancelActivityTask decision'),
}

failures, seen_differences = [], set()


def answer(call, **kwargs):
    try:
        call(**kwargs)
        return "OK"
    except botocore.exceptions.ReadTimeoutError:
        return "OK"  # accepted, and held as a long poll
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def case(label, expected, call, **kwargs):
    got = answer(call, **kwargs)
    if got == expected:
        return
    if BACKEND == "localstack" and label in LOCALSTACK_DIFFERENCES:
        want, _reason = LOCALSTACK_DIFFERENCES[label]
        seen_differences.add(label)
        if got == want:
            return
    failures.append(f"{label}: expected {expected}, got {got}")


def wait_for(what, check, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


# ---- Step Functions ----------------------------------------------------------
name = "ref-" + uuid.uuid4().hex[:8]
arn = sfn.create_activity(name=name)["activityArn"]
definition = {"StartAt": "W", "States": {"W": {"Type": "Task", "Resource": arn, "TimeoutSeconds": 60, "End": True}}}
sm = sfn.create_state_machine(name="sm-" + name, roleArn=ROLE, definition=json.dumps(definition))["stateMachineArn"]
foreign = "wa1-" + str(uuid.uuid4())

# Polls a server accepts stay live after the client gives up (and can still
# be handed a task), so these go to an activity of their own.
polled = sfn.create_activity(name=name + "-polls")["activityArn"]
case("GetActivityTask workerName empty", "ValidationException", sfn.get_activity_task, activityArn=polled, workerName="")
case("GetActivityTask workerName 81", "ValidationException", sfn.get_activity_task, activityArn=polled,
     workerName="w" * 81)
case("GetActivityTask activityArn 257", "ValidationException", sfn.get_activity_task, activityArn=arn + "x" * 257)
case("GetActivityTask missing activity", "ActivityDoesNotExist", sfn.get_activity_task, activityArn=arn + "-gone")
case("GetActivityTask malformed ARN", "InvalidArn", sfn.get_activity_task, activityArn="not-an-arn")
for op, call, extra in [
    ("SendTaskHeartbeat", sfn.send_task_heartbeat, {}),
    ("SendTaskSuccess", sfn.send_task_success, {"output": "{}"}),
    ("SendTaskFailure", sfn.send_task_failure, {}),
]:
    case(f"{op} token empty", "ValidationException", call, taskToken="", **extra)
    case(f"{op} token 2049", "ValidationException", call, taskToken="t" * 2049, **extra)
    case(f"{op} token foreign", "InvalidToken", call, taskToken="garbage", **extra)
    case(f"{op} token unknown", "TaskDoesNotExist", call, taskToken=foreign, **extra)
case("SendTaskFailure error 257", "ValidationException", sfn.send_task_failure, taskToken=foreign, error="e" * 257)
case("SendTaskFailure cause 32769", "ValidationException", sfn.send_task_failure, taskToken=foreign, cause="c" * 32769)
case("SendTaskSuccess output 262145", "ValidationException", sfn.send_task_success, taskToken=foreign,
     output='"' + "o" * 262143 + '"')
case("StartExecution input 262145", "ValidationException", sfn.start_execution, stateMachineArn=sm,
     input='"' + "i" * 262143 + '"')
case("StartExecution input not JSON", "InvalidExecutionInput", sfn.start_execution, stateMachineArn=sm, input="nope")
case("StartExecution name 81", "ValidationException", sfn.start_execution, stateMachineArn=sm, name="n" * 81)

# Control-plane operations check their members too.
case("CreateActivity name 81", "ValidationException", sfn.create_activity, name="n" * 81)
case("StopExecution error 257", "ValidationException", sfn.stop_execution,
     executionArn=sm.replace(":stateMachine:", ":execution:") + ":x", error="e" * 257)
case("ListExecutions statusFilter", "ValidationException", sfn.list_executions, stateMachineArn=sm,
     statusFilter="SLEEPING")
case("CreateStateMachine type", "ValidationException", sfn.create_state_machine, name="t-" + name,
     roleArn=ROLE, definition=json.dumps(definition), type="FAST")

# A report applied, then repeated (its response lost): the task is closed.
execution = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
token = sfn.get_activity_task(activityArn=arn, workerName="ref")["taskToken"]
case("SendTaskSuccess applied", "OK", sfn.send_task_success, taskToken=token, output="{}")
# LocalStack applies a report on its own schedule: the repeat is sent once the
# service treats the task as closed (a heartbeat says so), as a worker's retry
# after a lost response would be.
wait_for("the first report to be applied", lambda: answer(
    sfn.send_task_heartbeat, taskToken=token) in ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist"))
case("SendTaskSuccess repeated", "TaskTimedOut", sfn.send_task_success, taskToken=token, output="{}")
case("SendTaskFailure after success", "TaskTimedOut", sfn.send_task_failure, taskToken=token, error="E")
case("SendTaskHeartbeat after success", "TaskTimedOut", sfn.send_task_heartbeat, taskToken=token)

# The worker name is left out of the history when the poll gave none.
execution = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
token = sfn.get_activity_task(activityArn=arn)["taskToken"]
sfn.send_task_success(taskToken=token, output="{}")
started = [e for e in sfn.get_execution_history(executionArn=execution)["events"] if e["type"] == "ActivityStarted"]
if started and "workerName" in started[0].get("activityStartedEventDetails", {}):
    failures.append(f"ActivityStarted without a worker name carries one: {started[0]}")

# ---- SWF -----------------------------------------------------------------------
domain = "ref-" + uuid.uuid4().hex[:8]


def register_domain(name):
    """A domain with activity type t and workflow type w, version 1."""
    swf.register_domain(name=name, workflowExecutionRetentionPeriodInDays="1")
    swf.register_activity_type(domain=name, name="t", version="1", defaultTaskStartToCloseTimeout="60",
                               defaultTaskHeartbeatTimeout="NONE", defaultTaskScheduleToStartTimeout="NONE",
                               defaultTaskScheduleToCloseTimeout="NONE")
    swf.register_workflow_type(domain=name, name="w", version="1", defaultTaskStartToCloseTimeout="60",
                               defaultExecutionStartToCloseTimeout="600", defaultChildPolicy="TERMINATE")


register_domain(domain)
case("RegisterDomain name with ':'", "ValidationException", swf.register_domain, name="a:" + uuid.uuid4().hex[:8],
     workflowExecutionRetentionPeriodInDays="1")
case("StartWorkflowExecution 6 tags", "ValidationException", swf.start_workflow_execution, domain=domain,
     workflowId="w1", workflowType={"name": "w", "version": "1"}, taskList={"name": "l"}, tagList=["t"] * 6)
case("SignalWorkflowExecution signalName 257", "ValidationException", swf.signal_workflow_execution,
     domain=domain, workflowId="w1", signalName="s" * 257)
short = botocore.config.Config(parameter_validation=False, retries={"max_attempts": 1}, read_timeout=70)
swf_poll = session.client("swf", endpoint_url=URL, config=short)


def poll_activity(list_name="acts", **kw):
    return swf_poll.poll_for_activity_task(domain=domain, taskList={"name": list_name}, **kw)


for bad in ["", "a:b", "a/b", "a|b", "a\u0001b", " a", "a ", "arn", "x" * 257]:
    case(f"PollForActivityTask task list {bad[:12]!r}", "ValidationException", poll_activity, list_name=bad)
case("PollForActivityTask identity 257", "ValidationException", poll_activity, identity="i" * 257)
case("PollForActivityTask domain 257", "ValidationException", swf.poll_for_activity_task,
     domain="d" * 257, taskList={"name": "acts"})
case("PollForActivityTask unknown domain", "UnknownResourceFault", swf.poll_for_activity_task,
     domain=domain + "-gone", taskList={"name": "acts"})
case("RecordActivityTaskHeartbeat token 1025", "ValidationException", swf.record_activity_task_heartbeat,
     taskToken="t" * 1025)
case("RespondActivityTaskFailed reason 257", "ValidationException", swf.respond_activity_task_failed,
     taskToken="swf1-x", reason="r" * 257)
case("RespondActivityTaskCompleted result 32769", "ValidationException", swf.respond_activity_task_completed,
     taskToken="swf1-x", result="r" * 32769)


def start_workflow():
    # A decision task list per workflow: earlier workflows' decision tasks
    # must not be taken for this one's.
    wid = "wf-" + uuid.uuid4().hex[:8]
    run = swf.start_workflow_execution(domain=domain, workflowId=wid, workflowType={"name": "w", "version": "1"},
                                       taskList={"name": wid})["runId"]
    task = wait_for("a decision task", lambda: (lambda t: t if t.get("taskToken") else None)(
        swf_poll.poll_for_decision_task(domain=domain, taskList={"name": wid})))
    return {"workflowId": wid, "runId": run}, task["taskToken"]


def history(execution):
    return [e["eventType"] for e in
            swf.get_workflow_execution_history(domain=domain, execution=execution)["events"]]


def schedule(activity_id, **extra):
    attrs = {"activityType": {"name": "t", "version": "1"}, "activityId": activity_id, "taskList": {"name": "acts"}}
    attrs.update(extra)
    return {"decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": attrs}


# A refused RespondDecisionTaskCompleted changes nothing and can be resent.
execution, token = start_workflow()
before = history(execution)
timer = {"decisionType": "StartTimer", "startTimerDecisionAttributes": {"timerId": "t1", "startToFireTimeout": "5"}}
if BACKEND == "embedded":
    case("RespondDecisionTaskCompleted unsupported decision", "ValidationException",
         swf.respond_decision_task_completed, taskToken=token, decisions=[schedule("a1"), timer])
    if history(execution) != before:
        failures.append(f"a refused decision request changed the history: {before} -> {history(execution)}")
case("RespondDecisionTaskCompleted after a refusal", "OK", swf.respond_decision_task_completed,
     taskToken=token, decisions=[schedule("a1")])
got = poll_activity()
if got.get("activityId") != "a1":
    failures.append(f"the scheduled activity was not handed out: {got}")
else:
    case("RespondActivityTaskCompleted", "OK", swf.respond_activity_task_completed, taskToken=got["taskToken"], result="r")
    case("RespondActivityTaskCompleted repeated", "UnknownResourceFault", swf.respond_activity_task_completed,
         taskToken=got["taskToken"], result="r")
    case("RecordActivityTaskHeartbeat closed", "UnknownResourceFault", swf.record_activity_task_heartbeat,
         taskToken=got["taskToken"])

# scheduleToStartTimeout: a task nobody takes times out.
execution, token = start_workflow()
swf.respond_decision_task_completed(taskToken=token, decisions=[schedule("late", scheduleToStartTimeout="2",
                                                                         taskList={"name": "nobody-polls"})])
try:
    wait_for("the schedule-to-start timeout", lambda: "ActivityTaskTimedOut" in history(execution), timeout=12)
except AssertionError as e:
    if BACKEND == "localstack" and "scheduleToStartTimeout" in LOCALSTACK_DIFFERENCES:
        seen_differences.add("scheduleToStartTimeout")
    else:
        failures.append(f"scheduleToStartTimeout: {e}")

# RequestCancelActivityTask for an id never scheduled.
execution, token = start_workflow()
case("RequestCancelActivityTask unknown id", "OK", swf.respond_decision_task_completed, taskToken=token, decisions=[
    {"decisionType": "RequestCancelActivityTask", "requestCancelActivityTaskDecisionAttributes": {"activityId": "never"}}])
events = history(execution)
if "RequestCancelActivityTaskFailed" not in events or "ActivityTaskCancelRequested" in events:
    if BACKEND == "localstack" and "cancel unknown id" in LOCALSTACK_DIFFERENCES:
        seen_differences.add("cancel unknown id")
    else:
        failures.append(f"cancel of an unknown id: {events}")

# Deprecation.
case("DeprecateActivityType", "OK", swf.deprecate_activity_type, domain=domain,
     activityType={"name": "t", "version": "1"})
case("DeprecateActivityType again", "TypeDeprecatedFault", swf.deprecate_activity_type, domain=domain,
     activityType={"name": "t", "version": "1"})
case("DeprecateActivityType unknown", "UnknownResourceFault", swf.deprecate_activity_type, domain=domain,
     activityType={"name": "nope", "version": "1"})
case("DeprecateDomain", "OK", swf.deprecate_domain, name=domain)
case("DeprecateDomain again", "DomainDeprecatedFault", swf.deprecate_domain, name=domain)
case("RegisterActivityType in a deprecated domain", "OperationNotPermittedFault", swf.register_activity_type,
     domain=domain, name="t2", version="1")
case("StartWorkflowExecution in a deprecated domain", "OperationNotPermittedFault", swf.start_workflow_execution,
     domain=domain, workflowId="after-deprecation", workflowType={"name": "w", "version": "1"},
     taskList={"name": "l"})

# ---- the AWS CLI, for a few commands -------------------------------------------
import os

aws = os.path.join(os.path.dirname(sys.executable), "aws")
cli_env = dict(os.environ, AWS_ACCESS_KEY_ID="any", AWS_SECRET_ACCESS_KEY="any", AWS_DEFAULT_REGION="us-east-1",
               AWS_MAX_ATTEMPTS="1", AWS_PAGER="")


def cli(label, expected, *args):
    out = subprocess.run([aws, "--endpoint-url", URL, "--cli-read-timeout", "5", *args], env=cli_env,
                         capture_output=True, text=True, timeout=60)
    got = "OK" if out.returncode == 0 else next(
        (code for code in ("ValidationException", "ActivityDoesNotExist", "UnknownResourceFault", "InvalidArn",
                           "TaskDoesNotExist", "InvalidToken", "Read timeout") if code in out.stderr), out.stderr.strip())
    if got == "Read timeout":
        got = "OK"  # accepted, and held as a long poll
    if got == expected:
        return
    if BACKEND == "localstack" and label in LOCALSTACK_DIFFERENCES:
        seen_differences.add(label)
        if got == LOCALSTACK_DIFFERENCES[label][0]:
            return
    failures.append(f"{label}: expected {expected}, got {got}")


cli("cli get-activity-task worker name 81", "ValidationException", "stepfunctions", "get-activity-task",
    "--activity-arn", polled, "--worker-name", "w" * 81)
cli("cli send-task-failure error 257", "ValidationException", "stepfunctions", "send-task-failure",
    "--task-token", foreign, "--error", "e" * 257)
cli("cli describe-activity missing", "ActivityDoesNotExist", "stepfunctions", "describe-activity",
    "--activity-arn", arn + "-gone")
cli("cli poll-for-activity-task task list a|b", "ValidationException", "swf", "poll-for-activity-task",
    "--domain", domain, "--task-list", "name=a|b")

# ---- disconnects (the project's endpoint) ------------------------------------------
if BACKEND == "embedded":
    import urllib.request

    host, port = URL.split("//")[1].split(":")

    def local_state():
        with urllib.request.urlopen(URL + "/_local/state") as r:
            return json.load(r)

    def disconnects(label, target, body, waiting, child_call, impatient_call, limit, working):
        """The disconnect cases for one kind of poll. `waiting()` reads the
        waiting count; `child_call` is the call (Python source) a killed
        client process makes; `impatient_call(client)` makes it with a 1 s
        read timeout; `limit` is (error code, call) for the 1,001st poll;
        `working()` queues a task, polls it and says what went wrong, if anything."""
        body = json.dumps(body).encode()
        request = (f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-amz-json-1.0\r\n"
                   f"X-Amz-Target: {target}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

        def open_poll():
            s = socket.create_connection((host, int(port)))
            s.sendall(request)
            return s

        # A closed socket.
        s = open_poll()
        wait_for(f"{label}: the raw poll to wait", lambda: waiting() == 1)
        s.close()
        wait_for(f"{label}: the closed poll to stop counting", lambda: waiting() == 0, timeout=5)
        # A killed client process.
        service = target.split(".")[0]
        child = subprocess.Popen([sys.executable, "-c", (
            "import boto3, botocore.config, sys\n"
            "c = boto3.session.Session(aws_access_key_id='a', aws_secret_access_key='a', region_name='us-east-1')"
            f".client({'stepfunctions' if service == 'AWSStepFunctions' else 'swf'!r}, endpoint_url='{URL}', "
            "config=botocore.config.Config(read_timeout=70))\n"
            f"c.{child_call}\n")])
        wait_for(f"{label}: the child's poll to wait", lambda: waiting() == 1, timeout=30)
        child.kill()
        child.wait()
        wait_for(f"{label}: the killed client's poll to stop counting", lambda: waiting() == 0, timeout=5)
        # A client read timeout shorter than the hold.
        impatient = botocore.config.Config(read_timeout=1, retries={"max_attempts": 1})
        try:
            impatient_call(impatient)
        except botocore.exceptions.ReadTimeoutError:
            pass
        wait_for(f"{label}: the timed-out poll to stop counting", lambda: waiting() == 0, timeout=5)
        # 1,000 waiting polls: the next is refused; once they are abandoned,
        # a poll works.
        sockets = [open_poll() for _ in range(1000)]
        wait_for(f"{label}: 1,000 waiting polls", lambda: waiting() == 1000, timeout=30)
        code, call = limit
        case(f"{label} 1,001st poll", code, call)
        for s in sockets:
            s.close()
        wait_for(f"{label}: the abandoned polls to stop counting", lambda: waiting() == 0, timeout=15)
        problem = working()
        if problem:
            failures.append(f"{label}: after 1,000 abandoned polls: {problem}")
        if waiting() != 0:
            failures.append(f"{label}: the working poll still counts")

    def sfn_waiting():
        return next(a["pollers"] for a in local_state()["activities"] if a["arn"] == arn)

    def sfn_working():
        sfn.start_execution(stateMachineArn=sm, input=json.dumps({"after": "abandoned"}))
        task = sfn.get_activity_task(activityArn=arn, workerName="after")
        if json.loads(task.get("input", "{}")) != {"after": "abandoned"}:
            return f"no task: {task}"

    disconnects("GetActivityTask", "AWSStepFunctions.GetActivityTask", {"activityArn": arn}, sfn_waiting,
                f"get_activity_task(activityArn='{arn}')",
                lambda config: session.client("stepfunctions", endpoint_url=URL, config=config)
                .get_activity_task(activityArn=arn),
                ("ActivityWorkerLimitExceeded", lambda: sfn.get_activity_task(activityArn=arn)), sfn_working)

    # SWF, in a domain of its own (the table's is deprecated by now).
    dd = "disc-" + uuid.uuid4().hex[:8]
    register_domain(dd)

    def swf_waiting(kind, list_name):
        return next((l["pollers"] for l in local_state()["swf"]["taskLists"]
                     if l["domain"] == dd and l["kind"] == kind and l["taskList"] == list_name), 0)

    def swf_start(decisions):
        wid = "disc-" + uuid.uuid4().hex[:8]
        run = swf.start_workflow_execution(domain=dd, workflowId=wid, workflowType={"name": "w", "version": "1"},
                                           taskList={"name": decisions}, input="after abandoned")["runId"]
        return wid, run

    def swf_activity_working():
        wid, _ = swf_start("disc-deciders")
        token = swf_poll.poll_for_decision_task(domain=dd, taskList={"name": "disc-deciders"})["taskToken"]
        swf.respond_decision_task_completed(taskToken=token, decisions=[{
            "decisionType": "ScheduleActivityTask", "scheduleActivityTaskDecisionAttributes": {
                "activityType": {"name": "t", "version": "1"}, "activityId": "after",
                "taskList": {"name": "disc-acts"}, "input": "after abandoned"}}])
        task = swf_poll.poll_for_activity_task(domain=dd, taskList={"name": "disc-acts"})
        if task.get("activityId") != "after" or task.get("input") != "after abandoned":
            return f"no activity task: {task}"

    def swf_decision_working():
        wid, run = swf_start("disc-decisions")
        task = swf_poll.poll_for_decision_task(domain=dd, taskList={"name": "disc-decisions"})
        if task.get("workflowExecution") != {"workflowId": wid, "runId": run}:
            return f"no decision task: {task}"

    for op, list_name, kind, working in [
        ("PollForActivityTask", "disc-acts", "activity", swf_activity_working),
        ("PollForDecisionTask", "disc-decisions", "decision", swf_decision_working),
    ]:
        method = "poll_for_activity_task" if kind == "activity" else "poll_for_decision_task"
        request = {"domain": dd, "taskList": {"name": list_name}}
        disconnects(op, f"SimpleWorkflowService.{op}", request,
                    lambda kind=kind, list_name=list_name: swf_waiting(kind, list_name),
                    f"{method}(domain='{dd}', taskList={{'name': '{list_name}'}})",
                    lambda config, method=method, request=request: getattr(
                        session.client("swf", endpoint_url=URL, config=config), method)(**request),
                    ("LimitExceededFault", lambda method=method, request=request: getattr(swf, method)(**request)),
                    working)

unseen = set(LOCALSTACK_DIFFERENCES) - seen_differences if BACKEND == "localstack" else set()
for name in sorted(unseen):
    failures.append(f"listed difference not seen (remove it): {name}")
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("reference ok")
