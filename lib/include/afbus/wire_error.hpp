// Why a signature, name, value or message was refused. One enum for the whole wire format so that a parse
// failure can be reported (and logged against the peer that sent it) without allocating.
#pragma once

#include <cstdint>
#include <string_view>

namespace afbus {

enum class WireError : std::uint8_t {
    // signatures
    SignatureTooLong,
    SignatureBadTypeCode,
    SignatureArrayWithoutElement,
    SignatureUnbalancedStruct,
    SignatureEmptyStruct,
    SignatureDictEntryOutsideArray,
    SignatureDictEntryNotTwoFields,
    SignatureDictKeyNotBasic,
    SignatureUnbalancedDictEntry,
    SignatureArraysTooDeep,
    SignatureStructsTooDeep,
    SignatureNotSingleCompleteType,
    // values
    Truncated,
    NonzeroPadding,
    BadBoolean,
    StringMissingNul,
    StringInvalidUtf8,
    StringTooLong,
    BadObjectPath,
    BadSignatureValue,
    ArrayTooLong,
    ArrayLengthMismatch,
    NestedTooDeep,
    FdIndexOutOfRange,  // only when an 'h' value is read as a UnixFd; parsing accepts any index
    TrailingBytes,
    // message framing and header
    BadEndianFlag,
    BadProtocolVersion,
    BadMessageType,
    ZeroSerial,
    MessageTooLong,
    HeaderFieldCodeInvalid,
    HeaderFieldWrongType,
    HeaderFieldTwice,
    MissingPath,
    MissingInterface,
    MissingMember,
    MissingErrorName,
    MissingReplySerial,
    BadPath,
    BadInterface,
    BadMember,
    BadErrorName,
    BadDestination,
    BadSender,
    ZeroReplySerial,
    UsesLocalPath,
    UsesLocalInterface,
    TooManyFds,
    // builder / typed reader
    TypeMismatch,
    NotEnoughArguments,
    BadArgument,
};

// A short English phrase for logs and error replies ("array length does not match its contents").
std::string_view to_string(WireError error) noexcept;

}  // namespace afbus
