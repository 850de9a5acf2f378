#include "afbus/wire_error.hpp"

namespace afbus {

std::string_view to_string(WireError error) noexcept {
    switch (error) {
        case WireError::SignatureTooLong: return "signature longer than 255 bytes";
        case WireError::SignatureBadTypeCode: return "unknown type code in signature";
        case WireError::SignatureArrayWithoutElement: return "array without element type";
        case WireError::SignatureUnbalancedStruct: return "unbalanced parentheses in signature";
        case WireError::SignatureEmptyStruct: return "struct with no fields";
        case WireError::SignatureDictEntryOutsideArray: return "dict entry outside an array";
        case WireError::SignatureDictEntryNotTwoFields: return "dict entry without exactly two fields";
        case WireError::SignatureDictKeyNotBasic: return "dict entry key is not a basic type";
        case WireError::SignatureUnbalancedDictEntry: return "unbalanced braces in signature";
        case WireError::SignatureArraysTooDeep: return "arrays nested deeper than 32";
        case WireError::SignatureStructsTooDeep: return "structs nested deeper than 32";
        case WireError::SignatureNotSingleCompleteType: return "not a single complete type";
        case WireError::Truncated: return "data ends early";
        case WireError::NonzeroPadding: return "alignment padding is not zero";
        case WireError::BadBoolean: return "boolean is neither 0 nor 1";
        case WireError::StringMissingNul: return "string not followed by NUL";
        case WireError::StringInvalidUtf8: return "string is not valid UTF-8 or contains NUL";
        case WireError::StringTooLong: return "string too long";
        case WireError::BadObjectPath: return "invalid object path";
        case WireError::BadSignatureValue: return "invalid signature value";
        case WireError::ArrayTooLong: return "array longer than 64 MiB";
        case WireError::ArrayLengthMismatch: return "array length does not match its contents";
        case WireError::NestedTooDeep: return "containers nested deeper than 64";
        case WireError::FdIndexOutOfRange: return "unix fd index beyond the fds attached to the message";
        case WireError::TrailingBytes: return "bytes after the last value";
        case WireError::BadEndianFlag: return "endianness flag is neither l nor B";
        case WireError::BadProtocolVersion: return "protocol version is not 1";
        case WireError::BadMessageType: return "message type 0 (invalid)";
        case WireError::ZeroSerial: return "serial is 0";
        case WireError::MessageTooLong: return "message longer than 128 MiB";
        case WireError::HeaderFieldCodeInvalid: return "header field code 0";
        case WireError::HeaderFieldWrongType: return "header field has the wrong type";
        case WireError::HeaderFieldTwice: return "header field appears twice";
        case WireError::MissingPath: return "required PATH header field missing";
        case WireError::MissingInterface: return "required INTERFACE header field missing";
        case WireError::MissingMember: return "required MEMBER header field missing";
        case WireError::MissingErrorName: return "required ERROR_NAME header field missing";
        case WireError::MissingReplySerial: return "required REPLY_SERIAL header field missing";
        case WireError::BadPath: return "invalid object path in PATH";
        case WireError::BadInterface: return "invalid interface name";
        case WireError::BadMember: return "invalid member name";
        case WireError::BadErrorName: return "invalid error name";
        case WireError::BadDestination: return "invalid destination bus name";
        case WireError::BadSender: return "invalid sender bus name";
        case WireError::ZeroReplySerial: return "REPLY_SERIAL is 0";
        case WireError::UsesLocalPath: return "uses the reserved path /org/freedesktop/DBus/Local";
        case WireError::UsesLocalInterface: return "uses the reserved interface org.freedesktop.DBus.Local";
        case WireError::TooManyFds: return "too many unix fds";
        case WireError::TypeMismatch: return "value does not match the signature";
        case WireError::NotEnoughArguments: return "fewer arguments than expected";
        case WireError::BadArgument: return "invalid argument";
    }
    return "unknown wire error";
}

}  // namespace afbus
