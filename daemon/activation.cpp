#include "activation.hpp"

#include <syslog.h>

#include <cassert>
#include <cstring>
#include <new>
#include <type_traits>

#include "afbus/names.hpp"
#include "afbus/types.hpp"
#include "log.hpp"
#include "name_signals.hpp"
#include "policy_check.hpp"
#include "systemd_integration.hpp"

namespace afbus::daemon {
namespace {

constexpr std::string_view kSystemdPath = "/org/freedesktop/systemd1";
constexpr std::string_view kActivatorInterface = "org.freedesktop.systemd1.Activator";

// What the setuid launch helper's exit status means (its exit codes are fixed by dbus-daemon).
Error helper_exit_error(int code) {
    using namespace error_names;
    switch (code) {
        case 2: return make_error(kNoMemory, "Launcher could not run (out of memory)");
        case 3: return make_error(kSpawnConfigInvalid, "Invalid configuration (missing or empty <user>?)");
        case 4: return make_error(kSpawnSetupFailed, "Failed to setup environment correctly");
        case 5: return make_error(kSpawnServiceInvalid, "Bus name is not valid or missing");
        case 6: return make_error(kSpawnServiceNotFound, "Bus name not found in system service directory");
        case 7: return make_error(kSpawnPermissionsInvalid, "The permission of the setuid helper is not correct");
        case 8:
            return make_error(kSpawnPermissionsInvalid,
                              "The service file is incorrect or does not have all required attributes");
        case 9: return make_error(kSpawnExecFailed, "Cannot launch daemon, file not found or permissions invalid");
        case 10: return make_error(kInvalidArgs, "Invalid arguments to command line");
        case 11: return make_error(kSpawnChildSignaled, "Launched child was signaled, it probably crashed");
        default: return make_error(kSpawnChildExited, "Launch helper exited with unknown return code " + std::to_string(code));
    }
}

Error process_error(const std::string& name, ProcessEnd end) {
    using namespace error_names;
    switch (end.kind) {
        case ProcessEnd::Kind::ExecFailed:
            return make_error(kSpawnExecFailed, "Failed to execute program " + name + ": " + std::strerror(end.code));
        case ProcessEnd::Kind::Signaled:
            return make_error(kSpawnChildSignaled, "Process " + name + " received signal " + std::to_string(end.code));
        case ProcessEnd::Kind::Exited: break;
    }
    return make_error(kSpawnChildExited, "Process " + name + " exited with status " + std::to_string(end.code));
}

}  // namespace

Activation::Activation(EventLoop& loop, ActivationHost& bus, std::map<std::string, std::string> environment)
    : loop_(loop),
      bus_(bus),
      services_(std::make_unique<ActivatableServices>(std::vector<SearchDirectory>{}, false)),
      environment_(std::move(environment)),
      timed_out_without_memory_(make_error(error_names::kTimedOut, "Activation timed out")),
      failed_without_memory_(make_error(error_names::kSpawnFailed, "The activated service failed")) {}

Activation::~Activation() {
    for (auto& [name, pending] : pending_)
        if (pending.timer) loop_.cancel_timer(pending.timer);
}

std::unique_ptr<ActivatableServices> Activation::load(const ActivationSettings& settings) {
    auto services =
        std::make_unique<ActivatableServices>(settings.directories, settings.servicehelper.has_value());
    services->reload();
    return services;
}

void Activation::configure(ActivationSettings settings,
                           std::unique_ptr<ActivatableServices> services) noexcept {
    static_assert(std::is_nothrow_move_assignable_v<ActivationSettings>);
    settings_ = std::move(settings);
    services_ = std::move(services);
    try {
        log_notices();
    } catch (const std::bad_alloc&) {
        // What the directories held is in force; only the notices about them are lost.
    }
}

void Activation::log_notices() {
    // Warnings are what dbus-daemon logs (a misnamed file); the rest only its verbose output shows.
    for (const ServiceDirectoryNotice& n : services_->take_notices()) {
        if (n.level == ServiceDirectoryNotice::Level::Warning) log_warning("%s", n.message.c_str());
        else log_debug("%s", n.message.c_str());
    }
}

std::vector<std::string> Activation::activatable_names() const { return services_->names(); }

std::string Activation::describe(std::optional<PeerId> requester) const {
    if (!requester) return "the bus";
    const std::string name = bus_.unique_name_of(*requester);
    return name.empty() ? std::string("(disconnected)") : name;
}

Expected<void, Error> Activation::start_service_by_name(std::string_view name, PeerId requester,
                                                        std::shared_ptr<const Message> call) {
    return activate(name, Waiter{requester, std::move(call), false});
}

Expected<void, Error> Activation::activate(std::string_view name, Waiter waiter) {
    const std::string service_name(name);
    if (waiting_ >= static_cast<std::size_t>(settings_.max_pending_service_starts)) {
        return Unexpected(make_error(error_names::kLimitsExceeded,
                                     "The maximum number of pending activations has been reached, activation of " +
                                         service_name + " failed (max_pending_service_starts=" +
                                         std::to_string(settings_.max_pending_service_starts) + ")"));
    }
    // Waiting for systemd itself needs no .service file: it connects when it is ready.
    const bool waiting_for_systemd = settings_.systemd_activation && name == kSystemdName;
    std::optional<ActivatableService> service;
    if (!waiting_for_systemd) {
        // Unique names are never provided by a file; don't rescan the directories for them.
        if (!name.starts_with(':')) service = services_->find_or_rescan(name);
        log_notices();
        if (!service) {
            return Unexpected(make_error(error_names::kServiceUnknown,
                                         "The name " + service_name + " was not provided by any .service files"));
        }
    }
    // The sender must be allowed to send to the name, as if the service already owned it and nothing else.
    if (waiter.auto_start && service && waiter.requester) {
        // A refusal to drop silently fails the activation with an unnamed error, which nobody is told of.
        if (const PolicyVerdict verdict = bus_.check_send_to_service(*waiter.requester, *waiter.message); !verdict.allowed())
            return Unexpected(verdict.error);
    }
    if (!waiter.auto_start && bus_.has_owner(name)) {
        if (waiter.requester) {
            auto reply = MessageBuilder::method_return(bus_.unique_name_of(*waiter.requester), waiter.message->serial());
            append(reply, std::uint32_t{2});  // DBUS_START_REPLY_ALREADY_RUNNING
            bus_.answer(*waiter.requester, std::move(reply));
            bus_.activation_took_effect();
        }
        return {};
    }

    // Room before change (docs/reliability.md, section 4): until the waiter is queued whole, with its
    // pending start and that start's timer, an allocation failure changes nothing, and the bus answers
    // the message NoMemory; from then on the message is the activation's.
    const std::optional<PeerId> requester = waiter.requester;
    auto existing = pending_.find(name);
    if (existing != pending_.end()) {
        existing->second.waiters.push_back(std::move(waiter));  // unchanged if it throws
        ++waiting_;
        bus_.activation_took_effect();
        return {};
    }
    Pending fresh;
    fresh.name = service_name;
    if (service) {
        fresh.exec = service->service.exec;
        fresh.systemd_unit = service->service.systemd_service;
    }
    fresh.waiters.push_back(std::move(waiter));
    auto [slot, added] = pending_.try_emplace(service_name);
    assert(added);
    try {
        fresh.timer = loop_.add_timer(Clock::now() + std::chrono::milliseconds(settings_.service_start_timeout_ms),
                                      [this, service_name] {
                                          auto it = pending_.find(service_name);
                                          if (it == pending_.end()) return;
                                          it->second.timer = 0;
                                          time_out(service_name);
                                      });
    } catch (const std::bad_alloc&) {
        pending_.erase(slot);
        throw;
    }
    Pending& pending = slot->second = std::move(fresh);
    ++waiting_;
    bus_.activation_took_effect();
    if (waiting_for_systemd) return {};

    Expected<void, Error> started;
    try {
        if (settings_.systemd_activation && service->service.systemd_service)
            started = ask_systemd(*service, requester);
        else
            started = spawn(*service, pending, requester);
    } catch (const std::bad_alloc&) {
        // Queued, but not started: the start fails within this call like any other failed start, so that
        // nothing stays pending and the sender is answered (rather than losing its connection to a call
        // that changed the bus). spawn() leaves no process behind when it throws.
        take(service_name);
        return Unexpected(make_error(error_names::kNoMemory, "Not enough memory to start " + service_name));
    }
    // Nobody else can be waiting yet when the start fails within this call: the caller answers.
    if (!started) take(service_name);
    return started;
}

Expected<void, Error> Activation::ask_systemd(const ActivatableService& service, std::optional<PeerId> requester) {
    const std::string& unit = *service.service.systemd_service;
    auto request = MessageBuilder::signal(kDriverPath, kActivatorInterface, "ActivationRequest");
    request.destination(kSystemdName);
    append(request, unit);
    auto message = bus_.build_bus_message(std::move(request));
    if (!message) return Unexpected(make_error(error_names::kNoMemory, "Cannot build the activation request"));
    log_info(bus_.has_owner(kSystemdName) ? "Activating via systemd: service name='%s' unit='%s' requested by '%s'"
                     : "Activating systemd to hand-off: service name='%s' unit='%s' requested by '%s'",
             service.service.name.c_str(), unit.c_str(), describe(requester).c_str());
    return send_to_systemd(std::move(message));
}

Expected<void, Error> Activation::send_to_systemd(std::shared_ptr<const Message> message) {
    // As dbus-daemon, monitors see the message even while systemd is not there to receive it.
    bus_.show_bus_message(message, kSystemdName);
    if (bus_.resume(std::nullopt, message, kSystemdName)) return {};
    return activate(kSystemdName, Waiter{std::nullopt, std::move(message), true});
}

std::vector<std::string> Activation::spawn_environment() {
    // As dbus-daemon: the starter variables are set in the activation environment itself, so that
    // UpdateActivationEnvironment cannot override them for later services.
    environment_["DBUS_STARTER_ADDRESS"] = settings_.address;
    if (!settings_.bus_type.empty()) {
        environment_["DBUS_STARTER_BUS_TYPE"] = settings_.bus_type;
        if (settings_.bus_type == "session") environment_["DBUS_SESSION_BUS_ADDRESS"] = settings_.address;
        else if (settings_.bus_type == "system") environment_["DBUS_SYSTEM_BUS_ADDRESS"] = settings_.address;
    }
    std::vector<std::string> out;
    out.reserve(environment_.size());
    for (const auto& [key, value] : environment_) out.push_back(key + "=" + value);
    return out;
}

Expected<void, Error> Activation::spawn(const ActivatableService& service, Pending& pending,
                                        std::optional<PeerId> requester) {
    const std::string& name = pending.name;
    std::string command;
    if (settings_.servicehelper) {
        if (!service.service.user) {
            return Unexpected(make_error(error_names::kSpawnFileInvalid, "Cannot do system-bus activation with no user\n"));
        }
        command = *settings_.servicehelper + " " + name;
    } else {
        command = service.service.exec;
    }
    auto argv = split_exec_command(command);
    if (!argv) return Unexpected(make_error(error_names::kInvalidArgs, argv.error()));
    log_info("Activating service name='%s' requested by '%s'%s", name.c_str(), describe(requester).c_str(),
             settings_.servicehelper ? " (using servicehelper)" : "");
    const std::string exec = pending.exec;
    // As dbus-daemon: when the bus logs to syslog, what its services print goes to the journal, tagged
    // with the service's name; without a journal it goes where the bus's own output goes.
    Fd journal_out, journal_err;
    if (log_target() == LogTarget::Syslog || log_target() == LogTarget::Both) {
        journal_out = systemd::journal_stream(name, LOG_INFO);
        journal_err = systemd::journal_stream(name, LOG_WARNING);
    }
    // The process's place is made before it starts: once it runs, nothing may fail for want of memory (a
    // process nobody holds would never be reaped). Pids are never 0.
    [[maybe_unused]] auto [placeholder, added] = processes_.try_emplace(0);
    assert(added);
    auto place = processes_.extract(placeholder);
    auto process = ServiceProcess::spawn(loop_, *argv, spawn_environment(), settings_.service_fd_limit,
                                         [this, name, exec](ProcessEnd end) { process_ended(name, exec, end); },
                                         ProcessOutput{journal_out.get(), journal_err.get()});
    if (!process) {
        log_info("Failed to activate service %s: %s", name.c_str(), std::strerror(process.error()));
        return Unexpected(make_error(error_names::kSpawnForkFailed,
                                     std::string("Failed to fork (") + std::strerror(process.error()) + ")"));
    }
    place.key() = (*process)->pid();
    place.mapped() = std::move(*process);
    processes_.insert(std::move(place));
    return {};
}

void Activation::time_out(const std::string& name) {
    // Run from the loop, where a std::bad_alloc would end the bus: without memory for the error's words,
    // the waiters get them without the service's name.
    std::optional<Error> error;
    try {
        error = make_error(error_names::kTimedOut, "Activation of " + name + " timed out");
    } catch (const std::bad_alloc&) {
    }
    fail(name, error ? *error : timed_out_without_memory_);
}

void Activation::process_ended(const std::string& name, const std::string& exec, ProcessEnd end) {
    // The child is reaped; ServiceProcess allows its destruction from this callback.
    processes_.erase(end.pid);
    // Exit status 0 is not a failure: a service may fork and exit before its child takes the name.
    if (end.kind == ProcessEnd::Kind::Exited && end.code == 0) return;
    if (pending_.find(name) == pending_.end()) return;  // already started, failed or timed out
    // Run from the loop (the process's pidfd), as time_out() is.
    try {
        const Error error = settings_.servicehelper && end.kind == ProcessEnd::Kind::Exited
                                ? helper_exit_error(end.code)
                                : process_error(name, end);
        log_info("Activated service '%s' failed: %s", name.c_str(), error.message.c_str());
        fail_exec(exec, error);
    } catch (const std::bad_alloc&) {
        // Its own waiters are told; others started with the same command (fail_exec) time out.
        fail(name, failed_without_memory_);
    }
}

void Activation::fail_exec(const std::string& exec, const Error& error) {
    std::vector<std::string> names;
    for (const auto& [name, pending] : pending_)
        if (pending.exec == exec) names.push_back(name);
    for (const std::string& name : names) fail(name, error);
}

std::optional<Activation::Pending> Activation::take(std::string_view name) {
    auto it = pending_.find(name);
    if (it == pending_.end()) return std::nullopt;
    Pending pending = std::move(it->second);
    pending_.erase(it);
    if (pending.timer) loop_.cancel_timer(pending.timer);
    waiting_ -= pending.waiters.size();
    return pending;
}

void Activation::fail(const std::string& name, const Error& error) {
    auto pending = take(name);
    if (!pending) return;
    for (const Waiter& waiter : pending->waiters) {
        if (!waiter.requester) continue;
        bus_.answer_error(*waiter.requester, *waiter.message, error);
    }
}

void Activation::name_acquired(std::string_view name) {
    auto pending = take(name);
    if (!pending) return;
    log_info("Successfully activated service '%s'", pending->name.c_str());
    for (Waiter& waiter : pending->waiters) {
        if (!waiter.auto_start) {
            const std::string requester = bus_.unique_name_of(*waiter.requester);
            if (requester.empty()) continue;  // gone while waiting
            auto reply = MessageBuilder::method_return(requester, waiter.message->serial());
            append(reply, std::uint32_t{1});  // DBUS_START_REPLY_SUCCESS
            bus_.answer(*waiter.requester, std::move(reply));
            continue;
        }
        // The owner may have changed again while earlier waiters were served.
        if (!bus_.resume(waiter.requester, waiter.message, pending->name)) break;
    }
}

void Activation::systemd_failed(const Message& signal) {
    MessageReader reader(signal);
    std::string unit, error_name, error_message;
    if (!read(reader, unit, error_name, error_message)) return;
    log_info("Activation via systemd failed for unit '%s': %s", unit.c_str(), error_message.c_str());
    // A malformed error name from systemd would make an unsendable error reply.
    if (!is_valid_error_name(error_name)) error_name = std::string(error_names::kFailed);
    std::vector<std::string> names;
    for (const auto& [name, pending] : pending_)
        if (pending.systemd_unit == unit) names.push_back(name);
    for (const std::string& name : names) fail(name, make_error(error_name, error_message));
}

void Activation::update_environment(const std::map<std::string, std::string>& variables) {
    for (const auto& [key, value] : variables) environment_[key] = value;
    if (!settings_.systemd_activation) return;
    // As dbus-daemon: systemd gets the same variables, in a call nobody waits a reply for. Before
    // systemd is on the bus, the call waits for it like any message to an activatable name.
    std::vector<std::string> assignments;
    for (const auto& [key, value] : variables) assignments.push_back(key + "=" + value);
    const std::optional<std::string> systemd = bus_.owner_name(kSystemdName);
    auto call = MessageBuilder::method_call(systemd ? std::string_view(*systemd) : kSystemdName, kSystemdPath,
                                            "org.freedesktop.systemd1.Manager", "SetEnvironment");
    call.flags(message_flags::kNoReplyExpected);
    append(call, assignments);
    auto message = bus_.build_bus_message(std::move(call));
    if (!message) return;
    if (auto sent = send_to_systemd(std::move(message)); !sent)
        log_warning("Unable to pass the activation environment to systemd: %s", sent.error().message.c_str());
}

}  // namespace afbus::daemon
