// DirectoryWatch: the directories whose changes make the bus reread its configuration, as dbus-daemon
// watches them with inotify: every <includedir> (a package dropping a policy file into system.d) and
// every service directory except the transient one (a package installing a .service file).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "afbus/fd.hpp"
#include "event_loop.hpp"

namespace afbus::daemon {

class DirectoryWatch {
public:
    // `on_change` runs from `loop` once per batch of changes.
    DirectoryWatch(EventLoop& loop, std::function<void()> on_change);
    ~DirectoryWatch();
    DirectoryWatch(const DirectoryWatch&) = delete;
    DirectoryWatch& operator=(const DirectoryWatch&) = delete;

    // Watches exactly `directories` from now on. A directory that does not exist is left out (dbus-daemon
    // does the same; a reload after it is created picks it up).
    void set_directories(const std::vector<std::string>& directories);

private:
    void on_ready();

    EventLoop& loop_;
    std::function<void()> on_change_;
    Fd inotify_;
    std::vector<int> watches_;
};

}  // namespace afbus::daemon
