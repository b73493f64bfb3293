"""Transforms a SAM template into CloudFormation with aws-sam-translator, offline.

Usage: python3 transform.py TEMPLATE... > transformed.json

Prints a JSON list: one transformed template per argument, in order.

Used by the templatecheck tests. A stub managed-policy loader keeps the
translator from calling IAM, and local CodeUri values are replaced with an S3
URI, as `sam package` would do.
"""
import json
import os
import sys

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

MANAGED = {
    name: "arn:aws:iam::aws:policy/service-role/" + name
    for name in ("AWSLambdaBasicExecutionRole", "AWSLambdaSQSQueueExecutionRole",
                 "AWSLambdaVPCAccessExecutionRole", "AWSXrayWriteOnlyAccess")
}


class NoNetLoader:
    def load(self):
        return MANAGED


def main():
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    out = []
    for path in sys.argv[1:]:
        with open(path) as f:
            tpl = yaml_parse(f.read())
        for res in tpl.get("Resources", {}).values():
            props = res.get("Properties") or {}
            if res.get("Type") == "AWS::Serverless::Function" and not str(props.get("CodeUri", "")).startswith("s3://"):
                props["CodeUri"] = "s3://placeholder-bucket/function.zip"
        out.append(transform(tpl, {}, NoNetLoader()))
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
