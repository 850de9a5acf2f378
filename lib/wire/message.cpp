#include "afbus/message.hpp"

#include <algorithm>
#include <cstring>

#include "afbus/header_encoding.hpp"
#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/validate.hpp"

namespace afbus {
namespace {

constexpr std::string_view kLocalPath = "/org/freedesktop/DBus/Local";
constexpr std::string_view kLocalInterface = "org.freedesktop.DBus.Local";

constexpr std::size_t align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }

std::uint32_t load_u32(const std::byte* p, Endian endian) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return endian == native_endian() ? v : __builtin_bswap32(v);
}

void store_u32(std::byte* p, std::uint32_t v, Endian endian) {
    if (endian != native_endian()) v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
}

// The variant signature each known header field must carry.
constexpr char expected_field_type(std::uint8_t code) {
    switch (static_cast<HeaderField>(code)) {
        case HeaderField::Path: return 'o';
        case HeaderField::Interface:
        case HeaderField::Member:
        case HeaderField::ErrorName:
        case HeaderField::Destination:
        case HeaderField::Sender: return 's';
        case HeaderField::ReplySerial:
        case HeaderField::UnixFds: return 'u';
        case HeaderField::Signature: return 'g';
        case HeaderField::ContainerInstance: return 'o';
        default: return 0;
    }
}

}  // namespace

Expected<std::size_t, WireError> Message::frame_length(std::span<const std::byte, kFixedHeaderLength> prefix) {
    const auto endian_flag = static_cast<char>(prefix[0]);
    if (endian_flag != 'l' && endian_flag != 'B') return Unexpected(WireError::BadEndianFlag);
    if (static_cast<std::uint8_t>(prefix[3]) != 1) return Unexpected(WireError::BadProtocolVersion);
    const auto endian = static_cast<Endian>(endian_flag);
    const std::uint64_t body_length = load_u32(prefix.data() + 4, endian);
    const std::uint64_t fields_length = load_u32(prefix.data() + 12, endian);
    if (fields_length > kMaxArrayLength) return Unexpected(WireError::ArrayTooLong);
    const std::uint64_t total = align8(kFixedHeaderLength + fields_length) + body_length;
    if (total > kMaxMessageLength) return Unexpected(WireError::MessageTooLong);
    return static_cast<std::size_t>(total);
}

namespace {

// The length of the header (with its padding) of a complete message of exactly frame_length bytes.
Expected<std::size_t, WireError> framed_header_length(std::span<const std::byte> wire) {
    if (wire.size() < kFixedHeaderLength) return Unexpected(WireError::Truncated);
    auto length = Message::frame_length(wire.first<kFixedHeaderLength>());
    if (!length) return Unexpected(length.error());
    if (wire.size() < *length) return Unexpected(WireError::Truncated);
    if (wire.size() > *length) return Unexpected(WireError::TrailingBytes);
    return align8(kFixedHeaderLength + load_u32(wire.data() + 12, Endian(wire[0])));
}

}  // namespace

Expected<Message, WireError> Message::parse(std::span<const std::byte> wire, std::vector<Fd> fds) {
    auto header_length = framed_header_length(wire);
    if (!header_length) return Unexpected(header_length.error());
    Message m;
    m.header_.assign(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(*header_length));
    m.body_ = OwnedBytes(
        std::vector<std::byte>(wire.begin() + static_cast<std::ptrdiff_t>(*header_length), wire.end()));
    m.fds_ = std::move(fds);
    return validate(std::move(m));
}

Expected<Message, WireError> Message::parse(std::vector<std::byte> header, std::vector<std::byte> body,
                                            std::vector<Fd> fds) {
    if (header.size() < kFixedHeaderLength) return Unexpected(WireError::Truncated);
    auto length = frame_length(std::span<const std::byte>(header).first<kFixedHeaderLength>());
    if (!length) return Unexpected(length.error());
    if (header.size() + body.size() != *length) return Unexpected(WireError::Truncated);
    Message m;
    m.header_ = std::move(header);
    m.body_ = OwnedBytes(std::move(body));
    m.fds_ = std::move(fds);
    return validate(std::move(m));
}

Expected<Message, WireError> Message::parse(OwnedBytes&& wire, std::vector<Fd> fds) {
    const std::span<const std::byte> bytes = wire.span();
    auto header_length = framed_header_length(bytes);
    if (!header_length) return Unexpected(header_length.error());
    Message m;
    m.header_.assign(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(*header_length));
    wire.drop_front(*header_length);
    m.body_ = std::move(wire);
    m.fds_ = std::move(fds);
    return validate(std::move(m));
}

