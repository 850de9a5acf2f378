// afbus::Message — one D-Bus message: its header fields, its body bytes and the fds that travel with it.
//
// A Message is always valid: parse() validates the header and the whole body exactly per the
// specification before it returns one, and MessageBuilder only produces valid ones. The header and the body
// are kept as two buffers so that a message can be sent with one iovec each, and so that the bus can
// rewrite the header (stitching in the sender) without touching the body.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/decoder.hpp"
#include "afbus/encoder.hpp"
#include "afbus/expected.hpp"
#include "afbus/fd.hpp"
#include "afbus/owned_bytes.hpp"
#include "afbus/value.hpp"

namespace afbus {

enum class MessageType : std::uint8_t { Invalid = 0, MethodCall = 1, MethodReturn = 2, Error = 3, Signal = 4 };

// The type as match rules, busconfig and busctl spell it ("method_call", ...; "invalid" for any other).
std::string_view to_string(MessageType type);

namespace message_flags {
inline constexpr std::uint8_t kNoReplyExpected = 0x1;
inline constexpr std::uint8_t kNoAutoStart = 0x2;
inline constexpr std::uint8_t kAllowInteractiveAuthorization = 0x4;
}  // namespace message_flags

enum class HeaderField : std::uint8_t {
    Invalid = 0,
    Path = 1,
    Interface = 2,
    Member = 3,
    ErrorName = 4,
    ReplySerial = 5,
    Destination = 6,
    Sender = 7,
    Signature = 8,
    UnixFds = 9,
    // Not in the specification: libdbus 1.14 reserves it for its experimental containers and rejects any
    // type but 'o'. We check it the same way and, like any other extra field, strip it when forwarding.
    ContainerInstance = 10,
};

inline constexpr std::size_t kMaxMessageLength = 128u * 1024 * 1024;
inline constexpr std::size_t kFixedHeaderLength = 16;  // yyyyuu + the fields array's length
// The most fds one message may carry (libdbus and the Linux SCM_RIGHTS limit agree on 253).
inline constexpr std::size_t kMaxMessageUnixFds = 253;

class MessageReader;

class Message {
public:
    Message() = default;
    Message(Message&&) noexcept = default;
    Message& operator=(Message&&) noexcept = default;
    Message(const Message&) = delete;
    Message& operator=(const Message&) = delete;

    // From the first 16 bytes of a message: its total length (header, padding and body), or why the
    // stream cannot be a D-Bus message. Used by transports to frame a byte stream.
    static Expected<std::size_t, WireError> frame_length(std::span<const std::byte, kFixedHeaderLength> prefix);

    // Validates and takes one complete message (exactly frame_length bytes) and the fds received with it.
    static Expected<Message, WireError> parse(std::span<const std::byte> wire, std::vector<Fd> fds = {});
    static Expected<Message, WireError> parse(std::vector<std::byte> header, std::vector<std::byte> body,
                                              std::vector<Fd> fds = {});
    // The same for a message a transport read into one block of its own (exactly frame_length bytes): the
    // header is copied out, the body stays where it was read. `wire` is taken only after the copy is
    // made: should that throw std::bad_alloc, the caller still has it.
    static Expected<Message, WireError> parse(OwnedBytes&& wire, std::vector<Fd> fds = {});

    [[nodiscard]] MessageType type() const noexcept { return static_cast<MessageType>(byte_at(1)); }
    [[nodiscard]] std::uint8_t flags() const noexcept { return byte_at(2); }
    [[nodiscard]] bool expects_reply() const noexcept {
        return type() == MessageType::MethodCall && !(flags() & message_flags::kNoReplyExpected);
    }
    [[nodiscard]] Endian endian() const noexcept { return static_cast<Endian>(byte_at(0)); }
    [[nodiscard]] std::uint32_t serial() const noexcept { return serial_; }

    [[nodiscard]] std::string_view path() const noexcept { return field(fields_.path); }
    [[nodiscard]] std::string_view interface() const noexcept { return field(fields_.interface); }
    [[nodiscard]] std::string_view member() const noexcept { return field(fields_.member); }
    [[nodiscard]] std::string_view error_name() const noexcept { return field(fields_.error_name); }
    [[nodiscard]] std::string_view destination() const noexcept { return field(fields_.destination); }
    [[nodiscard]] std::string_view sender() const noexcept { return field(fields_.sender); }
    [[nodiscard]] std::string_view signature() const noexcept { return field(fields_.signature); }
    [[nodiscard]] std::optional<std::uint32_t> reply_serial() const noexcept { return fields_.reply_serial; }
    // The UNIX_FDS header field (0 when absent).
    [[nodiscard]] std::uint32_t unix_fds() const noexcept { return fields_.unix_fds; }
    // True when the header carries fields other than the nine the specification defines.
    [[nodiscard]] bool has_unknown_fields() const noexcept { return fields_.unknown; }

    [[nodiscard]] std::span<const std::byte> header_bytes() const noexcept { return header_; }
    [[nodiscard]] std::span<const std::byte> body_bytes() const noexcept { return body_.span(); }
    [[nodiscard]] std::size_t size() const noexcept { return header_.size() + body_.size(); }
    [[nodiscard]] const std::vector<Fd>& fds() const noexcept { return fds_; }
    [[nodiscard]] std::vector<Fd> take_fds() noexcept { return std::move(fds_); }
    // For transports: the fds that arrived with this message's bytes (its UNIX_FDS count of them).
    void attach_fds(std::vector<Fd> fds) noexcept { fds_ = std::move(fds); }

    // The whole message in one buffer (for captures and tests; sending uses the two spans).
    [[nodiscard]] std::vector<std::byte> wire() const;

    // Reads the body; see afbus/types.hpp for typed reads.
    [[nodiscard]] MessageReader reader() const;

