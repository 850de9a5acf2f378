#include "process_info.hpp"

#include <pwd.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace afbusctl {

namespace {

std::optional<std::string> read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) return std::nullopt;
    return text.str();
}

std::vector<unsigned> numbers_after(const std::string& status, const std::string& key) {
    std::vector<unsigned> out;
    std::istringstream lines(status);
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with(key)) continue;
        std::istringstream fields(line.substr(key.size()));
        for (unsigned n; fields >> n;) out.push_back(n);
        break;
    }
    return out;
}

std::vector<std::string> components(const std::string& path) {
    std::vector<std::string> out;
    std::istringstream parts(path);
    for (std::string part; std::getline(parts, part, '/');)
        if (!part.empty()) out.push_back(part);
    return out;
}

}  // namespace

ProcessInfo read_process_info(pid_t pid, const std::string& proc_root) {
    ProcessInfo info;
    const std::string dir = proc_root + "/" + std::to_string(pid);
    if (auto comm = read_file(dir + "/comm")) {
        if (!comm->empty() && comm->back() == '\n') comm->pop_back();
        info.comm = std::move(*comm);
    }
    char target[4096];
    if (const ssize_t n = ::readlink((dir + "/exe").c_str(), target, sizeof target); n > 0)
        info.exe = std::string(target, static_cast<std::size_t>(n));
    if (auto cmdline = read_file(dir + "/cmdline"); cmdline && !cmdline->empty()) {
        if (cmdline->back() == '\0') cmdline->pop_back();
        for (char& c : *cmdline)
            if (c == '\0') c = ' ';
        info.command_line = std::move(*cmdline);
    }
    if (auto status = read_file(dir + "/status")) {
        info.uids = numbers_after(*status, "Uid:");
        info.gids = numbers_after(*status, "Gid:");
        info.groups = numbers_after(*status, "Groups:");
        if (auto ppid = numbers_after(*status, "PPid:"); !ppid.empty()) info.ppid = static_cast<pid_t>(ppid[0]);
    }
    if (auto cgroups = read_file(dir + "/cgroup")) {
        std::istringstream lines(*cgroups);
        std::optional<std::string> named;
        for (std::string line; std::getline(lines, line);) {
            if (line.starts_with("0::")) info.cgroup = line.substr(3);
            else if (const auto at = line.find(":name=systemd:"); at != std::string::npos)
                named = line.substr(at + 14);
        }
        if (!info.cgroup) info.cgroup = named;
    }
    return info;
}

std::optional<std::string> unit_of_cgroup(const std::string& cgroup) {
    for (const std::string& part : components(cgroup))
        if (part.ends_with(".service") || part.ends_with(".scope")) return part;
    return std::nullopt;
}

std::optional<std::string> session_of_cgroup(const std::string& cgroup) {
    for (const std::string& part : components(cgroup))
        if (part.starts_with("session-") && part.ends_with(".scope"))
            return part.substr(8, part.size() - 8 - 6);
    return std::nullopt;
}

std::string user_name(unsigned uid) {
    passwd entry{};
    passwd* found = nullptr;
    char buffer[4096];
    if (::getpwuid_r(uid, &entry, buffer, sizeof buffer, &found) == 0 && found != nullptr) return found->pw_name;
    return std::to_string(uid);
}

}  // namespace afbusctl
