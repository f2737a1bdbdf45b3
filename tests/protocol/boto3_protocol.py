"""Drives the embedded endpoint with boto3, an AWS SDK this project did not
write: activities, the long poll, task reports, executions, and the error
codes and shapes AWS documents. Run by tests/e2e/local_endpoint.rs:

    python boto3_protocol.py http://127.0.0.1:PORT
"""
import json
import sys
import threading
import time
import uuid

import boto3
import botocore.config
import botocore.exceptions

URL = sys.argv[1]
ROLE = "arn:aws:iam::000000000000:role/protocol"
session = boto3.session.Session(aws_access_key_id="any", aws_secret_access_key="any", region_name="us-east-1")
sfn = session.client("stepfunctions", endpoint_url=URL)
# Long polls need a read timeout above the service's poll time.
poller = session.client("stepfunctions", endpoint_url=URL,
                        config=botocore.config.Config(read_timeout=70, retries={"max_attempts": 1}))


def expect_error(code, call, **kwargs):
    try:
        call(**kwargs)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"{call.__name__}: expected {code}, got {got}: {e}"
        assert e.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.response
        assert e.response["Error"]["Message"], f"{code} has no message"
        return e.response["Error"]["Message"]
    raise AssertionError(f"{call.__name__}({kwargs}) did not fail with {code}")


def wait_for(what, check, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def local_state():
    import urllib.request
    with urllib.request.urlopen(URL + "/_local/state") as r:
        return json.load(r)


# Activities.
name = "proto-" + uuid.uuid4().hex[:8]
arn = sfn.create_activity(name=name)["activityArn"]
assert arn == f"arn:aws:states:us-east-1:000000000000:activity:{name}", arn
assert sfn.create_activity(name=name)["activityArn"] == arn, "CreateActivity is idempotent"
described = sfn.describe_activity(activityArn=arn)
assert described["name"] == name and described["creationDate"].year >= 2024, described
assert arn in [a["activityArn"] for a in sfn.list_activities()["activities"]]

# Errors and their shapes.
expect_error("ActivityDoesNotExist", sfn.describe_activity, activityArn=arn + "-missing")
expect_error("ActivityDoesNotExist", sfn.get_activity_task, activityArn=arn + "-missing")
expect_error("InvalidArn", sfn.describe_activity, activityArn="not-an-arn")
expect_error("InvalidName", sfn.create_activity, name="has space")
expect_error("InvalidToken", sfn.send_task_heartbeat, taskToken="garbage")
expect_error("TaskDoesNotExist", sfn.send_task_success, taskToken="wa1-" + str(uuid.uuid4()), output="{}")
message = expect_error("InvalidDefinition", sfn.create_state_machine, name="bad-" + name, roleArn=ROLE,
                       definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}))
assert "Pass" in message, message
message = expect_error("InvalidDefinition", sfn.create_state_machine, name="bad2-" + name, roleArn=ROLE,
                       definition=json.dumps({"StartAt": "A", "States": {"A": {
                           "Type": "Task", "Resource": arn, "End": True, "ResultPath": "$.r"}}}))
assert "ResultPath" in message, message

definition = {"StartAt": "Work", "States": {"Work": {
    "Type": "Task", "Resource": arn, "TimeoutSeconds": 60, "HeartbeatSeconds": 30, "End": True}}}
sm = sfn.create_state_machine(name="sm-" + name, roleArn=ROLE, definition=json.dumps(definition))["stateMachineArn"]
expect_error("InvalidExecutionInput", sfn.start_execution, stateMachineArn=sm, input="not json")
expect_error("StateMachineDoesNotExist", sfn.start_execution, stateMachineArn=sm + "-missing")

# The long poll wakes up as soon as a task is queued.
result = {}
thread = threading.Thread(target=lambda: result.update(poller.get_activity_task(activityArn=arn, workerName="boto3")))
thread.start()
wait_for("the poll to be waiting", lambda: any(a["arn"] == arn and a["pollers"] == 1 for a in local_state()["activities"]))
started = time.time()
execution = sfn.start_execution(stateMachineArn=sm, input=json.dumps({"n": 1}))["executionArn"]
thread.join(30)
woke_after = time.time() - started
assert result.get("taskToken"), result
assert json.loads(result["input"]) == {"n": 1}, result
assert woke_after < 2.0, f"the poll returned {woke_after:.2f} s after the task was queued"

# Each token is handed out once: the next poll comes back empty.
empty = poller.get_activity_task(activityArn=arn, workerName="boto3")
assert "taskToken" not in empty or not empty["taskToken"], empty

token = result["taskToken"]
sfn.send_task_heartbeat(taskToken=token)
expect_error("InvalidOutput", sfn.send_task_success, taskToken=token, output="not json")
sfn.send_task_success(taskToken=token, output=json.dumps({"n": 2}))
expect_error("TaskTimedOut", sfn.send_task_heartbeat, taskToken=token)
done = wait_for("the execution to finish", lambda: (lambda d: d if d["status"] != "RUNNING" else None)(
    sfn.describe_execution(executionArn=execution)))
assert done["status"] == "SUCCEEDED" and json.loads(done["output"]) == {"n": 2}, done
events = sfn.get_execution_history(executionArn=execution)["events"]
types = [e["type"] for e in events]
assert types == ["ExecutionStarted", "TaskStateEntered", "ActivityScheduled", "ActivityStarted",
                 "ActivitySucceeded", "TaskStateExited", "ExecutionSucceeded"], types
assert events[3]["activityStartedEventDetails"]["workerName"] == "boto3", events[3]
# Every input or output an event carries comes with its *Details member, as
# GetExecutionHistory documents them (nothing here is ever truncated).
for event in events:
    for key, details in event.items():
        if not key.endswith("EventDetails"):
            continue
        for field in ("input", "output"):
            if field in details:
                assert details.get(field + "Details") == {"truncated": False}, (field, event)
entered = next(e for e in events if e["type"] == "TaskStateEntered")["stateEnteredEventDetails"]
exited = next(e for e in events if e["type"] == "TaskStateExited")["stateExitedEventDetails"]
assert entered["inputDetails"] == {"truncated": False} and exited["outputDetails"] == {"truncated": False}, events

# FIFO: tasks are handed out in the order they were queued. Each execution's
# driver queues its task on its own schedule, so wait for each one to be
# queued before starting the next: the order under test is the queue's.
def queued():
    return next(a["queued"] for a in local_state()["activities"] if a["arn"] == arn)


runs = []
for i in range(3):
    runs.append(sfn.start_execution(stateMachineArn=sm, input=json.dumps({"i": i}))["executionArn"])
    wait_for(f"task {i} to be queued", lambda: queued() == i + 1)
order = [json.loads(poller.get_activity_task(activityArn=arn)["input"])["i"] for _ in runs]
assert order == [0, 1, 2], order

# StopExecution: the task's next heartbeat says TaskTimedOut, as on AWS.
stop_me = sfn.start_execution(stateMachineArn=sm, input="{}")["executionArn"]
task = poller.get_activity_task(activityArn=arn)
for r in runs:
    sfn.stop_execution(executionArn=r)
sfn.stop_execution(executionArn=stop_me, error="Stopped", cause="by the protocol test")
expect_error("TaskTimedOut", sfn.send_task_heartbeat, taskToken=task["taskToken"])
assert sfn.describe_execution(executionArn=stop_me)["status"] == "ABORTED"

sfn.delete_activity(activityArn=arn)
expect_error("ActivityDoesNotExist", sfn.describe_activity, activityArn=arn)
print("protocol ok")
