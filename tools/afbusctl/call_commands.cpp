#include "call_commands.hpp"

#include <cstdio>
#include <span>

#include "afbus/names.hpp"
#include "afbus/signature.hpp"
#include "afbus/types.hpp"
#include "argument_parser.hpp"

namespace afbusctl {

using afbus::Value;

namespace {

// Appends the values `words` describe (after a signature) to `builder`; false after saying which
// word is wrong.
bool append_arguments(afbus::MessageBuilder& builder, const std::string& signature, std::span<const std::string> words) {
    auto values = parse_arguments(signature, words);
    if (!values) {
        std::fprintf(stderr, "%s\n", values.error().describe().c_str());
        return false;
    }
    for (const Value& v : *values) builder.append_value(v);
    return true;
}

void print_line(const std::string& line) {
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
}

bool print_json_or_fail(const afbus::Expected<Json, std::string>& json, JsonMode mode) {
    if (!json) {
        std::fprintf(stderr, "Failed to format JSON: %s\n", json.error().c_str());
        return false;
    }
    print_line(json->dump(mode));
    return true;
}

}  // namespace

bool check_bus_name(const std::string& name) {
    if (afbus::is_valid_bus_name(name)) return true;
    std::fprintf(stderr, "Invalid service name: %s\n", name.c_str());
    return false;
}
bool check_object_path(const std::string& path) {
    if (afbus::is_valid_object_path(path)) return true;
    std::fprintf(stderr, "Invalid object path: %s\n", path.c_str());
    return false;
}
bool check_interface(const std::string& name) {
    if (afbus::is_valid_interface_name(name)) return true;
    std::fprintf(stderr, "Invalid interface name: %s\n", name.c_str());
    return false;
}
bool check_member(const std::string& name) {
    if (afbus::is_valid_member_name(name)) return true;
    std::fprintf(stderr, "Invalid member name: %s\n", name.c_str());
    return false;
}

bool print_body(const CommandLine& command_line, const afbus::Message& message) {
    if (message.signature().empty()) return true;
    auto values = body_values(message);
    if (!values) {
        std::fprintf(stderr, "%s\n", values.error().c_str());
        return false;
    }
    if (command_line.json != JsonMode::Off)
        return print_json_or_fail(body_to_json(message.signature(), *values), command_line.json);
    print_line(format_body_line(message.signature(), *values));
    return true;
}

int run_call(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() < 4) {
        std::fprintf(stderr, "Too few arguments.\n");
        return 1;
    }
    if (!check_bus_name(args[0]) || !check_object_path(args[1]) || !check_interface(args[2]) || !check_member(args[3]))
        return 1;
    auto builder = bus.method_call(args[0], args[1], args[2], args[3]);
    const std::string signature = args.size() > 4 ? args[4] : std::string();
    const std::span<const std::string> words = args.size() > 5 ? std::span(args).subspan(5) : std::span<const std::string>();
    if (!append_arguments(builder, signature, words)) return 1;

    if (!bus.command_line().expect_reply) {
        builder.no_reply_expected();
        auto message = builder.build();
        if (!message) {
            std::fprintf(stderr, "Failed to create bus message: %s\n", std::string(to_string(message.error())).c_str());
            return 1;
        }
        if (auto sent = bus.send_and_flush(std::move(*message)); !sent) {
            std::fprintf(stderr, "Failed to send message: %s\n", sent.error().message.c_str());
            return 1;
        }
        return 0;
    }
    auto reply = bus.call(std::move(builder));
    if (!reply) {
        std::fprintf(stderr, "Call failed: %s\n", reply.error().message.c_str());
        return 1;
    }
    if (bus.command_line().quiet) return 0;
    return print_body(bus.command_line(), *reply) ? 0 : 1;
}

int run_get_property(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() < 4) {
        std::fprintf(stderr, "Expects at least four arguments.\n");
        return 1;
    }
    if (!check_bus_name(args[0]) || !check_object_path(args[1]) || !check_interface(args[2])) return 1;
    for (std::size_t i = 3; i < args.size(); ++i) {
        auto builder = bus.method_call(args[0], args[1], "org.freedesktop.DBus.Properties", "Get");
        afbus::append(builder, args[2], args[i]);
        auto reply = bus.call(std::move(builder));
        if (!reply) {
            std::fprintf(stderr, "Failed to get property %s on interface %s: %s\n", args[i].c_str(), args[2].c_str(),
                         reply.error().message.c_str());
            return 1;
        }
        auto values = body_values(*reply);
        if (!values || values->size() != 1 || (*values)[0].type() != "v") {
            std::fprintf(stderr, "Failed to get property %s on interface %s: the reply is not one variant\n",
                         args[i].c_str(), args[2].c_str());
            return 1;
        }
        const Value& inner = (*values)[0].children()[0];
        if (bus.command_line().json != JsonMode::Off) {
            auto data = value_to_json(inner);
            if (!data) {
                std::fprintf(stderr, "Failed to format JSON: %s\n", data.error().c_str());
                return 1;
            }
            print_line(Json::object({{"type", Json::string(inner.type())}, {"data", std::move(*data)}})
                           .dump(bus.command_line().json));
        } else {
            print_line(inner.type() + " " + format_value_words(inner));
        }
    }
    return 0;
}

int run_set_property(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() < 6) {
        std::fprintf(stderr, "Expects at least six arguments.\n");
        return 1;
    }
    if (!check_bus_name(args[0]) || !check_object_path(args[1]) || !check_interface(args[2])) return 1;
    const std::string& signature = args[4];
    if (!afbus::validate_single_complete_type(signature)) {
        std::fprintf(stderr, "Invalid signature '%s': a property's value is one single complete type.\n",
                     signature.c_str());
        return 1;
    }
    auto values = parse_arguments(signature, std::span(args).subspan(5));
    if (!values) {
        std::fprintf(stderr, "%s\n", values.error().describe().c_str());
        return 1;
    }
    auto builder = bus.method_call(args[0], args[1], "org.freedesktop.DBus.Properties", "Set");
    afbus::append(builder, args[2], args[3]);
    builder.append_value(Value::variant(std::move((*values)[0])));
    auto reply = bus.call(std::move(builder));
    if (!reply) {
        std::fprintf(stderr, "Failed to set property %s on interface %s: %s\n", args[3].c_str(), args[2].c_str(),
                     reply.error().message.c_str());
        return 1;
    }
    return 0;
}

int run_emit(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() < 3) {
        std::fprintf(stderr, "Expects at least three arguments.\n");
        return 1;
    }
    if (!check_object_path(args[0]) || !check_interface(args[1]) || !check_member(args[2])) return 1;
    const std::string& destination = bus.command_line().destination;
    if (!destination.empty() && !check_bus_name(destination)) return 1;
    auto builder = afbus::MessageBuilder::signal(args[0], args[1], args[2]);
    if (!destination.empty()) builder.destination(destination);
    if (!bus.command_line().auto_start) builder.no_auto_start();
    const std::string signature = args.size() > 3 ? args[3] : std::string();
    const std::span<const std::string> words = args.size() > 4 ? std::span(args).subspan(4) : std::span<const std::string>();
    if (!append_arguments(builder, signature, words)) return 1;
    auto message = builder.build();
    if (!message) {
        std::fprintf(stderr, "Failed to create bus message: %s\n", std::string(to_string(message.error())).c_str());
        return 1;
    }
    if (auto sent = bus.send_and_flush(std::move(*message)); !sent) {
        std::fprintf(stderr, "Failed to emit signal: %s\n", sent.error().message.c_str());
        return 1;
    }
    return 0;
}

}  // namespace afbusctl
