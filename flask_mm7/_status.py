"""MM7 status codes (3GPP TS 23.140 §8.2.4) as an IntEnum with their default texts.

Pure data: knows nothing of SOAP, WSGI or Flask.
"""

from __future__ import annotations

import enum


class StatusCode(enum.IntEnum):
    """The MM7 ``StatusCode`` values a VASP may answer, with the spec's texts.

    ``StatusCode.SUCCESS.text == "Success"``. The class of a code is its thousands digit:
    1xxx success, 2xxx client error, 3xxx server error, 4xxx service error.
    """

    text: str

    def __new__(cls, value: int, text: str) -> StatusCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.text = text
        return member

    SUCCESS = 1000, "Success"
    PARTIAL_SUCCESS = 1100, "Partial success"
    CLIENT_ERROR = 2000, "Client error"
    OPERATION_RESTRICTED = 2001, "Operation restricted"
    ADDRESS_ERROR = 2002, "Address Error"
    ADDRESS_NOT_FOUND = 2003, "Address Not Found"
    CONTENT_REFUSED = 2004, "Multimedia content refused"
    MESSAGE_ID_NOT_FOUND = 2005, "Message ID Not found"
    LINKED_ID_NOT_FOUND = 2006, "LinkedID not found"
    MESSAGE_FORMAT_CORRUPT = 2007, "Message format corrupt"
    APPLICATION_ID_NOT_FOUND = 2008, "Application ID not found"
    REPLY_APPLICATION_ID_NOT_FOUND = 2009, "Reply Application ID not found"
    SERVER_ERROR = 3000, "Server Error"
    NOT_POSSIBLE = 3001, "Not Possible"
    MESSAGE_REJECTED = 3002, "Message rejected"
    MULTIPLE_ADDRESSES_NOT_SUPPORTED = 3003, "Multiple addresses not supported"
    APPLICATION_ADDRESSING_NOT_SUPPORTED = 3004, "Application Addressing not supported"
    GENERAL_SERVICE_ERROR = 4000, "General service error"
    IMPROPER_IDENTIFICATION = 4001, "Improper identification"
    UNSUPPORTED_VERSION = 4002, "Unsupported version"
    UNSUPPORTED_OPERATION = 4003, "Unsupported operation"
    VALIDATION_ERROR = 4004, "Validation error"
    SERVICE_ERROR = 4005, "Service error"
    SERVICE_UNAVAILABLE = 4006, "Service unavailable"
    SERVICE_DENIED = 4007, "Service denied"
    APPLICATION_DENIED = 4008, "Application denied"

    @property
    def is_success(self) -> bool:
        return self.value // 1000 == 1


#: the statuses that mean "try again later": answered with a 5xx Fault so the relay retries
RETRYABLE = frozenset((StatusCode.SERVER_ERROR.value, StatusCode.SERVICE_UNAVAILABLE.value))


def default_text(code: int) -> str:
    """The spec's text for ``code``, or a generic one for vendor codes (e.g. Mbuni's 3005)."""
    member = _BY_VALUE.get(code)
    if member is not None:
        return member.text
    return {1: "Success", 2: "Client error", 3: "Server Error"}.get(
        code // 1000, "General service error"
    )


_BY_VALUE = {member.value: member for member in StatusCode}