    // Serials are assigned when a connection sends; this patches the fixed header in place.
    void set_serial(std::uint32_t serial) noexcept;

    // A copy with duplicated fds (fails only if dup fails).
    [[nodiscard]] Expected<Message, WireError> clone() const;

    // A copy of this message whose header has `sender` as SENDER and no fields beyond the nine known ones
    // (the bus strips unknown header fields it forwards). Native byte order is kept as the message's own;
    // the body is copied verbatim, never re-marshalled.
    [[nodiscard]] Expected<Message, WireError> with_sender(std::string_view sender) const&;
    // The same, taking this message's body and fds instead of copying them.
    [[nodiscard]] Expected<Message, WireError> with_sender(std::string_view sender) &&;

    // One-line description for logs and monitors.
    [[nodiscard]] std::string describe() const;

private:
    friend class MessageBuilder;

    struct FieldRef {
        std::uint32_t offset = 0;
        std::uint32_t length = 0;
        bool present = false;
    };
    struct Fields {
        FieldRef path, interface, member, error_name, destination, sender, signature;
        std::optional<std::uint32_t> reply_serial;
        std::uint32_t unix_fds = 0;
        bool unknown = false;
    };

    static Expected<Message, WireError> validate(Message message);
    Expected<void, WireError> parse_header();
    // with_sender() for a message with no SENDER and no field the bus drops.
    Expected<Message, WireError> appending_sender(std::string_view sender) &&;

    [[nodiscard]] std::uint8_t byte_at(std::size_t i) const noexcept {
        return header_.empty() ? 0 : static_cast<std::uint8_t>(header_[i]);
    }
    [[nodiscard]] std::string_view field(const FieldRef& f) const noexcept {
        if (!f.present) return {};
        return {reinterpret_cast<const char*>(header_.data()) + f.offset, f.length};
    }

    std::vector<std::byte> header_;
    OwnedBytes body_;
    std::vector<Fd> fds_;
    Fields fields_;
    std::uint32_t serial_ = 0;
};

// Builds a message in native byte order. Appending is infallible to call; the first invalid value (bad
// UTF-8, a bad object path, a type mismatch) is remembered and returned by build().
class MessageBuilder {
public:
    static MessageBuilder method_call(std::string_view destination, std::string_view path,
                                      std::string_view interface, std::string_view member);
    static MessageBuilder signal(std::string_view path, std::string_view interface, std::string_view member);
    static MessageBuilder method_return(const Message& call);
    static MessageBuilder error(const Message& call, std::string_view error_name, std::string_view text);
    // Replies built from the parts of a call (for code that keeps only those parts).
    static MessageBuilder method_return(std::string_view destination, std::uint32_t reply_serial);
    static MessageBuilder error(std::string_view destination, std::uint32_t reply_serial,
                                std::string_view error_name, std::string_view text);

    MessageBuilder& destination(std::string_view name);
    MessageBuilder& sender(std::string_view name);
    MessageBuilder& flags(std::uint8_t flags) {
        flags_ = flags;
        return *this;
    }
    MessageBuilder& no_reply_expected(bool on = true) {
        flags_ = on ? (flags_ | message_flags::kNoReplyExpected) : (flags_ & ~message_flags::kNoReplyExpected);
        return *this;
    }
    MessageBuilder& no_auto_start(bool on = true) {
        flags_ = on ? (flags_ | message_flags::kNoAutoStart) : (flags_ & ~message_flags::kNoAutoStart);
        return *this;
    }

    // Dynamic values (the typed `append` lives in afbus/types.hpp).
    MessageBuilder& append_value(const Value& value);
    // Adds an fd (dup'd) to the message; returns its index for an 'h' value.
    std::uint32_t add_fd(const Fd& fd);
    std::uint32_t add_fd(Fd&& fd);

    // Low-level access for the typed layer: the body encoder, the signature being built, and failure.
    Encoder& body() noexcept { return body_; }
    void append_signature(std::string_view type) { signature_ += type; }
    void fail(WireError e) noexcept {
        if (!error_) error_ = e;
    }

    [[nodiscard]] MessageType type() const noexcept { return type_; }
    // Consumes the builder's contents (it is empty afterwards).
    Expected<Message, WireError> build(std::uint32_t serial = 0);

private:
    MessageBuilder(MessageType type) : type_(type) {}

    MessageType type_;
    std::uint8_t flags_ = 0;
    std::string path_, interface_, member_, error_name_, destination_, sender_;
    std::optional<std::uint32_t> reply_serial_;
    std::string signature_;
    Encoder body_;
    std::vector<Fd> fds_;
    std::optional<WireError> error_;
};

// Walks a message body value by value. Typed reads are in afbus/types.hpp.
class MessageReader {
public:
    MessageReader(const Message& message) noexcept
        : message_(&message),
          decoder_(message.body_bytes(), message.endian()),
          signature_(message.signature()) {}

    [[nodiscard]] bool at_end() const noexcept { return sig_pos_ >= signature_.size(); }
    // The complete type of the next value ("" at the end).
    [[nodiscard]] std::string_view peek_type() const noexcept;
    [[nodiscard]] std::string_view remaining_signature() const noexcept { return signature_.substr(sig_pos_); }

    Expected<Value, WireError> read_value();
    Expected<std::vector<Value>, WireError> read_all();

    // For the typed layer.
    Decoder& decoder() noexcept { return decoder_; }
    const Message& message() const noexcept { return *message_; }
    void advance_signature(std::size_t n) noexcept { sig_pos_ += n; }

private:
    const Message* message_;
    Decoder decoder_;
    std::string_view signature_;
    std::size_t sig_pos_ = 0;
};

}  // namespace afbus
