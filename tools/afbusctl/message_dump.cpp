#include "message_dump.hpp"

#include <ctime>

namespace afbusctl {

using afbus::Message;
using afbus::MessageType;
using afbus::Value;

namespace {

const char* basic_type_name(char code) {
    switch (code) {
        case 'y': return "BYTE";
        case 'b': return "BOOLEAN";
        case 'n': return "INT16";
        case 'q': return "UINT16";
        case 'i': return "INT32";
        case 'u': return "UINT32";
        case 'x': return "INT64";
        case 't': return "UINT64";
        case 'd': return "DOUBLE";
        case 's': return "STRING";
        case 'o': return "OBJECT_PATH";
        case 'g': return "SIGNATURE";
        case 'h': return "UNIX_FD";
        default: return "UNKNOWN";
    }
}

void indent(std::string& out, int level) { out.append(static_cast<std::size_t>(2 + 8 * level), ' '); }

void dump_value(std::string& out, const Value& v, int level) {
    const std::string& t = v.type();
    indent(out, level);
    switch (t[0]) {
        case 'a':
        case 'v':
        case '(':
        case '{': {
            const char* word = t[0] == 'a' ? "ARRAY" : t[0] == 'v' ? "VARIANT" : t[0] == '(' ? "STRUCT" : "DICT_ENTRY";
            // The contained signature: an array's element type, a variant's value type, a struct's fields.
            std::string inner;
            if (t[0] == 'a') inner = t.substr(1);
            else if (t[0] == 'v') inner = v.children()[0].type();
            else inner = t.substr(1, t.size() - 2);
            out += std::string(word) + " \"" + inner + "\" {\n";
            for (const Value& child : v.children()) dump_value(out, child, level + 1);
            indent(out, level);
            out += "};\n";
            return;
        }
        case 's':
        case 'o':
        case 'g':
            out += std::string(basic_type_name(t[0])) + " \"" + v.text() + "\";\n";
            return;
        default:
            out += std::string(basic_type_name(t[0])) + " " + format_value_words(v) + ";\n";
    }
}

std::string format_timestamp(std::chrono::system_clock::time_point when) {
    const auto since_epoch = when.time_since_epoch();
    const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch).count();
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch).count() % 1'000'000;
    std::tm local{};
    ::localtime_r(&seconds, &local);
    char date[64];
    char zone[16];
    std::strftime(date, sizeof date, "%a %Y-%m-%d %H:%M:%S", &local);
    std::strftime(zone, sizeof zone, "%Z", &local);
    char buffer[128];
    std::snprintf(buffer, sizeof buffer, "%s.%06lld %s", date, static_cast<long long>(micros), zone);
    return buffer;
}

}  // namespace

std::string dump_message(const Message& m, std::chrono::system_clock::time_point received, bool utf8) {
    std::string out = utf8 ? "\u2023" : ">";
    out += " Type=" + std::string(to_string(m.type())) + "  Endian=" + static_cast<char>(m.endian()) +
           "  Flags=" + std::to_string(m.flags()) + "  Version=1 Cookie=" + std::to_string(m.serial());
    if (m.reply_serial()) out += "  ReplyCookie=" + std::to_string(*m.reply_serial());
    out += "  Timestamp=\"" + format_timestamp(received) + "\"\n";
    std::string fields;
    const auto field = [&fields](const char* key, std::string_view value) {
        if (!value.empty()) fields += "  " + std::string(key) + "=" + std::string(value);
    };
    field("Sender", m.sender());
    field("Destination", m.destination());
    field("Path", m.path());
    field("Interface", m.interface());
    field("Member", m.member());
    if (!fields.empty()) out += fields + "\n";
    auto values = m.reader().read_all();
    if (m.type() == MessageType::Error) {
        std::string text;
        if (values && !values->empty() && (*values)[0].type() == "s") text = (*values)[0].text();
        out += "  ErrorName=" + std::string(m.error_name()) + "  ErrorMessage=\"" + text + "\"\n";
    }
    if (m.sender().starts_with(':')) out += "  UniqueName=" + std::string(m.sender()) + "\n";
    out += "  MESSAGE \"" + std::string(m.signature()) + "\" {\n";
    if (values) {
        for (const Value& v : *values) dump_value(out, v, 1);
    } else {
        out += "          (the body could not be read: " + std::string(to_string(values.error())) + ")\n";
    }
    out += "  };\n\n";
    return out;
}

afbus::Expected<Json, std::string> message_to_json(const Message& m, std::chrono::system_clock::time_point received) {
    Json out = Json::object();
    out.add("type", Json::string(std::string(to_string(m.type()))));
    out.add("endian", Json::string(std::string(1, static_cast<char>(m.endian()))));
    out.add("flags", Json::unsigned_integer(m.flags()));
    out.add("version", Json::unsigned_integer(1));
    out.add("cookie", Json::unsigned_integer(m.serial()));
    if (m.reply_serial()) out.add("reply_cookie", Json::unsigned_integer(*m.reply_serial()));
    out.add("timestamp-realtime",
            Json::unsigned_integer(static_cast<unsigned long long>(
                std::chrono::duration_cast<std::chrono::microseconds>(received.time_since_epoch()).count())));
    const auto field = [&out](const char* key, std::string_view value) {
        if (!value.empty()) out.add(key, Json::string(std::string(value)));
    };
    field("sender", m.sender());
    field("destination", m.destination());
    field("path", m.path());
    field("interface", m.interface());
    field("member", m.member());
    field("error_name", m.error_name());
    auto values = m.reader().read_all();
    if (!values) return afbus::Unexpected("Failed to read the message body: " + std::string(to_string(values.error())));
    auto payload = body_to_json(m.signature(), *values);
    if (!payload) return payload;
    out.add("payload", std::move(*payload));
    return out;
}

}  // namespace afbusctl
