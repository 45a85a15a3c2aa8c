"""TEST-ONLY STAND-IN for `universal_extension.ui`.

`from universal_extension import ui` and `ui.update_output_fields(dict)`: updates the
running task instance's Output Only fields, as update_extension_status does.
Source: Stonebranch and AWS's extension, nholuongut/aws-mainframe-modernization-stonebranch-integration
src/extension.py (`from universal_extension import ui`; its rerun command's
`ui.update_output_fields(out_fields)`), and Stonebranch's IBM DataStage extension
(`from universal_extension import ui`, an indexed public file), both written against the
agent's module.

Calls are recorded in the module (one task at a time in the tests), with the time they
came, so a test can tell this path from update_extension_status.
"""

import time

calls = []  # (monotonic time, dict) per update_output_fields call


def update_output_fields(fields):
    if not isinstance(fields, dict):
        raise TypeError("update_output_fields expects a dict")
    calls.append((time.monotonic(), dict(fields)))
