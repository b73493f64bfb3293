"""Run moto_server with Lambda invokes forwarded to the local stack.

moto cannot run Lambda code without Docker. This launcher replaces moto's
LambdaFunction.invoke with an HTTP POST of the payload to
KEYROTOR_LAMBDA_ENDPOINT/regions/<region>/functions/<function name>/invocations,
which the local stack (infra/local) serves: it queues invokes per function
and hands them to that function's Lambda Runtime Interface Emulator, where
the real bootstrap runs. The region is the invoked function's (moto keeps
one Lambda per region, as AWS does), so a rotation in eu-west-1 runs
eu-west-1's function. Then `aws lambda invoke` and `aws secretsmanager
rotate-secret` reach the compiled functions, as on AWS.

Six moto deviations are corrected for rotation:
- RotateSecret without RotationLambdaARN uses the function already configured
  on the secret (moto would forget it and "rotate" to an empty version).
- A step that fails (the function answers with errorType) ends the rotation:
  RotateSecret fails with InvalidRequestException naming the step, and the
  later steps are not invoked. (AWS runs rotation asynchronously and would
  report the failure in the function's logs and metrics instead.)
- RotationRules' ScheduleExpression and Duration are kept and returned by
  DescribeSecret and ListSecrets, and a schedule enables rotation (moto keeps
  only AutomaticallyAfterDays).
- The function sees what Secrets Manager has done before it invokes it: the
  rotation configuration is stored and rotation is enabled (moto enabled it
  for a ScheduleExpression only after the steps had run, so every step failed
  with "rotation is not enabled"), and the AWSPENDING version has no value
  (moto copied the secret's current value into it for RotateImmediately=false,
  so testSecret tested a stale copy instead of the current key).
- RotateImmediately=false leaves no AWSPENDING version behind, whether its
  testSecret passes or fails: Secrets Manager labels a version for the test
  and removes it afterwards; moto kept it, which blocked every later
  rotation.
- A failed step of a rotation (RotateImmediately=true) leaves AWSPENDING on
  the attempt's version, as on AWS, and the error says how to clear it.
- Every version keeps the time it was created: ListSecretVersionIds answered
  CreatedDate = now for every version (so `keyrotor status` saw every
  rotation start "0s ago" and every grace period end in the future). It now
  returns each version's creation time, as GetSecretValue does, the secret's
  ARN (moto gave its name), and leaves out versions without staging labels
  unless IncludeDeprecated is true, as AWS does.

Secrets Manager's clock can be moved for tests: POST /moto-api/keyrotor/clock
with {"offset_seconds": N} makes every date Secrets Manager records from then
on (version and secret creation, rotation, deletion) N seconds off the real
time; GET answers the current offset. Dates already recorded keep their
value, so a test can create versions "an hour ago" and read them now.

Usage: python3 moto_launcher.py -H 127.0.0.1 -p PORT (moto_server's flags).
"""

import base64
import datetime
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

from moto.awslambda import models as lambda_models
from moto.moto_api._internal import urls as moto_api_urls
from moto.secretsmanager import models as sm_models
from moto.secretsmanager import responses as sm_responses
from moto.secretsmanager.exceptions import InvalidRequestException, SecretNotFoundException
import moto.server

ENDPOINT = os.environ["KEYROTOR_LAMBDA_ENDPOINT"].rstrip("/")
TIMEOUT = float(os.environ.get("KEYROTOR_INVOKE_TIMEOUT", "120"))

_rotation = threading.local()


