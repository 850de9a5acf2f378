#include "afbus/match_rule.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "afbus/names.hpp"
#include "afbus/signature.hpp"

namespace afbus {
namespace {

// dbus-daemon refuses longer rule texts (with LimitsExceeded rather than MatchRuleInvalid).
constexpr std::size_t kMaxMatchRuleLength = 1024;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A value as dbus-daemon reads it: 'quoted' runs taken literally, \' outside quotes is an apostrophe
// (a backslash before anything else stays a backslash), an unquoted ',' ends the value.
Expected<std::string, MatchRuleError> parse_value(std::string_view text, std::size_t& pos) {
    std::string value;
    enum class Quote { None, Apostrophe, Backslash } quote = Quote::None;
    for (; pos < text.size(); ++pos) {
        const char c = text[pos];
        if (quote == Quote::None) {
            if (c == '\'') quote = Quote::Apostrophe;
            else if (c == '\\') quote = Quote::Backslash;
            else if (c == ',') {
                ++pos;
                return value;
            } else value += c;
        } else if (quote == Quote::Backslash) {
            if (c != '\'') value += '\\';
            value += c;
            quote = Quote::None;
        } else {
            if (c == '\'') quote = Quote::None;
            else value += c;
        }
    }
    if (quote == Quote::Backslash) value += '\\';
    if (quote == Quote::Apostrophe) return Unexpected(MatchRuleError::Syntax);
    return value;
}

// Valid as the start of a bus name or interface name: like a bus name, but one element suffices.
bool is_valid_namespace(std::string_view ns) {
    if (ns.empty() || ns.size() > kMaxNameLength) return false;
    if (ns[0] == ':') return is_valid_unique_name(ns) || is_valid_unique_name(std::string(ns) + ".x");
    return is_valid_well_known_name(ns) || is_valid_well_known_name(std::string(ns) + ".x");
}

void append_pair(std::string& out, std::string_view key, std::string_view value) {
    if (!out.empty()) out += ',';
    out += key;
    out += "='";
    for (char c : value) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    out += '\'';
}

bool path_prefix_match(std::string_view arg, std::string_view value) {
    if (arg == value) return true;
    if (!value.empty() && value.back() == '/' && arg.starts_with(value)) return true;
    if (!arg.empty() && arg.back() == '/' && value.starts_with(arg)) return true;
    return false;
}

}  // namespace

std::string_view to_string(MatchRuleError error) {
    switch (error) {
        case MatchRuleError::Syntax: return "malformed match rule (unbalanced quotes or a key without '=')";
        case MatchRuleError::UnknownKey: return "unknown key in match rule";
        case MatchRuleError::DuplicateKey: return "key specified twice in match rule";
        case MatchRuleError::BadType: return "type is not signal, method_call, method_return or error";
        case MatchRuleError::BadSender: return "sender is not a valid bus name";
        case MatchRuleError::BadInterface: return "interface is not a valid interface name";
        case MatchRuleError::BadMember: return "member is not a valid member name";
        case MatchRuleError::BadPath: return "path or path_namespace is not a valid object path";
        case MatchRuleError::PathAndNamespace: return "cannot specify both path and path_namespace";
        case MatchRuleError::BadDestination: return "destination is not a valid bus name";
        case MatchRuleError::ArgIndexTooLarge: return "argument key malformed or its number above 63";
        case MatchRuleError::BadArgPath: return "argument path match malformed";
        case MatchRuleError::BadArg0Namespace: return "arg0namespace is not a valid prefix of a bus name";
        case MatchRuleError::BadEavesdrop: return "eavesdrop is not true or false";
        case MatchRuleError::TooLong: return "match rule text is too long";
    }
    return "invalid match rule";
}

namespace {

// A rule as parse() collects it, before it is laid out as a record.
struct RuleDraft {
    std::uint8_t type = 0;
    std::uint8_t eavesdrop = 0;
    std::array<std::optional<std::string>, kMatchFieldCount> fields;
    struct Arg {
        std::uint8_t index;
        MatchRule::ArgCondition::Kind kind;
        std::string value;
    };
    std::vector<Arg> args;
};

void put_u16(std::string& record, std::size_t offset, std::size_t value) {
    const auto v = static_cast<std::uint16_t>(value);
    record[offset] = static_cast<char>(v & 0xff);
    record[offset + 1] = static_cast<char>(v >> 8);
}

std::string encode(const RuleDraft& draft) {
    std::size_t strings_size = 0;
    for (const auto& f : draft.fields) strings_size += f ? f->size() : 0;
    for (const auto& a : draft.args) strings_size += a.value.size();
    const std::size_t strings_start = kMatchRecordHeaderSize + draft.args.size() * kMatchRecordArgSize;
    std::string record(strings_start, '\0');
    record.reserve(strings_start + strings_size);
    record[0] = static_cast<char>(kMatchRecordVersion);
    record[kMatchRecordType] = static_cast<char>(draft.type);
    record[kMatchRecordEavesdrop] = static_cast<char>(draft.eavesdrop);
    record[kMatchRecordArgCount] = static_cast<char>(draft.args.size());
    auto add_string = [&record](std::size_t slice_offset, const std::optional<std::string>& value) {
        put_u16(record, slice_offset, value ? record.size() : 0);
        put_u16(record, slice_offset + 2, value ? value->size() : kMatchRecordAbsent);
        if (value) record += *value;
    };
    for (std::size_t i = 0; i < kMatchFieldCount; ++i) add_string(kMatchRecordSlices + 4 * i, draft.fields[i]);
    for (std::size_t i = 0; i < draft.args.size(); ++i) {
        const std::size_t at = kMatchRecordHeaderSize + i * kMatchRecordArgSize;
        record[at] = static_cast<char>(draft.args[i].index);
        record[at + 1] = static_cast<char>(draft.args[i].kind);
        add_string(at + 2, draft.args[i].value);
    }
    put_u16(record, kMatchRecordSize, record.size());
    return record;
}

}  // namespace

MatchRule::MatchRule() : record_(encode(RuleDraft{})) {}

Expected<MatchRule, MatchRuleError> MatchRule::parse(std::string_view text) {
    if (text.size() > kMaxMatchRuleLength) return Unexpected(MatchRuleError::TooLong);
    RuleDraft rule;
    std::uint64_t args_seen = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
        while (pos < text.size() && is_space(text[pos])) ++pos;
        if (pos >= text.size()) break;
        // As dbus-daemon: the key runs to '=' or white space, white space may precede the '=', and an
        // empty key ends the rule (whatever follows is ignored).
        const std::size_t key_start = pos;
        while (pos < text.size() && text[pos] != '=' && !is_space(text[pos])) ++pos;
        const std::string_view key = text.substr(key_start, pos - key_start);
        while (pos < text.size() && is_space(text[pos])) ++pos;
        if (pos >= text.size() || text[pos] != '=') return Unexpected(MatchRuleError::Syntax);
        ++pos;
        if (key.empty()) break;
        auto value = parse_value(text, pos);
        if (!value) return Unexpected(value.error());
        std::string& v = *value;

        auto set_once = [&rule, &v](std::size_t field) -> Expected<void, MatchRuleError> {
            if (rule.fields[field]) return Unexpected(MatchRuleError::DuplicateKey);
            rule.fields[field] = std::move(v);
            return {};
        };
        Expected<void, MatchRuleError> r;
        if (key == "type") {
            if (rule.type != 0) return Unexpected(MatchRuleError::DuplicateKey);
            if (v == "signal") rule.type = static_cast<std::uint8_t>(MessageType::Signal);
            else if (v == "method_call") rule.type = static_cast<std::uint8_t>(MessageType::MethodCall);
            else if (v == "method_return") rule.type = static_cast<std::uint8_t>(MessageType::MethodReturn);
            else if (v == "error") rule.type = static_cast<std::uint8_t>(MessageType::Error);
            else return Unexpected(MatchRuleError::BadType);
        } else if (key == "sender") {
            if (!is_valid_bus_name(v)) return Unexpected(MatchRuleError::BadSender);
            r = set_once(kMatchFieldSender);
        } else if (key == "interface") {
            if (!is_valid_interface_name(v)) return Unexpected(MatchRuleError::BadInterface);
            r = set_once(kMatchFieldInterface);
        } else if (key == "member") {
            if (!is_valid_member_name(v)) return Unexpected(MatchRuleError::BadMember);
            r = set_once(kMatchFieldMember);
        } else if (key == "path") {
            if (!is_valid_object_path(v)) return Unexpected(MatchRuleError::BadPath);
            if (rule.fields[kMatchFieldPathNamespace]) return Unexpected(MatchRuleError::PathAndNamespace);
            r = set_once(kMatchFieldPath);
        } else if (key == "path_namespace") {
            if (!is_valid_object_path(v)) return Unexpected(MatchRuleError::BadPath);
            if (rule.fields[kMatchFieldPath]) return Unexpected(MatchRuleError::PathAndNamespace);
            r = set_once(kMatchFieldPathNamespace);
        } else if (key == "destination") {
            if (!is_valid_bus_name(v)) return Unexpected(MatchRuleError::BadDestination);
            r = set_once(kMatchFieldDestination);
        } else if (key == "eavesdrop") {
            if (rule.eavesdrop != 0) return Unexpected(MatchRuleError::DuplicateKey);
            if (v == "true") rule.eavesdrop = 2;
            else if (v == "false") rule.eavesdrop = 1;
            else return Unexpected(MatchRuleError::BadEavesdrop);
        } else if (key.starts_with("arg")) {
            // argN, argNpath, arg0namespace; N read as dbus-daemon does (strtoul).
            const std::string number(key.substr(3));
            char* end = nullptr;
            const unsigned long index = std::strtoul(number.c_str(), &end, 10);
            if (end == number.c_str()) return Unexpected(MatchRuleError::ArgIndexTooLarge);
            const std::string_view suffix(end);
            ArgCondition::Kind kind;
            if (suffix.empty()) kind = ArgCondition::Kind::String;
            else if (suffix == "path") kind = ArgCondition::Kind::Path;
            else if (suffix == "namespace") kind = ArgCondition::Kind::Namespace;
            else return Unexpected(MatchRuleError::UnknownKey);
            if (index >= kMaxMatchArgs) return Unexpected(MatchRuleError::ArgIndexTooLarge);
            if (kind == ArgCondition::Kind::Namespace && index != 0) return Unexpected(MatchRuleError::UnknownKey);
            if (args_seen & (std::uint64_t{1} << index)) return Unexpected(MatchRuleError::DuplicateKey);
            if (kind == ArgCondition::Kind::Namespace && !is_valid_namespace(v))
                return Unexpected(MatchRuleError::BadArg0Namespace);
            args_seen |= std::uint64_t{1} << index;
            rule.args.push_back({static_cast<std::uint8_t>(index), kind, std::move(v)});
        } else {
            return Unexpected(MatchRuleError::UnknownKey);
        }
        if (!r) return Unexpected(r.error());
    }
    std::sort(rule.args.begin(), rule.args.end(),
              [](const RuleDraft::Arg& a, const RuleDraft::Arg& b) { return a.index < b.index; });
    MatchRule compiled;
    compiled.record_ = encode(rule);
    return compiled;
}

