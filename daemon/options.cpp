#include "options.hpp"

#include <cstdlib>

namespace afbus::daemon {
namespace {

bool parse_fd(const std::string& text, int& fd) {
    if (text.empty()) return false;
    char* end = nullptr;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (*end != '\0' || v < 0 || v > 1 << 20) return false;
    fd = static_cast<int>(v);
    return true;
}

}  // namespace

std::string usage() {
    return "afbus-daemon [--version] [--session] [--system] [--config-file=FILE] [--print-address[=DESCRIPTOR]] "
           "[--print-pid[=DESCRIPTOR]] [--introspect] [--address=ADDRESS] [--nopidfile] [--nosyslog] [--syslog] "
           "[--syslog-only] [--nofork] [--fork] [--systemd-activation]\n";
}

Expected<Options, std::string> parse_options(const std::vector<std::string>& args) {
    Options o;
    auto set_bus = [&o](Options::BusType type) -> Expected<void, std::string> {
        if (o.bus != Options::BusType::None || o.config_file)
            return Unexpected(std::string("Only one of --session, --system or --config-file may be given"));
        o.bus = type;
        return {};
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        // Options with an optional "=VALUE" or a following separate value, as dbus-daemon accepts them.
        auto value_of = [&](const std::string& name) -> std::optional<std::string> {
            if (a.rfind(name + "=", 0) == 0) return a.substr(name.size() + 1);
            return std::nullopt;
        };
        if (a == "--help" || a == "-h") {
            o.help = true;
        } else if (a == "--version") {
            o.version = true;
        } else if (a == "--session") {
            if (auto r = set_bus(Options::BusType::Session); !r) return Unexpected(r.error());
        } else if (a == "--system") {
            if (auto r = set_bus(Options::BusType::System); !r) return Unexpected(r.error());
        } else if (auto v = value_of("--config-file"); v || a == "--config-file") {
            if (o.bus != Options::BusType::None || o.config_file)
                return Unexpected(std::string("Only one of --session, --system or --config-file may be given"));
            if (!v) {
                if (i + 1 >= args.size()) return Unexpected(std::string("--config-file needs a file name"));
                v = args[++i];
            }
            o.config_file = *v;
        } else if (auto addr = value_of("--address"); addr || a == "--address") {
            if (!addr) {
                if (i + 1 >= args.size()) return Unexpected(std::string("--address needs an address"));
                addr = args[++i];
            }
            o.address = *addr;
        } else if (auto fd = value_of("--print-address"); fd || a == "--print-address") {
            int n = 1;
            if (fd && !parse_fd(*fd, n)) return Unexpected("Invalid file descriptor for --print-address: " + *fd);
            // "--print-address 3": a following number is the descriptor.
            if (!fd && i + 1 < args.size() && parse_fd(args[i + 1], n)) ++i;
            o.print_address_fd = n;
        } else if (auto pfd = value_of("--print-pid"); pfd || a == "--print-pid") {
            int n = 1;
            if (pfd && !parse_fd(*pfd, n)) return Unexpected("Invalid file descriptor for --print-pid: " + *pfd);
            if (!pfd && i + 1 < args.size() && parse_fd(args[i + 1], n)) ++i;
            o.print_pid_fd = n;
        } else if (a == "--fork") {
            o.fork = true;
        } else if (a == "--nofork") {
            o.fork = false;
        } else if (a == "--nopidfile") {
            o.no_pidfile = true;
        } else if (a == "--systemd-activation") {
            o.systemd_activation = true;
        } else if (a == "--syslog") {
            o.syslog = Options::Syslog::Syslog;
        } else if (a == "--syslog-only") {
            o.syslog = Options::Syslog::SyslogOnly;
        } else if (a == "--nosyslog") {
            o.syslog = Options::Syslog::NoSyslog;
        } else if (a == "--introspect") {
            o.introspect = true;
        } else {
            return Unexpected("Unknown command line argument " + a);
        }
    }
    return o;
}

}  // namespace afbus::daemon