Expected<Message, WireError> Message::validate(Message m) {
    if (auto r = m.parse_header(); !r) return Unexpected(r.error());
    if (load_u32(m.header_.data() + 4, m.endian()) != m.body_.size()) return Unexpected(WireError::Truncated);
    Decoder body(m.body_.span(), m.endian());
    if (auto r = validate_values(body, m.signature()); !r) return Unexpected(r.error());
    if (body.pos() != m.body_.size()) return Unexpected(WireError::TrailingBytes);
    return m;
}

Expected<void, WireError> Message::parse_header() {
    const Endian endian = this->endian();
    if (type() == MessageType::Invalid) return Unexpected(WireError::BadMessageType);
    serial_ = load_u32(header_.data() + 8, endian);
    if (serial_ == 0) return Unexpected(WireError::ZeroSerial);

    Decoder d(header_, endian, 12);
    std::uint32_t fields_length;
    if (!d.read_u32(fields_length) || !d.align(8)) return Unexpected(d.error());
    const std::size_t end = d.pos() + fields_length;
    if (end > header_.size()) return Unexpected(WireError::Truncated);

    fields_ = Fields{};
    std::uint32_t seen = 0;
    auto text_field = [&](FieldRef& ref, bool (*valid)(std::string_view) noexcept,
                          WireError invalid) -> Expected<void, WireError> {
        std::string_view s;
        if (!d.read_string(s)) return Unexpected(d.error());
        if (!valid(s)) return Unexpected(invalid);
        ref = {static_cast<std::uint32_t>(s.data() - reinterpret_cast<const char*>(header_.data())),
               static_cast<std::uint32_t>(s.size()), true};
        return {};
    };

    while (d.pos() < end) {
        std::uint8_t code;
        std::string_view type;
        if (!d.align(8) || !d.read_u8(code) || !d.read_signature(type)) return Unexpected(d.error());
        if (code == 0) return Unexpected(WireError::HeaderFieldCodeInvalid);
        if (!validate_single_complete_type(type)) return Unexpected(WireError::BadSignatureValue);
        const char expected = expected_field_type(code);
        if (expected == 0) {
            // Unknown fields must be accepted (and are dropped when the bus forwards the message).
            fields_.unknown = true;
            if (auto r = validate_values(d, type, 3); !r) return r;
            continue;
        }
        if (type.size() != 1 || type[0] != expected) return Unexpected(WireError::HeaderFieldWrongType);
        if (seen & (1u << code)) return Unexpected(WireError::HeaderFieldTwice);
        seen |= 1u << code;

        Expected<void, WireError> r;
        switch (static_cast<HeaderField>(code)) {
            case HeaderField::Path:
                r = text_field(fields_.path, is_valid_object_path, WireError::BadPath);
                break;
            case HeaderField::Interface:
                r = text_field(fields_.interface, is_valid_interface_name, WireError::BadInterface);
                break;
            case HeaderField::Member:
                r = text_field(fields_.member, is_valid_member_name, WireError::BadMember);
                break;
            case HeaderField::ErrorName:
                r = text_field(fields_.error_name, is_valid_error_name, WireError::BadErrorName);
                break;
            case HeaderField::Destination:
                r = text_field(fields_.destination, is_valid_bus_name, WireError::BadDestination);
                break;
            case HeaderField::Sender:
                r = text_field(fields_.sender, is_valid_bus_name, WireError::BadSender);
                break;
            case HeaderField::Signature: {
                std::string_view s;
                if (!d.read_signature(s)) return Unexpected(d.error());
                if (!validate_signature(s)) return Unexpected(WireError::BadSignatureValue);
                fields_.signature = {static_cast<std::uint32_t>(s.data() - reinterpret_cast<const char*>(header_.data())),
                                     static_cast<std::uint32_t>(s.size()), true};
                break;
            }
            case HeaderField::ReplySerial: {
                std::uint32_t v;
                if (!d.read_u32(v)) return Unexpected(d.error());
                if (v == 0) return Unexpected(WireError::ZeroReplySerial);
                fields_.reply_serial = v;
                break;
            }
            case HeaderField::UnixFds: {
                std::uint32_t v;
                if (!d.read_u32(v)) return Unexpected(d.error());
                fields_.unix_fds = v;
                break;
            }
            case HeaderField::ContainerInstance: {
                FieldRef ignored;
                r = text_field(ignored, is_valid_object_path, WireError::BadPath);
                fields_.unknown = true;
                break;
            }
            default:
                break;
        }
        if (!r) return r;
    }
    if (d.pos() != end) return Unexpected(WireError::ArrayLengthMismatch);
    if (align8(end) != header_.size()) return Unexpected(WireError::Truncated);
    if (!d.align(8)) return Unexpected(d.error());

    switch (type()) {
        case MessageType::MethodCall:
            if (!fields_.path.present) return Unexpected(WireError::MissingPath);
            if (!fields_.member.present) return Unexpected(WireError::MissingMember);
            break;
        case MessageType::MethodReturn:
            if (!fields_.reply_serial) return Unexpected(WireError::MissingReplySerial);
            break;
        case MessageType::Error:
            if (!fields_.error_name.present) return Unexpected(WireError::MissingErrorName);
            if (!fields_.reply_serial) return Unexpected(WireError::MissingReplySerial);
            break;
        case MessageType::Signal:
            if (!fields_.path.present) return Unexpected(WireError::MissingPath);
            if (!fields_.interface.present) return Unexpected(WireError::MissingInterface);
            if (!fields_.member.present) return Unexpected(WireError::MissingMember);
            break;
        default:
            break;  // unknown types carry no required fields
    }
    // org.freedesktop.DBus.Local is reserved for messages a library synthesises itself.
    if (path() == kLocalPath) return Unexpected(WireError::UsesLocalPath);
    if (interface() == kLocalInterface) return Unexpected(WireError::UsesLocalInterface);
    return {};
}