MatchRule MatchRule::with_sender(std::string_view sender) const {
    RuleDraft draft;
    draft.type = byte_at(kMatchRecordType);
    draft.eavesdrop = byte_at(kMatchRecordEavesdrop);
    for (std::size_t i = 0; i < kMatchFieldCount; ++i)
        if (auto value = field(i)) draft.fields[i] = std::string(*value);
    draft.fields[kMatchFieldSender] = std::string(sender);
    for (ArgCondition& arg : args())
        draft.args.push_back({static_cast<std::uint8_t>(arg.index), arg.kind, std::move(arg.value)});
    MatchRule rule;
    rule.record_ = encode(draft);
    return rule;
}

Expected<MatchRule, std::string> MatchRule::load(std::span<const std::byte> bytes) {
    auto fail = [](std::string reason) { return Unexpected("match rule record: " + std::move(reason)); };
    if (bytes.size() < kMatchRecordHeaderSize) return fail("shorter than its header");
    if (bytes.size() > kMaxMatchRecordSize) return fail("longer than " + std::to_string(kMaxMatchRecordSize) + " bytes");
    MatchRule rule;
    rule.record_.assign(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    if (rule.byte_at(0) != kMatchRecordVersion) return fail("unknown version " + std::to_string(rule.byte_at(0)));
    if (rule.u16_at(kMatchRecordSize) != bytes.size()) return fail("size field disagrees with the record's length");
    if (rule.u16_at(kMatchRecordReserved) != 0) return fail("reserved field is not zero");
    if (rule.byte_at(kMatchRecordType) > static_cast<std::uint8_t>(MessageType::Signal)) return fail("unknown message type");
    if (rule.byte_at(kMatchRecordEavesdrop) > 2) return fail("eavesdrop is not 0, 1 or 2");
    const std::size_t arg_count = rule.byte_at(kMatchRecordArgCount);
    if (arg_count > kMaxMatchArgs) return fail("more than 64 argument conditions");
    const std::size_t strings_start = kMatchRecordHeaderSize + arg_count * kMatchRecordArgSize;
    if (strings_start > bytes.size()) return fail("argument conditions run past the end");
    if (bytes.size() - strings_start > kMaxMatchRecordStrings) return fail("string section too long");

    // The layout is canonical: the strings follow one another in slice order, with no gaps, up to the
    // record's end. So a rule has exactly one record, and every slice lies inside it.
    std::size_t next_string = strings_start;
    auto slice_ok = [&rule, &next_string](std::size_t at) {
        const std::size_t offset = rule.u16_at(at), length = rule.u16_at(at + 2);
        if (length == kMatchRecordAbsent) return offset == 0;
        if (offset != next_string || offset + length > rule.record_.size()) return false;
        next_string += length;
        return true;
    };
    for (std::size_t i = 0; i < kMatchFieldCount; ++i)
        if (!slice_ok(kMatchRecordSlices + 4 * i)) return fail("string slice not where the layout puts it");
    int previous_index = -1;
    for (std::size_t i = 0; i < arg_count; ++i) {
        const std::size_t at = rule.arg_record(i);
        const int index = rule.byte_at(at);
        const std::uint8_t kind = rule.byte_at(at + 1);
        if (index >= kMaxMatchArgs || index <= previous_index) return fail("argument indexes not increasing below 64");
        if (kind > static_cast<std::uint8_t>(ArgCondition::Kind::Namespace)) return fail("unknown argument kind");
        if (rule.u16_at(at + 4) == kMatchRecordAbsent || !slice_ok(at + 2)) return fail("argument value not where the layout puts it");
        const std::string_view value = *rule.slice_at(at + 2);
        if (static_cast<ArgCondition::Kind>(kind) == ArgCondition::Kind::Namespace && (index != 0 || !is_valid_namespace(value)))
            return fail("invalid arg0namespace");
        previous_index = index;
    }
    if (next_string != rule.record_.size()) return fail("bytes after the last string");
    // The same validity parse() demands, so that a loaded rule means what its text would.
    auto valid = [&rule](std::size_t f, bool (*check)(std::string_view)) { return !rule.field(f) || check(*rule.field(f)); };
    if (!valid(kMatchFieldSender, is_valid_bus_name) || !valid(kMatchFieldDestination, is_valid_bus_name))
        return fail("invalid bus name");
    if (!valid(kMatchFieldInterface, is_valid_interface_name)) return fail("invalid interface name");
    if (!valid(kMatchFieldMember, is_valid_member_name)) return fail("invalid member name");
    if (!valid(kMatchFieldPath, is_valid_object_path) || !valid(kMatchFieldPathNamespace, is_valid_object_path))
        return fail("invalid object path");
    if (rule.path() && rule.path_namespace()) return fail("both path and path_namespace");
    return rule;
}

std::uint16_t MatchRule::u16_at(std::size_t offset) const {
    return static_cast<std::uint16_t>(byte_at(offset) | (byte_at(offset + 1) << 8));
}

std::optional<std::string_view> MatchRule::slice_at(std::size_t offset) const {
    const std::uint16_t length = u16_at(offset + 2);
    if (length == kMatchRecordAbsent) return std::nullopt;
    return std::string_view(record_).substr(u16_at(offset), length);
}

std::optional<std::string_view> MatchRule::field(std::size_t field_index) const {
    return slice_at(kMatchRecordSlices + 4 * field_index);
}

std::size_t MatchRule::arg_record(std::size_t i) const { return kMatchRecordHeaderSize + i * kMatchRecordArgSize; }

std::optional<MessageType> MatchRule::type() const {
    const std::uint8_t t = byte_at(kMatchRecordType);
    if (t == 0) return std::nullopt;
    return static_cast<MessageType>(t);
}

std::optional<bool> MatchRule::eavesdrop() const {
    const std::uint8_t e = byte_at(kMatchRecordEavesdrop);
    if (e == 0) return std::nullopt;
    return e == 2;
}

std::optional<std::string_view> MatchRule::string_arg0() const {
    if (arg_count() == 0) return std::nullopt;
    const std::size_t at = arg_record(0);
    if (byte_at(at) != 0 || static_cast<ArgCondition::Kind>(byte_at(at + 1)) != ArgCondition::Kind::String)
        return std::nullopt;
    return slice_at(at + 2);
}

std::vector<MatchRule::ArgCondition> MatchRule::args() const {
    std::vector<ArgCondition> out;
    out.reserve(arg_count());
    for (std::size_t i = 0; i < arg_count(); ++i) {
        const std::size_t at = arg_record(i);
        out.push_back(ArgCondition{byte_at(at), static_cast<ArgCondition::Kind>(byte_at(at + 1)), std::string(*slice_at(at + 2))});
    }
    return out;
}

// Records are canonical (see load()), so equal rules have equal bytes.
bool operator==(const MatchRule& a, const MatchRule& b) { return a.record_ == b.record_; }

std::string MatchRule::to_string() const {
    std::string out;
    if (const auto t = type()) append_pair(out, "type", afbus::to_string(*t));
    if (const auto v = sender()) append_pair(out, "sender", *v);
    if (const auto v = interface()) append_pair(out, "interface", *v);
    if (const auto v = member()) append_pair(out, "member", *v);
    if (const auto v = path()) append_pair(out, "path", *v);
    if (const auto v = path_namespace()) append_pair(out, "path_namespace", *v);
    if (const auto v = destination()) append_pair(out, "destination", *v);
    if (const auto e = eavesdrop()) append_pair(out, "eavesdrop", *e ? "true" : "false");
    for (std::size_t i = 0; i < arg_count(); ++i) {
        const std::size_t at = arg_record(i);
        std::string key = "arg" + std::to_string(byte_at(at));
        const auto kind = static_cast<ArgCondition::Kind>(byte_at(at + 1));
        if (kind == ArgCondition::Kind::Path) key += "path";
        if (kind == ArgCondition::Kind::Namespace) key += "namespace";
        append_pair(out, key, *slice_at(at + 2));
    }
    return out;
}

bool MatchRule::matches(const Message& m, bool check_well_known_sender) const {
    if (const auto sender = this->sender(); sender && m.sender() != *sender) {
        const bool well_known = !sender->empty() && (*sender)[0] != ':';
        if (check_well_known_sender || !well_known) return false;
    }
    if (const auto destination = this->destination(); destination && m.destination() != *destination) return false;
    return matches_except_names(m);
}

bool MatchRule::matches_except_names(const Message& m) const {
    if (const auto t = type(); t && m.type() != *t) return false;
    if (const auto v = interface(); v && m.interface() != *v) return false;
    if (const auto v = member(); v && m.member() != *v) return false;
    if (const auto v = path(); v && m.path() != *v) return false;
    if (const auto path_namespace = this->path_namespace()) {
        // As dbus-daemon: a message without PATH (a return, an error) is in no namespace, not even "/".
        const std::string_view p = m.path();
        const std::string_view ns = *path_namespace;
        if (p.empty()) return false;
        if (ns != "/" && p != ns && !(p.starts_with(ns) && p.size() > ns.size() && p[ns.size()] == '/')) return false;
    }
    if (arg_count() == 0) return true;

    // Walk the body up to the last argument a condition looks at.
    MessageReader reader(m);
    int index = 0;
    for (std::size_t i = 0; i < arg_count(); ++i) {
        const std::size_t at = arg_record(i);
        const int wanted = byte_at(at);
        const auto kind = static_cast<ArgCondition::Kind>(byte_at(at + 1));
        const std::string_view expected = *slice_at(at + 2);
        while (index < wanted) {
            if (reader.at_end()) return false;
            if (!reader.read_value()) return false;
            ++index;
        }
        if (reader.at_end()) return false;
        const char type = reader.peek_type()[0];
        auto value = reader.read_value();
        ++index;
        if (!value) return false;
        switch (kind) {
            case ArgCondition::Kind::String:
                if (type != 's' || value->text() != expected) return false;
                break;
            case ArgCondition::Kind::Path:
                if ((type != 's' && type != 'o') || !path_prefix_match(value->text(), expected)) return false;
                break;
            case ArgCondition::Kind::Namespace: {
                if (type != 's') return false;
                const std::string& arg = value->text();
                const std::string_view ns = expected;
                if (arg != ns && !(arg.starts_with(ns) && arg.size() > ns.size() && arg[ns.size()] == '.')) return false;
                break;
            }
        }
    }
    return true;
}

}  // namespace afbus
