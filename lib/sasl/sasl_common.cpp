#include "afbus/sasl.hpp"

namespace afbus {

std::string_view to_string(SaslMechanism mechanism) {
    switch (mechanism) {
        case SaslMechanism::External:
            return "EXTERNAL";
        case SaslMechanism::Anonymous:
            return "ANONYMOUS";
        case SaslMechanism::DbusCookieSha1:
            return "DBUS_COOKIE_SHA1";
    }
    return "?";
}

std::optional<SaslMechanism> sasl_mechanism_from_name(std::string_view name) {
    for (SaslMechanism mechanism :
         {SaslMechanism::External, SaslMechanism::Anonymous, SaslMechanism::DbusCookieSha1}) {
        if (to_string(mechanism) == name) return mechanism;
    }
    return std::nullopt;
}

std::string_view to_string(SaslError error) {
    switch (error) {
        case SaslError::MissingNulByte:
            return "first byte of the connection was not NUL";
        case SaslError::LineTooLong:
            return "authentication line too long";
        case SaslError::InvalidByte:
            return "NUL or non-ASCII byte in the authentication protocol";
        case SaslError::TooManyRejections:
            return "too many failed authentication attempts";
        case SaslError::BeginBeforeOk:
            return "BEGIN before authentication succeeded";
        case SaslError::UnexpectedReply:
            return "unexpected reply from the server";
        case SaslError::InvalidGuid:
            return "server GUID is not 32 hex digits";
        case SaslError::MechanismsExhausted:
            return "all authentication mechanisms were rejected";
    }
    return "?";
}

}  // namespace afbus