std::vector<std::byte> Message::wire() const {
    std::vector<std::byte> out;
    out.reserve(size());
    out.insert(out.end(), header_.begin(), header_.end());
    out.insert(out.end(), body_.data(), body_.data() + body_.size());
    return out;
}

void Message::set_serial(std::uint32_t serial) noexcept {
    serial_ = serial;
    store_u32(header_.data() + 8, serial, endian());
}

Expected<Message, WireError> Message::clone() const {
    Message m;
    m.header_ = header_;
    m.body_ = body_.copy();
    m.fields_ = fields_;
    m.serial_ = serial_;
    m.fds_.reserve(fds_.size());
    for (const Fd& fd : fds_) {
        Fd copy = fd.duplicate();
        if (!copy) return Unexpected(WireError::TooManyFds);
        m.fds_.push_back(std::move(copy));
    }
    return m;
}

namespace {

void put_text_field(Encoder& e, HeaderField code, char type, std::string_view value) {
    e.align(8);
    e.put_u8(static_cast<std::uint8_t>(code));
    const char sig[2] = {type, 0};
    e.put_signature(std::string_view(sig, 1));
    if (type == 'g') e.put_signature(value);
    else e.put_string(value);
}

void put_u32_field(Encoder& e, HeaderField code, std::uint32_t value) {
    e.align(8);
    e.put_u8(static_cast<std::uint8_t>(code));
    e.put_signature("u");
    e.put_u32(value);
}

}  // namespace

std::vector<std::byte> encode_header(const HeaderParts& h, Endian endian) {
    Encoder e(endian != native_endian());
    e.reserve(128);
    e.put_u8(static_cast<std::uint8_t>(endian));
    e.put_u8(static_cast<std::uint8_t>(h.type));
    e.put_u8(h.flags);
    e.put_u8(1);
    e.put_u32(h.body_length);
    e.put_u32(h.serial);
    auto mark = e.begin_array(8);
    if (!h.path.empty()) put_text_field(e, HeaderField::Path, 'o', h.path);
    if (!h.interface.empty()) put_text_field(e, HeaderField::Interface, 's', h.interface);
    if (!h.member.empty()) put_text_field(e, HeaderField::Member, 's', h.member);
    if (!h.error_name.empty()) put_text_field(e, HeaderField::ErrorName, 's', h.error_name);
    if (h.reply_serial) put_u32_field(e, HeaderField::ReplySerial, *h.reply_serial);
    if (!h.destination.empty()) put_text_field(e, HeaderField::Destination, 's', h.destination);
    if (!h.sender.empty()) put_text_field(e, HeaderField::Sender, 's', h.sender);
    if (!h.signature.empty()) put_text_field(e, HeaderField::Signature, 'g', h.signature);
    if (h.unix_fds != 0) put_u32_field(e, HeaderField::UnixFds, h.unix_fds);
    e.end_array(mark);
    e.align(8);
    return std::move(e).take();
}

