"""Test account settings: timed steps with the exact problem and its fix.

`test_account(account, secret=..., send=..., on_step=...)` returns a
`TestReport`; `mailbag account test` and `mailbag account add` call it.
"""

from mailbag.diagnose.account_test import ALL_STEPS, test_account
from mailbag.diagnose.causes import translate_reply
from mailbag.diagnose.steps import StepResult, StepStatus, TestReport

__all__ = ["ALL_STEPS", "StepResult", "StepStatus", "TestReport", "test_account", "translate_reply"]
