#include "name_commands.hpp"

#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstdio>
#include <set>

#include "afbus/types.hpp"
#include "call_commands.hpp"
#include "process_info.hpp"
#include "table.hpp"

namespace afbusctl {

using afbus::Value;

namespace {

struct Credentials {
    std::optional<unsigned> pid;
    std::optional<unsigned> uid;
    std::vector<unsigned> groups;
};

std::optional<Credentials> connection_credentials(BusClient& bus, const std::string& name) {
    auto builder = bus.method_call(kBusName, kBusPath, kBusInterface, "GetConnectionCredentials");
    afbus::append(builder, name);
    auto reply = bus.call(std::move(builder));
    if (!reply) return std::nullopt;
    auto values = body_values(*reply);
    if (!values || values->size() != 1 || (*values)[0].type() != "a{sv}") return std::nullopt;
    Credentials out;
    for (const Value& entry : (*values)[0].children()) {
        const std::string& key = entry.children()[0].text();
        const Value& inner = entry.children()[1].children()[0];
        if (key == "ProcessID" && inner.get_if<std::uint32_t>()) out.pid = *inner.get_if<std::uint32_t>();
        else if (key == "UnixUserID" && inner.get_if<std::uint32_t>()) out.uid = *inner.get_if<std::uint32_t>();
        else if (key == "UnixGroupIDs" && inner.type() == "au")
            for (const Value& g : inner.children()) out.groups.push_back(*g.get_if<std::uint32_t>());
    }
    return out;
}

Json optional_json(const std::optional<std::string>& text) { return text ? Json::string(*text) : Json::null(); }
std::string cell(const std::optional<std::string>& text) { return text ? *text : "-"; }

void print_status_line(const std::string& key, const std::string& value) {
    std::printf("%s=%s\n", key.c_str(), value.c_str());
}

std::string joined(const std::vector<unsigned>& numbers) {
    std::string out;
    for (unsigned n : numbers) {
        if (!out.empty()) out += ' ';
        out += std::to_string(n);
    }
    return out;
}

// The fields of busctl's status that afbusctl knows, in busctl's order.
void print_process_status(unsigned pid, const std::optional<unsigned>& bus_uid, const std::vector<unsigned>& bus_groups) {
    const ProcessInfo info = read_process_info(static_cast<pid_t>(pid));
    print_status_line("PID", std::to_string(pid));
    if (info.ppid) print_status_line("PPID", std::to_string(*info.ppid));
    const char* uid_keys[] = {"UID", "EUID", "SUID", "FSUID"};
    const char* gid_keys[] = {"GID", "EGID", "SGID", "FSGID"};
    if (info.uids.size() == 4) {
        for (std::size_t i = 0; i < 4; ++i) print_status_line(uid_keys[i], std::to_string(info.uids[i]));
    } else if (bus_uid) {
        print_status_line("UID", std::to_string(*bus_uid));
    }
    if (info.gids.size() == 4)
        for (std::size_t i = 0; i < 4; ++i) print_status_line(gid_keys[i], std::to_string(info.gids[i]));
    print_status_line("SupplementaryGIDs", joined(info.uids.empty() ? bus_groups : info.groups));
    if (info.comm) print_status_line("Comm", *info.comm);
    if (info.exe) print_status_line("Exe", *info.exe);
    if (info.command_line) print_status_line("CommandLine", *info.command_line);
    if (info.cgroup) {
        print_status_line("CGroup", *info.cgroup);
        print_status_line("Unit", unit_of_cgroup(*info.cgroup).value_or("n/a"));
        print_status_line("Session", session_of_cgroup(*info.cgroup).value_or("n/a"));
    }
}

}  // namespace

std::vector<std::string> names_to_list(const CommandLine& command_line, const std::vector<std::string>& running,
                                       const std::vector<std::string>& activatable,
                                       std::vector<std::string>* activatable_only) {
    const bool all = !command_line.unique && !command_line.acquired && !command_line.activatable;
    std::set<std::string> shown;
    for (const std::string& name : running) {
        const bool unique = name.starts_with(':');
        if (unique ? (all || command_line.unique) : (all || command_line.acquired)) shown.insert(name);
    }
    if (all || command_line.activatable) {
        for (const std::string& name : activatable) {
            if (shown.insert(name).second && activatable_only) activatable_only->push_back(name);
        }
    }
    return {shown.begin(), shown.end()};
}

int run_list(BusClient& bus) {
    const CommandLine& cl = bus.command_line();
    const bool all = !cl.unique && !cl.acquired && !cl.activatable;
    std::vector<std::string> running, activatable;
    if (all || cl.unique || cl.acquired) {
        auto names = bus.list_names("ListNames");
        if (!names) {
            std::fprintf(stderr, "Failed to list names: %s\n", names.error().message.c_str());
            return 1;
        }
        running = std::move(*names);
    }
    if (all || cl.activatable) {
        auto names = bus.list_names("ListActivatableNames");
        if (!names) {
            std::fprintf(stderr, "Failed to list names: %s\n", names.error().message.c_str());
            return 1;
        }
        activatable = std::move(*names);
    }
    std::vector<std::string> activatable_only;
    const auto names = names_to_list(cl, running, activatable, &activatable_only);

    std::vector<NameRow> rows;
    for (const std::string& name : names) {
        NameRow row;
        row.name = name;
        if (std::find(activatable_only.begin(), activatable_only.end(), name) != activatable_only.end()) {
            row.activatable_only = true;
            rows.push_back(std::move(row));
            continue;
        }
        if (auto creds = connection_credentials(bus, name)) {
            row.pid = creds->pid;
            if (creds->uid) row.user = user_name(*creds->uid);
            if (creds->pid) {
                const ProcessInfo info = read_process_info(static_cast<pid_t>(*creds->pid));
                row.process = info.comm;
                if (info.cgroup) {
                    row.unit = unit_of_cgroup(*info.cgroup);
                    row.session = session_of_cgroup(*info.cgroup);
                }
            }
        }
        if (name.starts_with(':')) {
            row.connection = name;
        } else if (auto owner = bus.name_owner(name); owner && owner->starts_with(':')) {
            row.connection = *owner;
        }
        rows.push_back(std::move(row));
    }

    if (cl.json != JsonMode::Off) {
        Json array = Json::array();
        for (const NameRow& row : rows) {
            array.push_back(Json::object({
                {"name", Json::string(row.name)},
                {"pid", row.pid ? Json::unsigned_integer(*row.pid) : Json::null()},
                {"process", optional_json(row.process)},
                {"user", optional_json(row.user)},
                {"connection", row.activatable_only ? Json::string("(activatable)") : optional_json(row.connection)},
                {"unit", optional_json(row.unit)},
                {"session", optional_json(row.session)},
                {"description", Json::null()},
            }));
        }
        std::printf("%s\n", array.dump(cl.json).c_str());
        return 0;
    }
    Table table({{"NAME"}, {"PID", Table::Align::Right}, {"PROCESS"}, {"USER"}, {"CONNECTION"}, {"UNIT"}, {"SESSION"},
                 {"DESCRIPTION"}});
    for (const NameRow& row : rows) {
        table.add_row({row.name, row.pid ? std::to_string(*row.pid) : "-", cell(row.process), cell(row.user),
                       row.activatable_only ? "(activatable)" : cell(row.connection), cell(row.unit),
                       cell(row.session), "-"});
    }
    const std::string text = table.render(!cl.no_legend);
    std::fwrite(text.data(), 1, text.size(), stdout);
    return 0;
}

int run_status(BusClient& bus) {
    const auto& args = bus.command_line().arguments;
    if (args.size() > 1) {
        std::fprintf(stderr, "Expects no or one argument.\n");
        return 1;
    }
    if (args.empty()) {
        // The bus itself: its address and id, then whoever is at the other end of our socket.
        auto address = select_bus_address(bus.command_line(), afbus::process_environment());
        if (address) print_status_line("BusAddress", *address);
        // As busctl: the GUID the server gave during authentication.
        print_status_line("BusID", bus.connection().server_guid());
        ucred peer{};
        socklen_t length = sizeof peer;
        if (::getsockopt(bus.connection().fd(), SOL_SOCKET, SO_PEERCRED, &peer, &length) == 0 && peer.pid > 0) {
            print_process_status(static_cast<unsigned>(peer.pid), static_cast<unsigned>(peer.uid), {});
        }
        return 0;
    }
    const std::string& target = args[0];
    if (!target.empty() && std::all_of(target.begin(), target.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        errno = 0;
        const unsigned long pid = std::strtoul(target.c_str(), nullptr, 10);
        if (errno != 0 || pid == 0 || pid > 0x7FFFFFFF) {
            std::fprintf(stderr, "Invalid PID: %s\n", target.c_str());
            return 1;
        }
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
            std::fprintf(stderr, "No process with PID %s.\n", target.c_str());
            return 1;
        }
        print_process_status(static_cast<unsigned>(pid), std::nullopt, {});
        return 0;
    }
    if (!check_bus_name(target)) return 1;
    auto creds = connection_credentials(bus, target);
    if (!creds) {
        // Say why, with the bus's own words.
        auto owner = bus.name_owner(target);
        std::fprintf(stderr, "Failed to get credentials: %s\n",
                     owner ? "the bus reported none" : owner.error().message.c_str());
        return 1;
    }
    if (creds->pid) print_process_status(*creds->pid, creds->uid, creds->groups);
    else if (creds->uid) print_status_line("UID", std::to_string(*creds->uid));
    if (target.starts_with(':')) print_status_line("UniqueName", target);
    else if (auto owner = bus.name_owner(target); owner && owner->starts_with(':')) print_status_line("UniqueName", *owner);
    return 0;
}

}  // namespace afbusctl
