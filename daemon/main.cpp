// afbus-daemon: a drop-in replacement for dbus-daemon (same command line and configuration files).
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/address.hpp"
#include "afbus/fd.hpp"
#include "broker_delivery.hpp"
#include "bus.hpp"
#include "config.hpp"
#include "dir_watch.hpp"
#include "driver.hpp"
#include "fd_limit.hpp"
#include "kernel_delivery.hpp"
#include "listener.hpp"
#include "log.hpp"
#include "options.hpp"
#include "service_directory.hpp"
#include "systemd_integration.hpp"
#include "text_file.hpp"

using namespace afbus;
using namespace afbus::daemon;

namespace {

constexpr const char* kVersion = "0.1.0";
constexpr const char* kSessionConfig = "/usr/share/dbus-1/session.conf";
constexpr const char* kSystemConfig = "/usr/share/dbus-1/system.conf";

int fail(const std::string& message) {
    std::fprintf(stderr, "afbus-daemon: %s\n", message.c_str());
    return 1;
}

// At start a file of an <includedir> that does not parse is left out (IncludedirErrors::Skip); on reload
// it fails the reload, and the configuration in force stays.
Expected<BusConfig, ConfigError> read_config(const Options& options, IncludedirErrors includedir_errors) {
    if (options.config_file) return load_config(*options.config_file, includedir_errors);
    if (options.bus == Options::BusType::Session) {
        if (std::filesystem::exists(kSessionConfig)) return load_config(kSessionConfig, includedir_errors);
        return parse_config(builtin_session_config(), "(built-in session configuration)", "/usr/share/dbus-1", includedir_errors);
    }
    if (std::filesystem::exists(kSystemConfig)) return load_config(kSystemConfig, includedir_errors);
    return parse_config(builtin_system_config(), "(built-in system configuration)", "/usr/share/dbus-1", includedir_errors);
}

BusSettings settings_from(const BusConfig& config, const Options& options, std::optional<rlimit> service_fd_limit) {
    BusSettings s;
    s.service_fd_limit = service_fd_limit;
    s.type = config.type;
    s.allow_anonymous = config.allow_anonymous;
    s.systemd_activation = options.systemd_activation;
    s.limits = config.limits;
    // Resolving creates $XDG_RUNTIME_DIR/dbus-1/services, as dbus-daemon does at every configuration load.
    ResolvedServiceDirs dirs = resolve_service_dirs(config.servicedirs, current_service_dir_environment());
    for (const std::string& warning : dirs.warnings) log_warning("%s", warning.c_str());
    s.service_directories = std::move(dirs.directories);
    s.servicehelper = config.servicehelper;
    for (const std::string& warning : config.policy_warnings) log_warning("%s", warning.c_str());
    // The image was produced by our own compiler a moment ago; failing to load it is a bug, not bad input.
    auto engine = policy::PolicyEngine::load(config.policy_image);
    if (!engine) {
        log_warning("internal error: the compiled policy does not load: %s", engine.error().c_str());
        std::abort();
    }
    s.policy = std::make_shared<policy::PolicyEngine>(std::move(*engine));
    if (!config.auth.empty()) {
        s.mechanisms.clear();
        for (const std::string& name : config.auth) {
            if (auto m = sasl_mechanism_from_name(name)) s.mechanisms.push_back(*m);
            else log_warning("ignoring unknown authentication mechanism \"%s\"", name.c_str());
        }
    } else {
        // No <auth>: everything dbus-daemon supports, in its order (ANONYMOUS still needs <allow_anonymous/>).
        s.mechanisms = {SaslMechanism::External, SaslMechanism::DbusCookieSha1, SaslMechanism::Anonymous};
    }
    return s;
}

std::vector<std::string> watched_directories(const BusConfig& config, const BusSettings& settings) {
    std::vector<std::string> directories = config.includedirs;
    for (const SearchDirectory& d : settings.service_directories)
        if (d.watched) directories.push_back(d.path);
    return directories;
}

bool write_line(int fd, const std::string& text) {
    const std::string line = text + "\n";
    return ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
}

Expected<void, std::string> drop_privileges(const std::string& user) {
    if (::getuid() != 0) return {};  // only root can switch
    const passwd* pw = ::getpwnam(user.c_str());
    if (!pw) return Unexpected("Could not get UID and GID for username \"" + user + "\"");
    if (::initgroups(pw->pw_name, pw->pw_gid) < 0 || ::setgid(pw->pw_gid) < 0 || ::setuid(pw->pw_uid) < 0)
        return Unexpected("Failed to switch to user \"" + user + "\": " + std::strerror(errno));
    return {};
}

}  // namespace

