#include "stats_commands.hpp"

#include <algorithm>
#include <cstdio>

#include "afbus/types.hpp"
#include "call_commands.hpp"
#include "table.hpp"

namespace afbusctl {

using afbus::Value;

namespace {

constexpr std::string_view kStatsInterface = "org.freedesktop.DBus.Debug.Stats";

// Which counter each limit bounds.
const std::pair<const char*, const char*> kCounterLimits[] = {
    {"IncomingBytes", "max_incoming_bytes"},
    {"IncomingFDs", "max_incoming_unix_fds"},
    {"OutgoingBytes", "max_outgoing_bytes"},
    {"OutgoingFDs", "max_outgoing_unix_fds"},
    {"MatchRules", "max_match_rules_per_connection"},
    {"BusNames", "max_names_per_connection"},
};

afbus::Expected<std::map<std::string, std::uint64_t>, afbus::Error> numeric_stats(BusClient& bus, std::string_view member,
                                                                                const std::optional<std::string>& name) {
    auto builder = bus.method_call(kBusName, kBusPath, kStatsInterface, member);
    if (name) afbus::append(builder, *name);
    auto reply = bus.call(std::move(builder));
    if (!reply) return afbus::Unexpected(reply.error());
    auto values = body_values(*reply);
    std::map<std::string, std::uint64_t> out;
    if (!values || values->size() != 1 || (*values)[0].type() != "a{sv}") return out;
    for (const Value& entry : (*values)[0].children()) {
        const Value& inner = entry.children()[1].children()[0];
        if (auto u = inner.get_if<std::uint32_t>()) out[entry.children()[0].text()] = *u;
        else if (auto t = inner.get_if<std::uint64_t>()) out[entry.children()[0].text()] = *t;
    }
    return out;
}

std::string counter(const ConnectionLoad& load, const char* key) {
    auto it = load.counters.find(key);
    return it == load.counters.end() ? "-" : std::to_string(it->second);
}

std::string percent(double fill) {
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.1f%%", fill * 100);
    return buffer;
}

// --limit=NAME=VALUE words, applied over the defaults; false after saying what is wrong.
bool apply_limit_overrides(std::map<std::string, std::uint64_t>& limits, const std::vector<std::string>& overrides) {
    for (const std::string& word : overrides) {
        const auto eq = word.find('=');
        const std::string key = word.substr(0, eq);
        if (eq == std::string::npos || !limits.count(key)) {
            std::fprintf(stderr, "Unknown limit in --limit=%s (known: max_incoming_bytes, max_incoming_unix_fds, "
                                 "max_outgoing_bytes, max_outgoing_unix_fds, max_match_rules_per_connection, "
                                 "max_names_per_connection)\n", word.c_str());
            return false;
        }
        const std::string value = word.substr(eq + 1);
        char* end = nullptr;
        const unsigned long long n = std::strtoull(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || value[0] == '-' || n == 0) {
            std::fprintf(stderr, "Failed to parse --limit=%s: the value must be a positive number\n", word.c_str());
            return false;
        }
        limits[key] = n;
    }
    return true;
}

}  // namespace

std::map<std::string, std::uint64_t> default_limits(bool session_bus) {
    if (session_bus) {
        // /usr/share/dbus-1/session.conf
        return {{"max_incoming_bytes", 1000000000},        {"max_incoming_unix_fds", 250000000},
                {"max_outgoing_bytes", 1000000000},        {"max_outgoing_unix_fds", 250000000},
                {"max_match_rules_per_connection", 50000}, {"max_names_per_connection", 50000}};
    }
    // dbus-daemon's built-in defaults, which system.conf keeps.
    return {{"max_incoming_bytes", 127u * 1024 * 1024},  {"max_incoming_unix_fds", 64 * 4},
            {"max_outgoing_bytes", 127u * 1024 * 1024},  {"max_outgoing_unix_fds", 64 * 4},
            {"max_match_rules_per_connection", 512},     {"max_names_per_connection", 512}};
}

void rate_load(ConnectionLoad& load, const std::map<std::string, std::uint64_t>& limits) {
    load.closest_limit.clear();
    load.fill = 0;
    for (const auto& [key, limit_name] : kCounterLimits) {
        const auto value = load.counters.find(key);
        const auto limit = limits.find(limit_name);
        if (value == load.counters.end() || limit == limits.end() || limit->second == 0 || value->second == 0) continue;
        const double fill = static_cast<double>(value->second) / static_cast<double>(limit->second);
        if (fill > load.fill) {
            load.fill = fill;
            load.closest_limit = limit_name;
        }
    }
}

void sort_by_pressure(std::vector<ConnectionLoad>& loads) {
    std::sort(loads.begin(), loads.end(), [](const ConnectionLoad& a, const ConnectionLoad& b) {
        if (a.fill != b.fill) return a.fill > b.fill;
        return a.unique_name < b.unique_name;
    });
}

int run_stats(BusClient& bus) {
    const CommandLine& cl = bus.command_line();
    auto limits = default_limits(cl.bus == BusChoice::User);
    if (!apply_limit_overrides(limits, cl.limits)) return 1;

    auto names = bus.list_names("ListNames");
    if (!names) {
        std::fprintf(stderr, "Failed to list names: %s\n", names.error().message.c_str());
        return 1;
    }
    // Who owns each well-known name, so that a connection shows what it is known as.
    std::map<std::string, std::vector<std::string>> owned;
    for (const std::string& name : *names) {
        if (name.starts_with(':') || name == kBusName) continue;
        if (auto owner = bus.name_owner(name)) owned[*owner].push_back(name);
    }
    std::vector<std::string> connections;
    if (cl.arguments.empty()) {
        for (const std::string& name : *names)
            if (name.starts_with(':')) connections.push_back(name);
    } else {
        for (const std::string& name : cl.arguments) {
            if (!check_bus_name(name)) return 1;
            if (name.starts_with(':')) {
                connections.push_back(name);
                continue;
            }
            auto owner = bus.name_owner(name);
            if (!owner) {
                std::fprintf(stderr, "Failed to get statistics of %s: %s\n", name.c_str(), owner.error().message.c_str());
                return 1;
            }
            connections.push_back(*owner);
        }
    }

    std::vector<ConnectionLoad> loads;
    for (const std::string& unique : connections) {
        auto stats = numeric_stats(bus, "GetConnectionStats", unique);
        if (!stats) {
            // A connection that left between ListNames and now is not an error; anything else is.
            if (stats.error().name == afbus::error_names::kNameHasNoOwner) continue;
            std::fprintf(stderr, "Failed to get statistics of %s: %s\n", unique.c_str(), stats.error().message.c_str());
            return 1;
        }
        ConnectionLoad load{unique, owned[unique], std::move(*stats), {}, 0};
        rate_load(load, limits);
        loads.push_back(std::move(load));
    }
    sort_by_pressure(loads);

    if (cl.json != JsonMode::Off) {
        Json array = Json::array();
        for (const ConnectionLoad& load : loads) {
            Json names_json = Json::array();
            for (const auto& n : load.names) names_json.push_back(Json::string(n));
            Json counters = Json::object();
            for (const auto& [key, value] : load.counters) counters.add(key, Json::unsigned_integer(value));
            array.push_back(Json::object({{"connection", Json::string(load.unique_name)},
                                          {"names", std::move(names_json)},
                                          {"stats", std::move(counters)},
                                          {"closest_limit", load.closest_limit.empty() ? Json::null()
                                                                                       : Json::string(load.closest_limit)},
                                          {"limit_fill", Json::floating(load.fill)}}));
        }
        std::printf("%s\n", array.dump(cl.json).c_str());
        return 0;
    }
    using Align = Table::Align;
    Table table({{"CONNECTION"}, {"NAME"}, {"IN-BYTES", Align::Right}, {"IN-FDS", Align::Right},
                 {"OUT-BYTES", Align::Right}, {"OUT-FDS", Align::Right}, {"MATCHES", Align::Right},
                 {"NAMES", Align::Right}, {"DROPPED", Align::Right}, {"FILL", Align::Right}, {"CLOSEST-LIMIT"}});
    for (const ConnectionLoad& load : loads) {
        table.add_row({load.unique_name, load.names.empty() ? "-" : load.names.front(), counter(load, "IncomingBytes"),
                       counter(load, "IncomingFDs"), counter(load, "OutgoingBytes"), counter(load, "OutgoingFDs"),
                       counter(load, "MatchRules"), counter(load, "BusNames"), counter(load, "DroppedMessages"),
                       percent(load.fill), load.closest_limit.empty() ? "-" : load.closest_limit});
    }
    const std::string text = table.render(!cl.no_legend);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

int run_reload(BusClient& bus) {
    if (!bus.command_line().arguments.empty()) {
        std::fprintf(stderr, "reload takes no arguments.\n");
        return 1;
    }
    auto reply = bus.call(bus.method_call(kBusName, kBusPath, kBusInterface, "ReloadConfig"));
    if (!reply) {
        std::fprintf(stderr, "Failed to reload the bus configuration: %s\n", reply.error().message.c_str());
        return 1;
    }
    return 0;
}

}  // namespace afbusctl
