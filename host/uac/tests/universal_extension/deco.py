"""TEST-ONLY STAND-IN for `universal_extension.deco`.

`from universal_extension.deco import dynamic_choice_command`, used as
`@dynamic_choice_command("<field name>")` on an Extension method that takes the
fields dict and returns ExtensionResult(rc, message, values). The field name must be
the template field's "name", and that field must have "choiceDynamic": true.
Source: nholuongut/aws-mainframe-modernization-stonebranch-integration src/extension.py
(@dynamic_choice_command("application") def get_applications(self, fields)), and the
"Dynamic Choice Fields" section of "Introduction" (UC 7.4):
https://stonebranchdocs.atlassian.net/wiki/spaces/UC74/pages/123306296/Introduction
"""


def dynamic_choice_command(field_name):
    def register(fn):
        fn._dynamic_choice_field = field_name
        return fn

    return register