int main(int argc, char** argv) {
    // Started with stdin, stdout or stderr closed, the first sockets we open would take fds 0-2, and
    // redirecting those to /dev/null (--fork) would close them: hold them with /dev/null first.
    for (;;) {
        const int fd = ::open("/dev/null", O_RDWR);
        if (fd < 0) break;
        if (fd > 2) {
            ::close(fd);
            break;
        }
    }
    auto options = parse_options(std::vector<std::string>(argv + 1, argv + argc));
    if (!options) {
        std::fprintf(stderr, "%s\n%s", options.error().c_str(), usage().c_str());
        return 1;
    }
    // As dbus-daemon (_dbus_ensure_standard_fds with DBUS_FORCE_STDIN_NULL): the bus never reads its
    // stdin, so it holds no terminal or pipe of its caller there, with or without --fork.
    if (options->print_address_fd != 0 && options->print_pid_fd != 0) {
        if (Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC)); null) ::dup2(null.get(), 0);
    }
    if (options->help) {
        std::printf("%s", usage().c_str());
        return 0;
    }
    if (options->version) {
        std::printf("afbus-daemon %s (D-Bus Message Bus Daemon, dbus-daemon compatible)\n", kVersion);
        return 0;
    }
    if (options->introspect) {
        std::printf("%s", Driver::introspection_xml().c_str());
        return 0;
    }
    if (!options->config_file && options->bus == Options::BusType::None) return fail("No configuration file specified.");

    auto config = read_config(*options, IncludedirErrors::Skip);
    if (!config) return fail("Failed to start message bus: " + config.error().to_string());

    const bool to_syslog = options->syslog == Options::Syslog::Syslog || options->syslog == Options::Syslog::SyslogOnly ||
                           (options->syslog == Options::Syslog::Default && config->syslog);
    set_log_target(options->syslog == Options::Syslog::SyslogOnly ? LogTarget::Syslog
                   : to_syslog                                     ? LogTarget::Both
                                                                   : LogTarget::Stderr);
    for (const ConfigError& skipped : config->skipped_files)
        log_warning("Left out of the configuration: %s (a file of an <includedir> that does not parse)",
                    skipped.to_string().c_str());

    // Listen first: a bus that cannot listen fails before forking, with the reason on stderr.
    std::vector<AddressEntry> entries;
    if (options->address) {
        auto parsed = parse_address_list(*options->address);
        if (!parsed) return fail("Invalid address \"" + *options->address + "\": " + std::string(to_string(parsed.error())));
        entries = std::move(*parsed);
    } else {
        for (const std::string& text : config->listen) {
            auto parsed = parse_address_list(text);
            if (!parsed) return fail("Invalid <listen> address \"" + text + "\": " + std::string(to_string(parsed.error())));
            for (auto& e : *parsed) entries.push_back(std::move(e));
        }
    }
    if (entries.empty()) return fail("Failed to start message bus: no <listen> address in the configuration");
    std::vector<Listener> listeners;
    for (const AddressEntry& entry : entries) {
        auto opened = open_listeners(entry);
        if (!opened) return fail("Failed to start message bus: " + opened.error());
        for (auto& l : *opened) listeners.push_back(std::move(l));
    }
    // afbus: entries the kernel cannot serve were skipped (with a warning); something must be left.
    if (listeners.empty()) return fail("Failed to start message bus: none of the <listen> addresses could be used");
    const auto af_bus_listener = std::find_if(listeners.begin(), listeners.end(), [](const Listener& l) { return l.af_bus_family != 0; });

    int ready_fd = -1;  // forked: written once the address is printed, which lets the parent exit 0
    Fd dev_null;        // forked: /dev/null, for the standard fds that stay open until we have printed
    if (options->fork.value_or(config->fork)) {
        // The parent returns once the child is ready, so that the caller can use the printed address.
        int ready[2];
        if (::pipe2(ready, O_CLOEXEC) < 0) return fail(std::string("pipe: ") + std::strerror(errno));
        const pid_t child = ::fork();
        if (child < 0) return fail(std::string("fork: ") + std::strerror(errno));
        if (child > 0) {
            ::close(ready[1]);
            char c = 0;
            return ::read(ready[0], &c, 1) == 1 ? 0 : 1;
        }
        ::close(ready[0]);
        ::setsid();
        if (::chdir("/") < 0) return fail("chdir failed");
        if (!config->keep_umask) ::umask(022);
        // A daemon keeps none of its caller's terminal or pipes (dbus-daemon's child points 0-2 at
        // /dev/null). A print fd among 0-2 stays until its line is written, below.
        dev_null = Fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
        if (!dev_null) return fail(std::string("Failed to open /dev/null: ") + std::strerror(errno));
        // With DBUS_DEBUG_OUTPUT set, stderr stays (dbus-daemon's become_daemon keeps it for debugging).
        const bool keep_stderr = std::getenv("DBUS_DEBUG_OUTPUT") != nullptr;
        for (int fd = 0; fd <= 2; ++fd) {
            if (fd == 2 && keep_stderr) continue;
            if (fd != options->print_address_fd.value_or(-1) && fd != options->print_pid_fd.value_or(-1))
                ::dup2(dev_null.get(), fd);
        }
        // If the child fails before it is ready, the pipe closes with it and the parent exits 1.
        ready_fd = ready[1];
    }

    // As dbus-daemon: room for 64k fds (connections and the fds they pass), services get the old limit.
    const std::optional<rlimit> initial_fd_limit = current_fd_limit();
    if (auto raised = raise_fd_limit(); !raised) log_info("%s", raised.error().c_str());

    EventLoop loop;
    Bus bus(loop, settings_from(*config, *options, initial_fd_limit));
    // Kernel mode when an AF_BUS listener is open: its delivery serves the unix listeners too.
    KernelDelivery* kernel = af_bus_listener == listeners.end()
                                 ? nullptr
                                 : &bus.use_delivery<KernelDelivery>(af_bus_listener->af_bus_family);
    BrokerDelivery& broker = kernel ? kernel->broker() : bus.use_delivery<BrokerDelivery>();
    // Broker mode receives through io_uring where AFBUS_DAEMON_IO_URING=1 asks so and the kernel allows
    // it (receive_ring.hpp, afbus-daemon(1)): faster calls and connections, but more memory per
    // connection (docs/performance.md, "io_uring receives"), so not by default. Kernel mode
    // never: its traffic is the master socket's, which the ring would only add a system call to.
    if (const char* use = std::getenv("AFBUS_DAEMON_IO_URING");
        !kernel && use && std::string_view(use) == "1") {
        if (auto ring = broker.receive_through_io_uring(); !ring)
            log_debug("io_uring not available (%s): receiving with epoll", std::strerror(ring.error()));
    }
    std::string address;
    std::vector<std::string> socket_files;
    for (Listener& l : listeners) {
        if (!l.af_bus_family) {
            broker.add_listener(std::move(l.fd));
        } else if (!kernel->add_listener(std::move(l.fd), l.address)) {
            // A bus whose kernel would not take the policy is not offered: traffic through the kernel
            // would bypass it (add_listener logged why; the other addresses serve).
            if (l.socket_file) ::unlink(l.socket_file->c_str());
            continue;
        }
        if (!address.empty()) address += ';';
        address += l.address + ",guid=" + bus.guid();
        if (l.socket_file) socket_files.push_back(*l.socket_file);
    }
    if (address.empty()) return fail("Failed to start message bus: none of the <listen> addresses could be used");
    bus.set_address(address);

    std::optional<std::string> pidfile;
    if (config->pidfile && !options->no_pidfile) {
        if (!write_text_file(*config->pidfile, std::to_string(::getpid()) + "\n"))
            return fail("Failed to write pid file \"" + *config->pidfile + "\"");
        pidfile = config->pidfile;
    }
    if (config->user) {
        if (auto r = drop_privileges(*config->user); !r) return fail(r.error());
    }
    if (options->print_address_fd) write_line(*options->print_address_fd, address);
    if (options->print_pid_fd) write_line(*options->print_pid_fd, std::to_string(::getpid()));
    // dbus-launch and dbus-run-session read the address and the pid each to end of file: close the
    // descriptors once written, as dbus-daemon does, unless they are stdout or stderr.
    if (options->print_address_fd > 2) ::close(*options->print_address_fd);
    if (options->print_pid_fd > 2 && options->print_pid_fd != options->print_address_fd)
        ::close(*options->print_pid_fd);
    // Forked, a print fd among 0-2 is still the caller's stdout or stderr, typically a pipe it reads to end
    // of file (`ADDR=$(afbus-daemon --fork --print-address)`, python-dbusmock): the background bus must
    // not hold it, or the caller waits forever. Without --fork it stays, as with dbus-daemon (it is
    // our own stdout then). Done before the parent is released, so that its exit is the pipe's end.
    if (dev_null) {
        for (const std::optional<int>& fd : {options->print_address_fd, options->print_pid_fd})
            if (fd && *fd >= 0 && *fd <= 2) ::dup2(dev_null.get(), *fd);
        dev_null.reset();
    }
    if (ready_fd >= 0) {
        const char ready = '1';
        if (::write(ready_fd, &ready, 1) != 1) log_warning("could not tell the parent process we are ready");
        ::close(ready_fd);
    }

    const Options opts = *options;
    // As dbus-daemon: a change in an <includedir> or a service directory rereads the configuration.
    // A reload the loop starts itself (a directory changed, SIGHUP): the handler below logs a failure, and
    // should even its error not fit in memory, nothing escapes the loop, which would end the bus.
    auto reload_from_loop = [&bus] {
        try {
            (void)bus.reload_config();
        } catch (const std::bad_alloc&) {
            log_warning("Unable to reload configuration: out of memory; the configuration in force stays");
        }
    };
    DirectoryWatch watch(loop, reload_from_loop);
    watch.set_directories(watched_directories(*config, bus.settings()));
    // Reached from SIGHUP and the directory watch as well as ReloadConfig: out of memory, the reload fails
    // and the configuration in force stays (Bus::set_settings is whole or nothing); nothing of it may
    // escape the event loop, which would end the bus.
    bus.set_reload_handler([&bus, &watch, opts, initial_fd_limit]() -> Expected<void, std::string> {
        try {
            auto reloaded = read_config(opts, IncludedirErrors::Fail);
            if (!reloaded) {
                log_warning("Unable to reload configuration: %s", reloaded.error().to_string().c_str());
                return Unexpected("Unable to reload configuration: " + reloaded.error().to_string());
            }
            BusSettings next = settings_from(*reloaded, opts, initial_fd_limit);
            auto directories = watched_directories(*reloaded, next);
            bus.set_settings(std::move(next));
            try {
                watch.set_directories(std::move(directories));
            } catch (const std::bad_alloc&) {
                log_warning(
                    "Configuration reloaded, but out of memory for watching its directories: a change "
                    "in them is seen at the next reload");
            }
            return {};
        } catch (const std::bad_alloc&) {
            log_warning("Unable to reload configuration: out of memory; the configuration in force stays");
            return Unexpected(std::string("Unable to reload configuration: out of memory"));
        }
    });

    // SIGTERM/SIGINT end the bus cleanly; SIGHUP reloads the configuration.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    Fd signal_fd(::signalfd(-1, &signals, SFD_NONBLOCK | SFD_CLOEXEC));
    loop.watch(signal_fd.get(), EPOLLIN, [&](std::uint32_t) {
        signalfd_siginfo info;
        while (::read(signal_fd.get(), &info, sizeof info) == sizeof info) {
            if (info.ssi_signo == SIGHUP) {
                reload_from_loop();
            } else {
                loop.stop();
            }
        }
    });

    (void)systemd::notify("READY=1");
    const bool ok = loop.run();
    for (const std::string& path : socket_files) ::unlink(path.c_str());
    if (pidfile) ::unlink(pidfile->c_str());
    return ok ? 0 : 1;
}
