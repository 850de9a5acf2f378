// Where activatable services come from, as in dbus-daemon 1.14: the directories that
// <standard_session_servicedirs/>, <standard_system_servicedirs/> and <servicedir> stand for, and the
// set of services their .service files describe, cached the way bus/activation.c caches it (a lookup
// that misses rescans every directory, a lookup that hits re-reads a file that changed or forgets one
// that went away).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "service_file.hpp"

namespace afbus::daemon {

// What the standard directory lists depend on; current_service_dir_environment() reads it from the
// process, tests make it up.
struct ServiceDirEnvironment {
    std::optional<std::string> xdg_runtime_dir;
    std::optional<std::string> xdg_data_home;  // set but empty is not unset: it adds no directory
    std::optional<std::string> xdg_data_dirs;
    // From the user database for the real uid, not $HOME: that is what dbus-daemon uses.
    std::string home_directory;
};

ServiceDirEnvironment current_service_dir_environment();

// The directories <standard_session_servicedirs/> adds after the transient one, in order: the data home
// (XDG_DATA_HOME, else <home>/.local/share), each XDG_DATA_DIRS entry (else /usr/local/share and
// /usr/share), then /usr/share, each followed by /dbus-1/services. Entries are split on ':' and trimmed,
// empty ones dropped. Duplicates are left in; resolve_service_dirs() drops them.
std::vector<std::string> standard_session_service_dirs(const ServiceDirEnvironment& environment);

// What <standard_system_servicedirs/> adds, duplicates left in as above: /usr/local/share, /usr/share
// (twice, the second being dbus-daemon's datadir) and /lib, each followed by /dbus-1/system-services.
std::vector<std::string> standard_system_service_dirs();

// Makes sure <xdg_runtime_dir>/dbus-1/services exists for transient services, creating the two levels
// with mode 0700 if needed. XDG_RUNTIME_DIR itself must exist, and all three must be directories owned
// by the effective uid and not writable by group or others. Returns the directory, or why it is not
// usable (dbus-daemon then warns "Unable to set up transient service directory: <why>" and goes on).
Expected<std::string, std::string> prepare_transient_service_dir(const std::string& xdg_runtime_dir);

struct SearchDirectory {
    std::string path;
    // A file must be called <Name>.service or it is not loaded. Only the transient directory is strict.
    bool strict_naming = false;
    // dbus-daemon watches service directories with inotify and reloads its configuration when they
    // change; the transient directory is the exception.
    bool watched = true;
    bool operator==(const SearchDirectory&) const = default;
};

struct ResolvedServiceDirs {
    std::vector<SearchDirectory> directories;
    std::vector<std::string> warnings;  // for stderr, as dbus-daemon prints them
};

// Expands the <servicedir>, <standard_session_servicedirs/> and <standard_system_servicedirs/> of a
// configuration, in order. A directory listed twice keeps its first position, and is strict or
// unwatched only if every mention of it is, as in dbus-daemon's config parser. This creates the
// transient directory when XDG_RUNTIME_DIR is set (prepare_transient_service_dir()), as dbus-daemon
// does each time it loads its configuration.
ResolvedServiceDirs resolve_service_dirs(const std::vector<ServiceDir>& configured,
                                         const ServiceDirEnvironment& environment);

struct ActivatableService {
    ServiceFile service;
    std::string path;  // of its .service file
};

struct ServiceDirectoryNotice {
    // Warning: dbus-daemon logs it (a misnamed file). Verbose: dbus-daemon only says it in its verbose
    // output (files it could not read or parse, duplicate names), so a replacement should not log it
    // by default either.
    enum class Level { Warning, Verbose } level;
    std::string message;
};

// The activatable services of a bus. Filesystem access happens in reload(), find_or_rescan() and
// nowhere else.
class ActivatableServices {
public:
    // uses_servicehelper: whether the configuration has a <servicehelper>. The helper finds files by
    // their name, so then a file not called <Name>.service gets a warning (it is still loaded).
    ActivatableServices(std::vector<SearchDirectory> directories, bool uses_servicehelper);

    // Forgets everything and reads all the directories again, in order: for a name claimed by several
    // files, the first directory wins, and within a directory the first file name in byte order
    // (dbus-daemon takes readdir order there). A missing or unreadable directory is skipped. Returns
    // whether names() changed; note that dbus-daemon sends ActivatableServicesChanged after every
    // configuration reload, changed or not.
    bool reload();

    // Looks `name` up the way dbus-daemon does before starting a service. Known: its file is stat()ed;
    // gone, it is forgotten and the answer is nullopt (without a rescan); modified, it is read again.
    // If the new contents are refused, the old ones stay. If they name another service, the entry
    // moves to that name and is still the answer this once; if that other name is already provided
    // by another file, the entry drops out of names() and is the answer, old contents and all, this
    // once. Unknown: every directory is rescanned for new and modified files, then the name is looked
    // up again. Deleted files are not noticed by the rescan, only by a lookup of their name or a
    // reload().
    std::optional<ActivatableService> find_or_rescan(std::string_view name);

    // The cached entry, without touching the filesystem.
    std::optional<ActivatableService> find(std::string_view name) const;

    // For ListActivatableNames, sorted (dbus-daemon gives hash-table order).
    std::vector<std::string> names() const;

    // What happened since the last call: files skipped and why. Every rescan repeats the notices about
    // the files it skips, so only the first kMaxPendingNotices are kept between two calls.
    std::vector<ServiceDirectoryNotice> take_notices();
    static constexpr std::size_t kMaxPendingNotices = 256;

    const std::vector<SearchDirectory>& directories() const { return directories_; }

private:
    struct LoadedFile {
        ServiceFile service;
        timespec mtime{};
    };
    struct FileLocation {
        std::size_t directory = 0;
        std::string file_name;
    };
    // A file parsed, with its mtime; or why it was refused (a verbose notice).
    struct ReadResult {
        std::optional<LoadedFile> file;
        std::string problem;
    };

    std::string path_of(std::size_t directory, std::string_view file_name) const;
    ReadResult read_file(const std::string& path) const;
    void scan_directory(std::size_t directory);
    void add_new_file(std::size_t directory, const std::string& file_name, LoadedFile file);
    // Returns false if the file is gone (and now forgotten).
    bool refresh_file(std::size_t directory, const std::string& file_name);
    void replace_contents(std::size_t directory, const std::string& file_name, LoadedFile file);
    bool indexed_at(const std::string& name, std::size_t directory, std::string_view file_name) const;
    std::optional<ActivatableService> entry_at(std::size_t directory, const std::string& file_name) const;
    void notice(ServiceDirectoryNotice::Level level, std::string message);

    std::vector<SearchDirectory> directories_;
    bool uses_servicehelper_;
    // Per directory, file name -> contents. A file that changed to name a service another file already
    // provides stays here with its old contents but out of by_name_, as in dbus-daemon.
    std::vector<std::map<std::string, LoadedFile, std::less<>>> files_;
    std::map<std::string, FileLocation, std::less<>> by_name_;
    std::vector<ServiceDirectoryNotice> notices_;
};

}  // namespace afbus::daemon
