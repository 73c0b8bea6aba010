"""The Lambda handlers, on event payloads of the shapes AWS delivers (from AWS's documented
samples), against two moto accounts in process."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import REGION, SHADOW_ROLE, Accounts, enforce_owner_acl

import dualwrite
from dualwrite import aws_lambda
from dualwrite.hooks import MetricsHook

pytestmark = pytest.mark.usefixtures("parse_botocore_models_once")

# An SQS event as Lambda delivers it (AWS's sample), whose body is S3's notification (AWS's
# sample, key "red flower+(1).jpg" URL-encoded as S3 sends it).
S3_BODY = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "2024-05-01T12:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AIDAINPONIXQXHT3IKHL2"},
            "requestParameters": {"sourceIPAddress": "205.255.255.255"},
            "responseElements": {
                "x-amz-request-id": "D82B88E5F771F645",
                "x-amz-id-2": "vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYB",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "dualwrite-follow",
                "bucket": {
                    "name": "photos",
                    "ownerIdentity": {"principalId": "A3I5XTEXAMAI3E"},
                    "arn": "arn:aws:s3:::photos",
                },
                "object": {
                    "key": "red+flower%2B%281%29.jpg",
                    "size": 5,
                    "eTag": "b1946ac92492d2347c6235b4d2611184",
                    "sequencer": "0055AED6DCD90281E5",
                },
            },
        }
    ]
}


def sqs_record(message_id: str, body: Any) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "MessageReceiptHandle",
        "body": body if isinstance(body, str) else json.dumps(body),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": "1523232000000",
            "SenderId": "123456789012",
            "ApproximateFirstReceiveTimestamp": "1523232000001",
        },
        "messageAttributes": {},
        "md5OfBody": "7b270e59b47ff90a553787216d55d91d",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:photos-events",
        "awsRegion": "us-east-1",
    }


def stream_record(
    name: str, key: dict[str, Any], sequence: str, table: str = "orders"
) -> dict[str, Any]:
    return {
        "eventID": f"c4ca4238a0b923820dcc509a6f75849{sequence[-1]}",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": 1714564800,
            "Keys": key,
            "SequenceNumber": sequence,
            "SizeBytes": 26,
            "StreamViewType": "KEYS_ONLY",
        },
        "eventSourceARN": (
            f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-05-01T00:00:00.000"
        ),
    }


@pytest.fixture
def lambda_env(aws: Accounts, monkeypatch: pytest.MonkeyPatch) -> Accounts:
    monkeypatch.setenv("DUALWRITE_S3_NAMES", json.dumps({"photos": "photos-acct2"}))
    monkeypatch.setenv("DUALWRITE_SHADOW_ROLE_ARN", SHADOW_ROLE)
    monkeypatch.setenv("AWS_REGION", REGION)
    return aws


def test_s3_handler_converges_and_reports_nothing_failed(lambda_env: Accounts) -> None:
    p = lambda_env.client("primary", "s3")
    s = lambda_env.client("shadow", "s3")
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    p.put_object(Bucket="photos", Key="red flower+(1).jpg", Body=b"hello")
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "photos"}
    event = {
        "Records": [
            sqs_record("059f36b4-87a3-44ab-83d2-661975830a7d", S3_BODY),
            sqs_record("2e1424d4-f796-459a-8184-9c92662be6da", test_event),
            sqs_record("3f", "not json at all"),
        ]
    }
    response = aws_lambda.s3_handler(event, None)
    assert response == {"batchItemFailures": []}
    assert s.get_object(Bucket="photos-acct2", Key="red flower+(1).jpg")["Body"].read() == b"hello"
    acl = s.get_object_acl(Bucket="photos-acct2", Key="red flower+(1).jpg")
    assert acl["Grants"]


def test_s3_handler_reports_the_record_whose_key_failed(aws: Accounts) -> None:
    p = aws.client("primary", "s3")
    s = aws.client("shadow", "s3")
    p.create_bucket(Bucket="photos")
    s.create_bucket(Bucket="photos-acct2")
    p.put_object(Bucket="photos", Key="red flower+(1).jpg", Body=b"hello")
    p.put_object(Bucket="photos", Key="fine.txt", Body=b"fine")
    metrics = MetricsHook()

    def factory() -> dualwrite.DualWriter:
        writer = dualwrite.DualWriter(flag=True, journal=None, hooks=[metrics])
        shadow = aws.client("shadow", "s3")
        enforce_owner_acl(shadow)

        def refuse_flower(params: dict[str, Any], **_: Any) -> None:
            if params.get("Key") == "red flower+(1).jpg":
                raise RuntimeError("the shadow is down for this key")

        shadow.meta.events.register("provide-client-params.s3.PutObject", refuse_flower)
        writer.wrap(p, shadow=shadow, names={"photos": "photos-acct2"})
        return writer

    handler = aws_lambda.make_s3_handler(factory)
    fine = copy.deepcopy(S3_BODY)
    fine["Records"][0]["s3"]["object"]["key"] = "fine.txt"
    event = {"Records": [sqs_record("m-1", S3_BODY), sqs_record("m-2", fine)]}
    assert handler(event, None) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
    assert metrics.snapshot().total("followed_failed") == 1
    assert metrics.snapshot().total("followed_copied") == 1
    # Redelivered, the converged record costs a comparison only.
    assert handler({"Records": [sqs_record("m-2", fine)]}, None) == {"batchItemFailures": []}
    assert metrics.snapshot().total("followed_equal") == 1


def test_dynamodb_handler_on_a_stream_event(aws: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUALWRITE_SHADOW_ROLE_ARN", SHADOW_ROLE)
    monkeypatch.setenv("AWS_REGION", REGION)
    p = aws.client("primary", "dynamodb")
    s = aws.client("shadow", "dynamodb")
    for client in (p, s):
        client.create_table(
            TableName="orders",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
    p.put_item(TableName="orders", Item={"pk": {"S": "a"}, "v": {"N": "2"}})
    s.put_item(TableName="orders", Item={"pk": {"S": "gone"}, "v": {"N": "1"}})
    event = {
        "Records": [
            stream_record("INSERT", {"pk": {"S": "a"}}, "111"),
            stream_record("MODIFY", {"pk": {"S": "a"}}, "222"),
            stream_record("REMOVE", {"pk": {"S": "gone"}}, "333"),
        ]
    }
    handler = aws_lambda.make_dynamodb_handler(lambda: aws_lambda.writer_from_env("dynamodb"))
    assert handler(event, None) == {"batchItemFailures": []}
    items = {i["pk"]["S"]: i for i in s.scan(TableName="orders")["Items"]}
    assert items == {"a": {"pk": {"S": "a"}, "v": {"N": "2"}}}

    # A record of a table the shadow lacks cannot converge: reported by its sequence number.
    p.create_table(
        TableName="invoices",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    p.put_item(TableName="invoices", Item={"pk": {"S": "i"}})
    bad = {"Records": [stream_record("INSERT", {"pk": {"S": "i"}}, "444", table="invoices")]}
    assert handler(bad, None) == {"batchItemFailures": [{"itemIdentifier": "444"}]}


def test_configuration_errors_name_the_variable(
    aws: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUALWRITE_S3_NAMES", raising=False)
    with pytest.raises(dualwrite.ConfigurationError, match="DUALWRITE_S3_NAMES"):
        aws_lambda.writer_from_env("s3")
    monkeypatch.setenv("DUALWRITE_S3_NAMES", "[1, 2]")
    with pytest.raises(dualwrite.ConfigurationError, match="DUALWRITE_S3_NAMES"):
        aws_lambda.writer_from_env("s3")
    monkeypatch.setenv("DUALWRITE_S3_NAMES", '{"a": "b"}')
    monkeypatch.setenv("DUALWRITE_FLAG", "no-colon")
    with pytest.raises(dualwrite.ConfigurationError, match="DUALWRITE_FLAG"):
        aws_lambda.writer_from_env("s3")


def test_public_names() -> None:
    assert aws_lambda.__all__ == sorted(aws_lambda.__all__)
    for name in aws_lambda.__all__:
        assert callable(getattr(aws_lambda, name))
