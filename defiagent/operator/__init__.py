"""The operator's second factor (TOTP): critical changes need a current code once enrolled.

enrolment     the enrolment file (secret, issuer/name, last accepted step), mode 0600
second_factor SecondFactor: required? verify(code, action), replay-proof, audited
ratelimit     failed attempts, persisted across invocations; lockout
codes         where a code comes from: hidden prompt, --otp-stdin, DEFIAGENT_OTP_CODE
limits        the approved [guard]/[risk] snapshot and the looser-than check
gates         the checks the CLI runs before critical changes
"""

from defiagent.operator.enrolment import Enrolment, EnrolmentStore, new_enrolment
from defiagent.operator.gates import (
    approval_would_activate,
    approve_with_operator,
    require_operator_code,
)
from defiagent.operator.limits import (
    LimitChange,
    approve_limits,
    compare_limits,
    current_limits,
    require_approved_limits,
)
from defiagent.operator.second_factor import SecondFactor

__all__ = [
    "Enrolment",
    "EnrolmentStore",
    "LimitChange",
    "SecondFactor",
    "approval_would_activate",
    "approve_limits",
    "approve_with_operator",
    "compare_limits",
    "current_limits",
    "new_enrolment",
    "require_approved_limits",
    "require_operator_code",
]
