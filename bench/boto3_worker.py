"""The Python baseline: the activity worker teams usually write, with boto3
and a pool of threads, each polling and working one task at a time. It runs
the same pricing code as the Python example guest (examples/python/app.py,
through wasm_activity.call), natively in CPython.

    python boto3_worker.py --endpoint URL --arn ARN --concurrency N [--work price|sleep20]
"""

import argparse
import os
import sys
import threading
import time

import boto3
from botocore.config import Config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [os.path.join(ROOT, "examples/python"), os.path.join(ROOT, "guest-sdk/python")]

import app  # noqa: E402
import wasm_activity  # noqa: E402


def poll_loop(client, arn, sleep):
    while True:
        try:
            task = client.get_activity_task(activityArn=arn, workerName="boto3-worker")
        except Exception as e:  # keep polling, like a real worker
            print(f"poll failed: {e}", file=sys.stderr)
            time.sleep(0.1)
            continue
        token = task.get("taskToken")
        if not token:
            continue
        try:
            if sleep:
                time.sleep(0.02)
                output = '{"slept_ms":20}'
            else:
                output = wasm_activity.call(app.price, task.get("input", "{}"))
            client.send_task_success(taskToken=token, output=output)
        except wasm_activity.Failure as f:
            client.send_task_failure(taskToken=token, error=f.error, cause=f.cause)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--arn", required=True)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--work", default="price")
    args = p.parse_args()
    client = boto3.client(
        "stepfunctions",
        endpoint_url=args.endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=args.concurrency, read_timeout=70, retries={"max_attempts": 1}),
    )
    threads = [
        threading.Thread(target=poll_loop, args=(client, args.arn, args.work == "sleep20"), daemon=True)
        for _ in range(args.concurrency)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
