#include "afbus/match_rule.hpp"

#include <algorithm>
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

std::string_view type_name(MessageType t) {
    switch (t) {
        case MessageType::MethodCall: return "method_call";
        case MessageType::MethodReturn: return "method_return";
        case MessageType::Error: return "error";
        case MessageType::Signal: return "signal";
        default: return "invalid";
    }
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

Expected<MatchRule, MatchRuleError> MatchRule::parse(std::string_view text) {
    if (text.size() > kMaxMatchRuleLength) return Unexpected(MatchRuleError::TooLong);
    MatchRule rule;
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

        auto set_once = [&rule](Slice& field, std::string_view v) -> Expected<void, MatchRuleError> {
            if (field) return Unexpected(MatchRuleError::DuplicateKey);
            field = rule.store(v);
            return {};
        };
        Expected<void, MatchRuleError> r;
        if (key == "type") {
            if (rule.type_) return Unexpected(MatchRuleError::DuplicateKey);
            if (v == "signal") rule.type_ = MessageType::Signal;
            else if (v == "method_call") rule.type_ = MessageType::MethodCall;
            else if (v == "method_return") rule.type_ = MessageType::MethodReturn;
            else if (v == "error") rule.type_ = MessageType::Error;
            else return Unexpected(MatchRuleError::BadType);
        } else if (key == "sender") {
            if (!is_valid_bus_name(v)) return Unexpected(MatchRuleError::BadSender);
            r = set_once(rule.sender_, v);
        } else if (key == "interface") {
            if (!is_valid_interface_name(v)) return Unexpected(MatchRuleError::BadInterface);
            r = set_once(rule.interface_, v);
        } else if (key == "member") {
            if (!is_valid_member_name(v)) return Unexpected(MatchRuleError::BadMember);
            r = set_once(rule.member_, v);
        } else if (key == "path") {
            if (!is_valid_object_path(v)) return Unexpected(MatchRuleError::BadPath);
            if (rule.path_namespace_) return Unexpected(MatchRuleError::PathAndNamespace);
            r = set_once(rule.path_, v);
        } else if (key == "path_namespace") {
            if (!is_valid_object_path(v)) return Unexpected(MatchRuleError::BadPath);
            if (rule.path_) return Unexpected(MatchRuleError::PathAndNamespace);
            r = set_once(rule.path_namespace_, v);
        } else if (key == "destination") {
            if (!is_valid_bus_name(v)) return Unexpected(MatchRuleError::BadDestination);
            r = set_once(rule.destination_, v);
        } else if (key == "eavesdrop") {
            if (rule.eavesdrop_) return Unexpected(MatchRuleError::DuplicateKey);
            if (v == "true") rule.eavesdrop_ = true;
            else if (v == "false") rule.eavesdrop_ = false;
            else return Unexpected(MatchRuleError::BadEavesdrop);
        } else if (key.starts_with("arg")) {
            // argN, argNpath, arg0namespace; N read as dbus-daemon does (strtoul).
            const std::string number(key.substr(3));
            char* end = nullptr;
            const unsigned long index = std::strtoul(number.c_str(), &end, 10);
            if (end == number.c_str()) return Unexpected(MatchRuleError::ArgIndexTooLarge);
            const std::string_view suffix(end);
            StoredArg condition;
            if (suffix.empty()) condition.kind = ArgCondition::Kind::String;
            else if (suffix == "path") condition.kind = ArgCondition::Kind::Path;
            else if (suffix == "namespace") condition.kind = ArgCondition::Kind::Namespace;
            else return Unexpected(MatchRuleError::UnknownKey);
            if (index >= kMaxMatchArgs) return Unexpected(MatchRuleError::ArgIndexTooLarge);
            if (condition.kind == ArgCondition::Kind::Namespace && index != 0) return Unexpected(MatchRuleError::UnknownKey);
            if (args_seen & (std::uint64_t{1} << index)) return Unexpected(MatchRuleError::DuplicateKey);
            if (condition.kind == ArgCondition::Kind::Namespace && !is_valid_namespace(v))
                return Unexpected(MatchRuleError::BadArg0Namespace);
            args_seen |= std::uint64_t{1} << index;
            condition.index = static_cast<std::uint8_t>(index);
            condition.value = rule.store(v);
            rule.args_.push_back(condition);
        } else {
            return Unexpected(MatchRuleError::UnknownKey);
        }
        if (!r) return Unexpected(r.error());
    }
    std::sort(rule.args_.begin(), rule.args_.end(),
              [](const StoredArg& a, const StoredArg& b) { return a.index < b.index; });
    rule.text_.shrink_to_fit();
    rule.args_.shrink_to_fit();
    return rule;
}