Expected<Message, WireError> Message::with_sender(std::string_view sender) const& {
    auto copy = clone();
    if (!copy) return copy;
    return std::move(*copy).with_sender(sender);
}

Expected<Message, WireError> Message::with_sender(std::string_view sender) && {
    if (!is_valid_bus_name(sender)) return Unexpected(WireError::BadSender);
    // Most messages (a client's, which the bus has not named yet) carry neither a SENDER nor a field
    // the bus drops: SENDER is appended to their fields, which keeps every other field where it is, so
    // that neither a new header nor a new parse of it is needed (a bus does this to every message it
    // routes, libafbus to every message it sends on AF_BUS).
    if (!fields_.unknown && !fields_.sender.present) return std::move(*this).appending_sender(sender);
    HeaderParts parts{type(), flags(), static_cast<std::uint32_t>(body_.size()), serial_,
                      path(), interface(), member(), error_name(), destination(), sender, signature(),
                      fields_.reply_serial, fields_.unix_fds};
    Message m;
    m.header_ = encode_header(parts, endian());
    if (m.header_.size() + body_.size() > kMaxMessageLength) return Unexpected(WireError::MessageTooLong);
    if (auto r = m.parse_header(); !r) return Unexpected(r.error());
    m.body_ = std::move(body_);
    m.fds_ = std::move(fds_);
    return m;
}

Expected<Message, WireError> Message::appending_sender(std::string_view sender) && {
    const Endian endian = this->endian();
    // A header field is a struct (code, variant), 8-aligned: the new one starts at the padding's end.
    const std::size_t fields_end = kFixedHeaderLength + load_u32(header_.data() + 12, endian);
    const std::size_t field_at = align8(fields_end);
    const std::size_t text_at = field_at + 8;  // code, signature "s" (1, 's', nul), the string's length
    const std::size_t new_fields_end = text_at + sender.size() + 1;
    const std::size_t header_size = align8(new_fields_end);
    if (new_fields_end - kFixedHeaderLength > kMaxArrayLength) return Unexpected(WireError::ArrayTooLong);
    if (header_size + body_.size() > kMaxMessageLength) return Unexpected(WireError::MessageTooLong);
    Message m;
    m.header_.reserve(header_size);
    m.header_.assign(header_.begin(), header_.begin() + static_cast<std::ptrdiff_t>(fields_end));
    m.header_.resize(header_size, std::byte{0});  // the padding, and the nul after the name
    m.header_[field_at] = static_cast<std::byte>(HeaderField::Sender);
    m.header_[field_at + 1] = std::byte{1};
    m.header_[field_at + 2] = std::byte{'s'};
    store_u32(m.header_.data() + field_at + 4, static_cast<std::uint32_t>(sender.size()), endian);
    std::memcpy(m.header_.data() + text_at, sender.data(), sender.size());
    store_u32(m.header_.data() + 12, static_cast<std::uint32_t>(new_fields_end - kFixedHeaderLength), endian);
    m.fields_ = fields_;
    m.fields_.sender = {static_cast<std::uint32_t>(text_at), static_cast<std::uint32_t>(sender.size()), true};
    m.serial_ = serial_;
    m.body_ = std::move(body_);
    m.fds_ = std::move(fds_);
    return m;
}

std::string_view to_string(MessageType type) {
    switch (type) {
        case MessageType::MethodCall: return "method_call";
        case MessageType::MethodReturn: return "method_return";
        case MessageType::Error: return "error";
        case MessageType::Signal: return "signal";
        default: return "invalid";
    }
}

std::string Message::describe() const {
    static constexpr std::string_view kTypes[] = {"invalid", "method_call", "method_return", "error", "signal"};
    const auto t = static_cast<std::size_t>(type());
    std::string out(t < std::size(kTypes) ? kTypes[t] : "unknown");
    out += " serial=" + std::to_string(serial_);
    if (reply_serial()) out += " reply_serial=" + std::to_string(*reply_serial());
    auto add = [&out](std::string_view key, std::string_view value) {
        if (value.empty()) return;
        out += ' ';
        out += key;
        out += '=';
        out += value;
    };
    add("sender", sender());
    add("destination", destination());
    add("path", path());
    add("interface", interface());
    add("member", member());
    add("error_name", error_name());
    add("signature", signature());
    return out;
}