def _post(region, function_name, body):
    """POSTs body to the function; returns (payload bytes, error type or None)."""
    if body is None:
        body = b"{}"
    if isinstance(body, str):
        body = body.encode("utf-8")
    req = urllib.request.Request(
        ENDPOINT + "/regions/" + region + "/functions/" + function_name + "/invocations",
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
    start = getattr(_rotation, "before_first_invoke", None)
    if start is not None:
        _rotation.before_first_invoke = None
        start()
    payload, error_type = _post(self.region, self.function_name, body)
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


def _pending_only(secret):
    """The ids of the versions labelled AWSPENDING but not AWSCURRENT."""
    return [v for v, version in secret.versions.items()
            if "AWSPENDING" in version["version_stages"] and "AWSCURRENT" not in version["version_stages"]]


def _configure(secret, rotation_rules):
    """Stores RotationRules as Secrets Manager keeps them; a schedule enables
    rotation (moto enables it for AutomaticallyAfterDays only)."""
    if not rotation_rules:
        return
    secret.keyrotor_rotation_rules = {
        k: v for k, v in rotation_rules.items()
        if k in ("AutomaticallyAfterDays", "ScheduleExpression", "Duration") and v
    }
    if rotation_rules.get("ScheduleExpression") or rotation_rules.get("AutomaticallyAfterDays"):
        secret.rotation_enabled = True


def rotate_secret(self, secret_id, client_request_token=None, rotation_lambda_arn=None,
                  rotation_rules=None, rotate_immediately=True):
    if not self._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    if not rotation_lambda_arn:
        rotation_lambda_arn = getattr(secret, "rotation_lambda_arn", None) or None
    before = set(secret.versions)

    def start():
        # What Secrets Manager has done when it invokes the first step: the
        # configuration is stored, rotation is enabled, and the new version
        # is labelled AWSPENDING without a value (moto copied the current
        # value into it when RotateImmediately is false).
        _configure(secret, rotation_rules)
        for version_id in _pending_only(secret):
            if version_id not in before:
                secret.versions[version_id].pop("secret_string", None)
                secret.versions[version_id].pop("secret_binary", None)

    _rotation.active = True
    _rotation.before_first_invoke = start
    try:
        result = _rotate_secret(
            self,
            secret_id=secret_id,
            client_request_token=client_request_token,
            rotation_lambda_arn=rotation_lambda_arn,
            rotation_rules=rotation_rules,
            rotate_immediately=rotate_immediately,
        )
    except InvalidRequestException as e:
        stuck = [v for v in _pending_only(secret) if v not in before]
        if rotate_immediately and stuck and getattr(_rotation, "before_first_invoke", None) is None:
            # The function failed: AWSPENDING stays on the attempt's
            # version, as on AWS, where it blocks the next rotation until
            # it is cleared. moto ran the steps synchronously, so nothing
            # of the attempt is still running.
            raise InvalidRequestException(
                "%s; AWSPENDING stays on version %s: once the cause is fixed, clear it with "
                "`keyrotor unstick %s --force` (the attempt has ended) and rotate again" % (e.message, stuck[0], secret.name)
            )
        raise
    finally:
        _rotation.active = False
        _rotation.before_first_invoke = None
        if not rotate_immediately:
            # Secrets Manager removes the version it labelled for the
            # test, whether testSecret passed or not.
            for version_id in _pending_only(secret):
                if version_id not in before:
                    stages = secret.versions[version_id]["version_stages"]
                    stages.remove("AWSPENDING")
                    if not stages:
                        del secret.versions[version_id]
    _configure(secret, rotation_rules)
    return result


_to_dict = sm_models.FakeSecret.to_dict


def to_dict(self):
    dct = _to_dict(self)
    rules = getattr(self, "keyrotor_rotation_rules", None)
    if rules and "RotationRules" in dct:
        dct["RotationRules"] = dict(rules)
    return dct


class _Clock:
    """Secrets Manager's clock: the real time plus an offset set by tests.

    It replaces the time module inside moto's Secrets Manager models, which
    read only time.time() from it (and utcnow, patched below)."""

    def __init__(self):
        self.offset = 0.0

    def time(self):
        return time.time() + self.offset

    def utcnow(self):
        return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) + datetime.timedelta(seconds=self.offset)


clock = _Clock()


def clock_response(request, full_url, headers):
    """POST {"offset_seconds": N} (a JSON body, or a query parameter) sets
    the offset; GET answers it."""
    if request.method == "POST":
        try:
            offset = request.args.get("offset_seconds")
            if offset is None:
                offset = json.loads(request.get_data() or b"{}")["offset_seconds"]
            offset = float(offset)
        except (KeyError, TypeError, ValueError) as e:
            return 400, {"Content-Type": "application/json"}, json.dumps({"error": "want {\"offset_seconds\": N}: %s" % e})
        clock.offset = offset
    return 200, {"Content-Type": "application/json"}, json.dumps({"offset_seconds": clock.offset})


def list_secret_version_ids(self, secret_id, include_deprecated=False):
    if not self._is_valid_identifier(secret_id):
        raise SecretNotFoundException()
    secret = self.secrets[secret_id]
    versions = []
    for version_id, version in secret.versions.items():
        if not version["version_stages"] and not include_deprecated:
            continue
        versions.append({
            "CreatedDate": version["createdate"],
            "VersionId": version_id,
            "VersionStages": list(version["version_stages"]),
        })
    return json.dumps({"ARN": secret.arn, "Name": secret.name, "Versions": versions})


def list_secret_version_ids_response(self):
    return self.backend.list_secret_version_ids(
        secret_id=self._get_param("SecretId", if_none=""),
        include_deprecated=bool(self._get_param("IncludeDeprecated", if_none=False)),
    )


lambda_models.LambdaFunction.invoke = invoke
sm_models.SecretsManagerBackend.rotate_secret = rotate_secret
sm_models.FakeSecret.to_dict = to_dict
sm_models.SecretsManagerBackend.list_secret_version_ids = list_secret_version_ids
sm_responses.SecretsManagerResponse.list_secret_version_ids = list_secret_version_ids_response
sm_models.time = clock
sm_models.utcnow = clock.utcnow
moto_api_urls.url_paths["{0}/moto-api/keyrotor/clock"] = clock_response

if __name__ == "__main__":
    moto.server.main(sys.argv[1:])
