// Activation: starting services on demand, as dbus-daemon 1.14 does. A message for an unowned name
// that a .service file provides (auto-start), or StartServiceByName, makes a pending activation; the
// service is started by running its Exec= line (through the <servicehelper> on the system bus), or,
// with --systemd-activation and a SystemdService= key, by asking systemd with an ActivationRequest
// signal. The messages wait until the name gets an owner, and are then routed as if just sent; if the
// start fails or times out, their senders get the error instead.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/error.hpp"
#include "afbus/expected.hpp"
#include "afbus/message.hpp"
#include "event_loop.hpp"
#include "name_registry.hpp"
#include "service_directory.hpp"
#include "service_process.hpp"

namespace afbus::daemon {

struct PolicyVerdict;

// What activation needs of the bus model: names, the sender's policy, and ways to answer and to resume
// the messages that waited.
class ActivationHost {
public:
    [[nodiscard]] virtual std::string unique_name_of(PeerId peer) const = 0;  // empty once gone
    [[nodiscard]] virtual bool has_owner(std::string_view name) const = 0;
    [[nodiscard]] virtual std::optional<std::string> owner_name(std::string_view name) const = 0;  // its unique name
    // Whether `requester` may send `message` to a service not yet running (its send rules only).
    virtual PolicyVerdict check_send_to_service(PeerId requester, const Message& message) = 0;
    // A reply or error of the bus to `to`, if it is still connected.
    virtual void answer(PeerId to, MessageBuilder builder) = 0;
    virtual void answer_error(PeerId to, const Message& call, const Error& error) = 0;
    // A message from the bus itself (its sender and serial set); null if it cannot be built.
    virtual std::shared_ptr<const Message> build_bus_message(MessageBuilder builder) = 0;
    // Routes `message` from `sender` (none: the bus) to the owner of `name`, as routing would have had the
    // name been owned when it was sent; false if the name has no owner now. Monitors saw it already.
    virtual bool resume(std::optional<PeerId> sender, const std::shared_ptr<const Message>& message, std::string_view name) = 0;
    // Shows a message of the bus that is about to go to (or wait for) `name` to the monitors.
    virtual void show_bus_message(const std::shared_ptr<const Message>& message, std::string_view name) = 0;
    // activate() took effect: it queued its message for a start, or answered a StartServiceByName for a
    // running service. The message is the activation's from here on, whatever fails after (the bus can
    // no longer answer it NoMemory); until this is said, a std::bad_alloc from activate() changed nothing.
    virtual void activation_took_effect() = 0;

protected:
    ~ActivationHost() = default;
};

inline constexpr std::string_view kSystemdName = "org.freedesktop.systemd1";

struct ActivationSettings {
    std::string bus_type;  // "session", "system" or another <type>
    std::string address;   // the bus's own address, for DBUS_STARTER_ADDRESS
    std::vector<SearchDirectory> directories;
    std::optional<std::string> servicehelper;
    bool systemd_activation = false;
    std::int64_t service_start_timeout_ms = 25000;
    std::int64_t max_pending_service_starts = 512;
    // RLIMIT_NOFILE for services: the daemon's limit before it raised it.
    std::optional<rlimit> service_fd_limit;
};

class Activation {
public:
    // A message waiting for a service. `requester` is the connection that sent it, or none for the
    // bus's own messages to systemd. `message` carries its sender field already.
    struct Waiter {
        std::optional<PeerId> requester;
        std::shared_ptr<const Message> message;
        bool auto_start = true;  // false: a StartServiceByName call, answered with 1 once started
    };

    // `environment`: the daemon's environment at start (dbus-daemon copies its own).
    Activation(EventLoop& loop, ActivationHost& host, std::map<std::string, std::string> environment);
    ~Activation();
    Activation(const Activation&) = delete;
    Activation& operator=(const Activation&) = delete;

    // New directories and limits (startup and every configuration reload): load() reads every directory
    // the settings name, changing nothing (it may throw std::bad_alloc); configure() puts the settings and
    // what was read in force, taking no memory.
    [[nodiscard]] static std::unique_ptr<ActivatableServices> load(const ActivationSettings& settings);
    void configure(ActivationSettings settings, std::unique_ptr<ActivatableServices> services) noexcept;
    void set_address(std::string address) { settings_.address = std::move(address); }

    // Starts `name` for `waiter`, or adds the waiter to its pending start. Fails at once when nothing
    // provides the name, the sender may not send to it, the limit of pending starts is reached, or the
    // service cannot be started; later failures are answered to every waiter.
    Expected<void, Error> activate(std::string_view name, Waiter waiter);

    // StartServiceByName: replies 2 at once if `name` has an owner, else activates it.
    Expected<void, Error> start_service_by_name(std::string_view name, PeerId requester,
                                                std::shared_ptr<const Message> call);

    // `name` got a primary owner: its waiters are answered or routed to it.
    void name_acquired(std::string_view name);

    // org.freedesktop.systemd1.Activator.ActivationFailure from the owner of org.freedesktop.systemd1.
    void systemd_failed(const Message& signal);

    // UpdateActivationEnvironment: the variables for services started from now on, passed on to
    // systemd with Manager.SetEnvironment when the bus does systemd activation.
    void update_environment(const std::map<std::string, std::string>& variables);

    [[nodiscard]] std::vector<std::string> activatable_names() const;

private:
    struct Pending {
        std::string name;
        std::optional<std::string> systemd_unit;
        std::string exec;
        std::vector<Waiter> waiters;
        EventLoop::TimerId timer = 0;
    };

    // Removes a pending start (its timer cancelled, its waiters no longer counted) and returns it.
    std::optional<Pending> take(std::string_view name);
    // Finishes a pending start: every waiter still connected gets `error`.
    void fail(const std::string& name, const Error& error);
    // Every pending start of the same Exec= line fails (dbus-daemon: they share the process).
    void fail_exec(const std::string& exec, const Error& error);
    // service_start_timeout passed for `name`: fail() with TimedOut.
    void time_out(const std::string& name);
    void process_ended(const std::string& name, const std::string& exec, ProcessEnd end);
    Expected<void, Error> spawn(const ActivatableService& service, Pending& pending, std::optional<PeerId> requester);
    Expected<void, Error> ask_systemd(const ActivatableService& service, std::optional<PeerId> requester);
    // Delivers a message of the bus to systemd, or queues it until systemd owns its name.
    Expected<void, Error> send_to_systemd(std::shared_ptr<const Message> message);
    void log_notices();
    [[nodiscard]] std::vector<std::string> spawn_environment();
    [[nodiscard]] std::string describe(std::optional<PeerId> requester) const;

    EventLoop& loop_;
    ActivationHost& bus_;
    ActivationSettings settings_;
    std::unique_ptr<ActivatableServices> services_;
    std::map<std::string, std::string> environment_;
    // The errors a start that timed out or failed is answered with when the bus has no memory to word one
    // naming the service (made at start).
    const Error timed_out_without_memory_;
    const Error failed_without_memory_;
    std::map<std::string, Pending, std::less<>> pending_;
    std::size_t waiting_ = 0;  // waiters of all pending starts, bounded by max_pending_service_starts
    // Children that have not ended yet, kept to reap them whatever became of their activation.
    std::map<pid_t, std::unique_ptr<ServiceProcess>> processes_;
};

}  // namespace afbus::daemon
