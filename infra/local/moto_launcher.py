"""Run moto_server with Lambda invokes forwarded to the local stack.

moto cannot run Lambda code without Docker. This launcher replaces moto's
LambdaFunction.invoke with an HTTP POST of the payload to
KEYROTOR_LAMBDA_ENDPOINT/functions/<function name>/invocations, which the
local stack (infra/local) serves: it queues invokes per function and hands
them to that function's Lambda Runtime Interface Emulator, where the real
bootstrap runs. Then `aws lambda invoke` and `aws secretsmanager
rotate-secret` reach the compiled functions, as on AWS.

Four moto deviations are corrected for rotation:
- RotateSecret without RotationLambdaARN uses the function already configured
  on the secret (moto would forget it and "rotate" to an empty version).
- A step that fails (the function answers with errorType) ends the rotation:
  RotateSecret fails with InvalidRequestException naming the step, and the
  later steps are not invoked. (AWS runs rotation asynchronously and would
  report the failure in the function's logs and metrics instead.)
- RotationRules' ScheduleExpression and Duration are kept and returned by
  DescribeSecret and ListSecrets, and a schedule enables rotation (moto keeps
  only AutomaticallyAfterDays).
- RotateImmediately=false leaves no AWSPENDING version behind: Secrets
  Manager labels a version for its testSecret and removes it afterwards; moto
  kept it, which blocked every later rotation.

Usage: python3 moto_launcher.py -H 127.0.0.1 -p PORT (moto_server's flags).
"""

import base64
import json
import os
import sys
import threading
import urllib.error
import urllib.request

from moto.awslambda import models as lambda_models
from moto.secretsmanager import models as sm_models
from moto.secretsmanager.exceptions import InvalidRequestException
import moto.server

ENDPOINT = os.environ["KEYROTOR_LAMBDA_ENDPOINT"].rstrip("/")
TIMEOUT = float(os.environ.get("KEYROTOR_INVOKE_TIMEOUT", "120"))

_rotation = threading.local()


def _post(function_name, body):
    """POSTs body to the function; returns (payload bytes, error type or None)."""
    if body is None:
        body = b"{}"
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(
        ENDPOINT + "/functions/" + function_name + "/invocations",
        data=body or b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            payload = resp.read()
            error_type = resp.headers.get("X-Amz-Function-Error")
    except urllib.error.HTTPError as e:
        payload = e.read()
        error_type = e.headers.get("X-Amz-Function-Error") or "Unhandled"
    except OSError as e:
        payload = json.dumps(
            {"errorType": "Runtime.Unavailable", "errorMessage": "function %s cannot be reached: %s" % (function_name, e)}
        ).encode("utf-8")
        error_type = "Unhandled"
    return payload, error_type


def invoke(self, body, request_headers, response_headers):
    payload, error_type = _post(self.function_name, body)
    if error_type:
        if getattr(_rotation, "active", False):
            step = "?"
            try:
                step = json.loads(body).get("Step", "?")
            except (TypeError, ValueError, AttributeError):
                pass
            detail = payload.decode("utf-8", "replace")
            try:
                err = json.loads(detail)
                detail = "%s: %s" % (err.get("errorType", ""), err.get("errorMessage", ""))
            except ValueError:
                pass
            raise InvalidRequestException(
                "rotation function %s failed at %s: %s" % (self.function_name, step, detail)
            )
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["x-amz-log-result"] = base64.b64encode(b"").decode("ascii")
    return payload


_rotate_secret = sm_models.SecretsManagerBackend.rotate_secret


def rotate_secret(self, secret_id, client_request_token=None, rotation_lambda_arn=None,
                  rotation_rules=None, rotate_immediately=True):
    if not rotation_lambda_arn and self._is_valid_identifier(secret_id):
        rotation_lambda_arn = getattr(self.secrets[secret_id], "rotation_lambda_arn", None) or None
    _rotation.active = True
    try:
        result = _rotate_secret(
            self,
            secret_id=secret_id,
            client_request_token=client_request_token,
            rotation_lambda_arn=rotation_lambda_arn,
            rotation_rules=rotation_rules,
            rotate_immediately=rotate_immediately,
        )
    finally:
        _rotation.active = False
    secret = self.secrets[secret_id]
    if rotation_rules:
        secret.keyrotor_rotation_rules = {
            k: v for k, v in rotation_rules.items()
            if k in ("AutomaticallyAfterDays", "ScheduleExpression", "Duration") and v
        }
        if rotation_rules.get("ScheduleExpression"):
            secret.rotation_enabled = True
    if not rotate_immediately:
        for version_id, version in list(secret.versions.items()):
            stages = version["version_stages"]
            if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
                stages.remove("AWSPENDING")
                if not stages:
                    del secret.versions[version_id]
    return result


_to_dict = sm_models.FakeSecret.to_dict


def to_dict(self):
    dct = _to_dict(self)
    rules = getattr(self, "keyrotor_rotation_rules", None)
    if rules and "RotationRules" in dct:
        dct["RotationRules"] = dict(rules)
    return dct


lambda_models.LambdaFunction.invoke = invoke
sm_models.SecretsManagerBackend.rotate_secret = rotate_secret
sm_models.FakeSecret.to_dict = to_dict

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