MatchRule::Slice MatchRule::store(std::string_view value) {
    // parse() bounds the whole text at kMaxMatchRuleLength, far below kAbsent.
    const Slice slice{static_cast<std::uint16_t>(text_.size()), static_cast<std::uint16_t>(value.size())};
    text_.append(value);
    return slice;
}

std::vector<MatchRule::ArgCondition> MatchRule::args() const {
    std::vector<ArgCondition> out;
    out.reserve(args_.size());
    for (const StoredArg& a : args_) out.push_back(ArgCondition{a.index, a.kind, std::string(*view(a.value))});
    return out;
}

bool operator==(const MatchRule& a, const MatchRule& b) {
    if (a.type_ != b.type_ || a.eavesdrop_ != b.eavesdrop_ || a.args_.size() != b.args_.size()) return false;
    if (a.sender() != b.sender() || a.interface() != b.interface() || a.member() != b.member() ||
        a.path() != b.path() || a.path_namespace() != b.path_namespace() || a.destination() != b.destination())
        return false;
    for (std::size_t i = 0; i < a.args_.size(); ++i) {
        const auto& x = a.args_[i];
        const auto& y = b.args_[i];
        if (x.index != y.index || x.kind != y.kind || a.view(x.value) != b.view(y.value)) return false;
    }
    return true;
}

std::string MatchRule::to_string() const {
    std::string out;
    if (type_) append_pair(out, "type", type_name(*type_));
    if (sender_) append_pair(out, "sender", *sender());
    if (interface_) append_pair(out, "interface", *interface());
    if (member_) append_pair(out, "member", *member());
    if (path_) append_pair(out, "path", *path());
    if (path_namespace_) append_pair(out, "path_namespace", *path_namespace());
    if (destination_) append_pair(out, "destination", *destination());
    if (eavesdrop_) append_pair(out, "eavesdrop", *eavesdrop_ ? "true" : "false");
    for (const StoredArg& a : args_) {
        std::string key = "arg" + std::to_string(a.index);
        if (a.kind == ArgCondition::Kind::Path) key += "path";
        if (a.kind == ArgCondition::Kind::Namespace) key += "namespace";
        append_pair(out, key, *view(a.value));
    }
    return out;
}

bool MatchRule::matches(const Message& m, bool check_well_known_sender) const {
    if (const auto sender = this->sender(); sender && m.sender() != *sender) {
        const bool well_known = !sender->empty() && (*sender)[0] != ':';
        if (check_well_known_sender || !well_known) return false;
    }
    if (destination_ && m.destination() != *destination()) return false;
    return matches_except_names(m);
}

bool MatchRule::matches_except_names(const Message& m) const {
    if (type_ && m.type() != *type_) return false;
    if (interface_ && m.interface() != *interface()) return false;
    if (member_ && m.member() != *member()) return false;
    if (path_ && m.path() != *path()) return false;
    if (path_namespace_) {
        const std::string_view p = m.path();
        const std::string_view ns = *path_namespace();
        if (ns != "/" && p != ns && !(p.starts_with(ns) && p.size() > ns.size() && p[ns.size()] == '/')) return false;
    }
    if (args_.empty()) return true;

    // Walk the body up to the last argument a condition looks at.
    MessageReader reader(m);
    int index = 0;
    for (const StoredArg& condition : args_) {
        while (index < condition.index) {
            if (reader.at_end()) return false;
            if (!reader.read_value()) return false;
            ++index;
        }
        if (reader.at_end()) return false;
        const char type = reader.peek_type()[0];
        auto value = reader.read_value();
        ++index;
        if (!value) return false;
        switch (condition.kind) {
            case ArgCondition::Kind::String:
                if (type != 's' || value->text() != *view(condition.value)) return false;
                break;
            case ArgCondition::Kind::Path:
                if ((type != 's' && type != 'o') || !path_prefix_match(value->text(), *view(condition.value))) return false;
                break;
            case ArgCondition::Kind::Namespace: {
                if (type != 's') return false;
                const std::string& arg = value->text();
                const std::string_view ns = *view(condition.value);
                if (arg != ns && !(arg.starts_with(ns) && arg.size() > ns.size() && arg[ns.size()] == '.')) return false;
                break;
            }
        }
    }
    return true;
}

}  // namespace afbus
