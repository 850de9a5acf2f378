#include "dir_watch.hpp"

#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "log.hpp"

namespace afbus::daemon {
namespace {

// What dbus-daemon watches for: a file written, created, removed or renamed in or out.
constexpr std::uint32_t kChanges = IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE;

}  // namespace

DirectoryWatch::DirectoryWatch(EventLoop& loop, std::function<void()> on_change)
    : loop_(loop), on_change_(std::move(on_change)), inotify_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) {
    if (!inotify_) {
        log_warning("Cannot watch the configuration and service directories: %s", std::strerror(errno));
        return;
    }
    if (!loop_.watch(inotify_.get(), EPOLLIN, [this](std::uint32_t) { on_ready(); })) {
        log_warning("Cannot watch the configuration and service directories: %s", std::strerror(errno));
        inotify_.reset();
    }
}

DirectoryWatch::~DirectoryWatch() {
    if (inotify_) loop_.unwatch(inotify_.get());
}

void DirectoryWatch::set_directories(const std::vector<std::string>& directories) {
    if (!inotify_) return;
    for (int watch : watches_) ::inotify_rm_watch(inotify_.get(), watch);
    watches_.clear();
    for (const std::string& directory : directories) {
        const int watch = ::inotify_add_watch(inotify_.get(), directory.c_str(), kChanges | IN_ONLYDIR);
        // The same directory listed twice gets the same descriptor back.
        if (watch >= 0 && std::find(watches_.begin(), watches_.end(), watch) == watches_.end()) watches_.push_back(watch);
    }
}

void DirectoryWatch::on_ready() {
    alignas(inotify_event) char buffer[4096];
    bool changed = false;
    for (;;) {
        const ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
        if (n <= 0) break;  // EAGAIN: drained
        changed = true;
    }
    if (changed && on_change_) on_change_();
}

}  // namespace afbus::daemon
