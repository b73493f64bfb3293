"""Run moto_launcher.py's moto_server with CloudFormation fixed for keyrotor's template.

The local stack's TemplateStack (template.go) deploys the transformed
template.yaml into moto's CloudFormation through this launcher. It adds to
moto_launcher.py (imported from the same folder, with every Lambda invoke
forwarded to the local stack's emulators):

- AWS::NoValue in a list is dropped, as CloudFormation does. moto left None
  in the list, so a role whose policy holds
  `!If [HasKmsKeys, {...}, !Ref AWS::NoValue]` failed with
  MalformedPolicyDocument and the stack could not be created.
- GET /moto-api/keyrotor/cfn-types answers the resource types moto's
  CloudFormation creates, so that the caller can list those of the template
  it skips (moto skips an unsupported type with a warning and still reports
  CREATE_COMPLETE).

Usage: python3 cfn_launcher.py -H 127.0.0.1 -p PORT (moto_server's flags).
"""

import json
import sys

import moto_launcher
from moto.cloudformation import parsing
from moto.moto_api._internal import urls as moto_api_urls

_clean_json = parsing.clean_json


def clean_json(resource_json, resources_map):
    if isinstance(resource_json, list):
        return [v for v in (clean_json(x, resources_map) for x in resource_json) if v is not None]
    return _clean_json(resource_json, resources_map)


def cfn_types_response(request, full_url, headers):
    types = sorted(t for t in parsing.get_model_map() if t not in parsing.NULL_MODELS)
    return 200, {"Content-Type": "application/json"}, json.dumps({"types": types})


parsing.clean_json = clean_json
moto_api_urls.url_paths["{0}/moto-api/keyrotor/cfn-types"] = cfn_types_response

if __name__ == "__main__":
    moto_launcher.moto.server.main(sys.argv[1:])
