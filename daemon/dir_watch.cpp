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
    // Added first: a directory watched already keeps its descriptor (the kernel gives the same one back),
    // so only those no longer wanted are removed. Removing a watch queues an IN_IGNORED event; were every
    // watch removed and made again, each reload would be followed by another (on_ready ignores that
    // event as well).
    std::vector<int> wanted;
    wanted.reserve(directories.size());
    for (const std::string& directory : directories) {
        const int watch = ::inotify_add_watch(inotify_.get(), directory.c_str(), kChanges | IN_ONLYDIR);
        // The same directory listed twice gets the same descriptor back.
        if (watch >= 0 && std::find(wanted.begin(), wanted.end(), watch) == wanted.end())
            wanted.push_back(watch);
    }
    for (int watch : watches_)
        if (std::find(wanted.begin(), wanted.end(), watch) == wanted.end())
            ::inotify_rm_watch(inotify_.get(), watch);
    watches_ = std::move(wanted);
}

void DirectoryWatch::on_ready() {
    alignas(inotify_event) char buffer[4096];
    bool changed = false;
    for (;;) {
        const ssize_t n = ::read(inotify_.get(), buffer, sizeof buffer);
        if (n <= 0) break;  // EAGAIN: drained
        // Only what the directories' contents did: not IN_IGNORED (a watch removed, by set_directories or
        // because its directory went away), which no reload needs to follow. A full queue (IN_Q_OVERFLOW)
        // lost events: a change, to be safe.
        for (ssize_t at = 0; at + static_cast<ssize_t>(sizeof(inotify_event)) <= n;) {
            inotify_event event;
            std::memcpy(&event, buffer + at, sizeof event);
            if (event.mask & (kChanges | IN_Q_OVERFLOW)) changed = true;
            at += static_cast<ssize_t>(sizeof(inotify_event) + event.len);
        }
    }
    if (changed && on_change_) on_change_();
}

}  // namespace afbus::daemon