MessageReader Message::reader() const { return MessageReader(*this); }

// --- MessageBuilder ---

MessageBuilder MessageBuilder::method_call(std::string_view destination, std::string_view path,
                                           std::string_view interface, std::string_view member) {
    MessageBuilder b(MessageType::MethodCall);
    b.destination_ = destination;
    b.path_ = path;
    b.interface_ = interface;
    b.member_ = member;
    return b;
}

MessageBuilder MessageBuilder::signal(std::string_view path, std::string_view interface,
                                      std::string_view member) {
    MessageBuilder b(MessageType::Signal);
    b.path_ = path;
    b.interface_ = interface;
    b.member_ = member;
    return b;
}

MessageBuilder MessageBuilder::method_return(std::string_view destination, std::uint32_t reply_serial) {
    MessageBuilder b(MessageType::MethodReturn);
    b.destination_ = destination;
    b.reply_serial_ = reply_serial;
    return b;
}

MessageBuilder MessageBuilder::method_return(const Message& call) {
    return method_return(call.sender(), call.serial());
}

MessageBuilder MessageBuilder::error(std::string_view destination, std::uint32_t reply_serial,
                                     std::string_view error_name, std::string_view text) {
    MessageBuilder b(MessageType::Error);
    b.destination_ = destination;
    b.reply_serial_ = reply_serial;
    b.error_name_ = error_name;
    if (!text.empty()) b.append_value(Value::string(std::string(text)));
    return b;
}

MessageBuilder MessageBuilder::error(const Message& call, std::string_view error_name, std::string_view text) {
    return error(call.sender(), call.serial(), error_name, text);
}

MessageBuilder& MessageBuilder::destination(std::string_view name) {
    destination_ = name;
    return *this;
}

MessageBuilder& MessageBuilder::sender(std::string_view name) {
    sender_ = name;
    return *this;
}

MessageBuilder& MessageBuilder::append_value(const Value& value) {
    if (signature_.size() + value.type().size() > kMaxSignatureLength) {
        fail(WireError::SignatureTooLong);
        return *this;
    }
    if (auto r = encode_value(body_, value); !r) fail(r.error());
    signature_ += value.type();
    return *this;
}

std::uint32_t MessageBuilder::add_fd(const Fd& fd) { return add_fd(fd.duplicate()); }

std::uint32_t MessageBuilder::add_fd(Fd&& fd) {
    if (!fd) fail(WireError::BadArgument);
    if (fds_.size() >= kMaxMessageUnixFds) fail(WireError::TooManyFds);
    fds_.push_back(std::move(fd));
    return static_cast<std::uint32_t>(fds_.size() - 1);
}

Expected<Message, WireError> MessageBuilder::build(std::uint32_t serial) {
    if (error_) return Unexpected(*error_);
    if (signature_.size() > kMaxSignatureLength) return Unexpected(WireError::SignatureTooLong);
    // A serial of 0 marks "not sent yet"; the header is validated with a placeholder and patched after.
    HeaderParts parts{type_, flags_, static_cast<std::uint32_t>(body_.size()), serial == 0 ? 1u : serial,
                      path_, interface_, member_, error_name_, destination_, sender_, signature_,
                      reply_serial_, static_cast<std::uint32_t>(fds_.size())};
    Message m;
    m.header_ = encode_header(parts, native_endian());
    if (m.header_.size() + body_.size() > kMaxMessageLength) return Unexpected(WireError::MessageTooLong);
    m.body_ = OwnedBytes(std::move(body_).take());
    m.fds_ = std::move(fds_);
    if (auto r = m.parse_header(); !r) return Unexpected(r.error());
    if (serial == 0) m.set_serial(0);
    return m;
}

// --- MessageReader ---

std::string_view MessageReader::peek_type() const noexcept {
    const std::string_view rest = remaining_signature();
    return rest.substr(0, complete_type_length(rest));
}

Expected<Value, WireError> MessageReader::read_value() {
    const std::string_view type = peek_type();
    if (type.empty()) return Unexpected(WireError::NotEnoughArguments);
    auto v = decode_value(decoder_, type);
    if (v) sig_pos_ += type.size();
    return v;
}

Expected<std::vector<Value>, WireError> MessageReader::read_all() {
    std::vector<Value> values;
    while (!at_end()) {
        auto v = read_value();
        if (!v) return Unexpected(v.error());
        values.push_back(std::move(*v));
    }
    return values;
}

}  // namespace afbus
