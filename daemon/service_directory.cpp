#include "service_directory.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

#include "afbus/fd.hpp"

namespace afbus::daemon {
namespace {

constexpr std::string_view kServiceSuffix = ".service";

std::optional<std::string> environment_variable(const char* name) {
    // Ignored in a setuid process, as dbus-daemon's _dbus_getenv does.
    const char* value = ::secure_getenv(name);
    if (!value) return std::nullopt;
    return std::string(value);
}

std::string home_directory_of_real_user() {
    passwd entry{};
    passwd* found = nullptr;
    std::vector<char> buffer(16384);
    if (::getpwuid_r(::getuid(), &entry, buffer.data(), buffer.size(), &found) != 0 || !found) return {};
    return found->pw_dir;
}

// _dbus_concat_dir_and_file: exactly one slash between the two, unless the directory already ends with
// one and the file starts with one, in which case only one of those goes.
std::string join_path(std::string_view directory, std::string_view file) {
    if (directory.empty()) return std::string(file);
    const bool directory_has_slash = directory.back() == '/';
    const bool file_has_slash = !file.empty() && file.front() == '/';
    std::string joined(directory);
    if (directory_has_slash && file_has_slash) joined.pop_back();
    else if (!directory_has_slash && !file_has_slash) joined += '/';
    joined += file;
    return joined;
}

std::string_view trim_ascii_white(std::string_view s) {
    constexpr std::string_view kWhite = " \t\r\n";
    const auto first = s.find_first_not_of(kWhite);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(kWhite) - first + 1);
}

// _dbus_split_paths_and_append: a ':'-separated list, each entry trimmed, empty ones dropped.
std::vector<std::string> split_search_path(std::string_view search_path, std::string_view suffix) {
    std::vector<std::string> directories;
    std::size_t start = 0;
    while (start <= search_path.size()) {
        std::size_t end = search_path.find(':', start);
        if (end == std::string_view::npos) end = search_path.size();
        const std::string_view entry = trim_ascii_white(search_path.substr(start, end - start));
        if (!entry.empty()) directories.push_back(join_path(entry, suffix));
        start = end + 1;
    }
    return directories;
}

std::string errno_text(int error_number) { return std::strerror(error_number); }

// ensure_owned_directory() in dbus-daemon: the checks guard against a root process run with someone
// else's XDG_RUNTIME_DIR, so they fail closed.
Expected<void, std::string> check_owned_directory(std::string_view label, const std::string& path, bool create) {
    if (create && ::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST)
        return Unexpected("Failed to create directory " + path + ": " + errno_text(errno));
    const std::string described = std::string(label) + " \"" + path + "\"";
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) return Unexpected(described + " not available: " + errno_text(errno));
    if (!S_ISDIR(info.st_mode)) return Unexpected(described + " is not a directory");
    if (info.st_uid != ::geteuid())
        return Unexpected(described + " is owned by uid " + std::to_string(info.st_uid) + ", not our uid " +
                          std::to_string(::geteuid()));
    if (info.st_mode & (S_IWOTH | S_IWGRP)) {
        char mode[32];
        std::snprintf(mode, sizeof mode, "0%o", static_cast<unsigned>(info.st_mode));
        return Unexpected(described + " can be written by others (mode " + mode + ")");
    }
    return {};
}

// dbus-daemon compares whole seconds; the nanoseconds also catch a file rewritten within the second.
bool newer(const timespec& a, const timespec& b) {
    return a.tv_sec != b.tv_sec ? a.tv_sec > b.tv_sec : a.tv_nsec > b.tv_nsec;
}

struct DirCloser {
    void operator()(DIR* dir) const { ::closedir(dir); }
};

}  // namespace

ServiceDirEnvironment current_service_dir_environment() {
    ServiceDirEnvironment environment;
    environment.xdg_runtime_dir = environment_variable("XDG_RUNTIME_DIR");
    environment.xdg_data_home = environment_variable("XDG_DATA_HOME");
    environment.xdg_data_dirs = environment_variable("XDG_DATA_DIRS");
    environment.home_directory = home_directory_of_real_user();
    return environment;
}

std::vector<std::string> standard_session_service_dirs(const ServiceDirEnvironment& environment) {
    // Built as one search path and split, as dbus-daemon does, so a ':' inside XDG_DATA_HOME splits it.
    std::string search_path;
    if (environment.xdg_data_home) search_path = *environment.xdg_data_home;
    // dbus-daemon cannot do without a home directory (it fails to load its configuration); here the
    // entry is just left out.
    else if (!environment.home_directory.empty())
        search_path = join_path(environment.home_directory, "/.local/share");
    search_path += ':';
    search_path += environment.xdg_data_dirs ? *environment.xdg_data_dirs + ":" : "/usr/local/share:/usr/share:";
    search_path += "/usr/share";  // dbus-daemon's datadir on Debian
    return split_search_path(search_path, "/dbus-1/services");
}

std::vector<std::string> standard_system_service_dirs() {
    // /usr/share twice: the standard path, then dbus-daemon's datadir. /lib is for early boot.
    return split_search_path("/usr/local/share:/usr/share:/usr/share:/lib", "/dbus-1/system-services");
}

Expected<std::string, std::string> prepare_transient_service_dir(const std::string& xdg_runtime_dir) {
    const std::string dbus_dir = xdg_runtime_dir + "/dbus-1";
    std::string services_dir = xdg_runtime_dir + "/dbus-1/services";
    if (auto ok = check_owned_directory("XDG_RUNTIME_DIR", xdg_runtime_dir, false); !ok)
        return Unexpected(std::move(ok).error());
    if (auto ok = check_owned_directory("XDG_RUNTIME_DIR subdirectory", dbus_dir, true); !ok)
        return Unexpected(std::move(ok).error());
    if (auto ok = check_owned_directory("XDG_RUNTIME_DIR subdirectory", services_dir, true); !ok)
        return Unexpected(std::move(ok).error());
    return services_dir;
}

ResolvedServiceDirs resolve_service_dirs(const std::vector<ServiceDir>& configured,
                                         const ServiceDirEnvironment& environment) {
    ResolvedServiceDirs resolved;
    auto& directories = resolved.directories;
    const auto add = [&directories](std::string path, bool strict_naming, bool watched) {
        const auto same_path = [&path](const SearchDirectory& d) { return d.path == path; };
        if (auto it = std::find_if(directories.begin(), directories.end(), same_path); it != directories.end()) {
            it->strict_naming = it->strict_naming && strict_naming;
            it->watched = it->watched || watched;
            return;
        }
        directories.push_back({std::move(path), strict_naming, watched});
    };
    for (const auto& entry : configured) {
        switch (entry.kind) {
        case ServiceDir::Kind::Configured:
            add(entry.path, false, true);
            break;
        case ServiceDir::Kind::StandardSession:
            if (environment.xdg_runtime_dir) {
                auto transient = prepare_transient_service_dir(*environment.xdg_runtime_dir);
                if (transient) add(std::move(*transient), true, false);
                else resolved.warnings.push_back("Unable to set up transient service directory: " + transient.error());
            }
            for (auto& path : standard_session_service_dirs(environment)) add(std::move(path), false, true);
            break;
        case ServiceDir::Kind::StandardSystem:
            for (auto& path : standard_system_service_dirs()) add(std::move(path), false, true);
            break;
        }
    }
    return resolved;
}

ActivatableServices::ActivatableServices(std::vector<SearchDirectory> directories, bool uses_servicehelper)
    : directories_(std::move(directories)), uses_servicehelper_(uses_servicehelper), files_(directories_.size()) {}

bool ActivatableServices::reload() {
    const auto before = names();
    by_name_.clear();
    for (auto& files : files_) files.clear();
    for (std::size_t d = 0; d < directories_.size(); ++d) scan_directory(d);
    return names() != before;
}

std::optional<ActivatableService> ActivatableServices::find_or_rescan(std::string_view name) {
    if (const auto it = by_name_.find(name); it != by_name_.end()) {
        // Copied: refreshing may erase or re-key the entry `it` points to.
        const FileLocation location = it->second;
        if (!refresh_file(location.directory, location.file_name)) return std::nullopt;
        return entry_at(location.directory, location.file_name);
    }
    for (std::size_t d = 0; d < directories_.size(); ++d) scan_directory(d);
    return find(name);
}

std::optional<ActivatableService> ActivatableServices::find(std::string_view name) const {
    const auto it = by_name_.find(name);
    if (it == by_name_.end()) return std::nullopt;
    return entry_at(it->second.directory, it->second.file_name);
}

std::vector<std::string> ActivatableServices::names() const {
    std::vector<std::string> names;
    names.reserve(by_name_.size());
    for (const auto& entry : by_name_) names.push_back(entry.first);
    return names;  // a std::map is already sorted
}

std::vector<ServiceDirectoryNotice> ActivatableServices::take_notices() { return std::exchange(notices_, {}); }

std::string ActivatableServices::path_of(std::size_t directory, std::string_view file_name) const {
    return join_path(directories_[directory].path, file_name);
}

ActivatableServices::ReadResult ActivatableServices::read_file(const std::string& path) const {
    // O_NONBLOCK: a FIFO called x.service must not hang the bus (dbus-daemon would block on it).
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return {std::nullopt, "Failed to open \"" + path + "\": " + errno_text(errno)};
    struct stat info {};
    if (::fstat(fd.get(), &info) != 0) return {std::nullopt, "Failed to stat \"" + path + "\": " + errno_text(errno)};
    if (!S_ISREG(info.st_mode)) return {std::nullopt, "\"" + path + "\" is not a regular file"};
    if (static_cast<std::size_t>(info.st_size) > kMaxServiceFileSize)
        return {std::nullopt, "Desktop file size (" + std::to_string(info.st_size) + " bytes) is too large"};
    std::string text;
    char buffer[8192];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return {std::nullopt, "Failed to read \"" + path + "\": " + errno_text(errno)};
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        // It grew after fstat(); what was too large then is too large now.
        if (text.size() > kMaxServiceFileSize)
            return {std::nullopt, "Desktop file size (" + std::to_string(text.size()) + " bytes) is too large"};
    }
    auto parsed = parse_service_file(text);
    if (!parsed) return {std::nullopt, parsed.error().to_string()};
    return {LoadedFile{std::move(*parsed), info.st_mtim}, {}};
}

void ActivatableServices::scan_directory(std::size_t directory) {
    const std::string& path = directories_[directory].path;
    const std::unique_ptr<DIR, DirCloser> dir(::opendir(path.c_str()));
    if (!dir) {
        // Most standard directories do not exist on a given system: not worth a notice on every rescan.
        if (errno != ENOENT)
            notice(ServiceDirectoryNotice::Level::Verbose,
                   "Failed to open directory " + path + ": " + errno_text(errno));
        return;
    }
    std::vector<std::string> file_names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir.get())) {
        const std::string_view name = entry->d_name;
        if (name.ends_with(kServiceSuffix)) file_names.emplace_back(name);
    }
    if (errno != 0)
        notice(ServiceDirectoryNotice::Level::Verbose,
               "Failed to read directory \"" + path + "\": " + errno_text(errno));
    std::sort(file_names.begin(), file_names.end());

    for (const auto& file_name : file_names) {
        if (files_[directory].contains(file_name)) {
            refresh_file(directory, file_name);
            continue;
        }
        const std::string file_path = path_of(directory, file_name);
        auto read = read_file(file_path);
        if (!read.file) {
            notice(ServiceDirectoryNotice::Level::Verbose, "Could not load " + file_path + ": " + read.problem);
            continue;
        }
        add_new_file(directory, file_name, std::move(*read.file));
    }
}

void ActivatableServices::add_new_file(std::size_t directory, const std::string& file_name, LoadedFile file) {
    const std::string file_path = path_of(directory, file_name);
    const std::string& name = file.service.name;
    const std::string expected_file_name = name + std::string(kServiceSuffix);
    if (file_name != expected_file_name) {
        const std::string misnamed =
            "Service file \"" + file_path + "\" should have been named \"" + expected_file_name + "\"";
        if (directories_[directory].strict_naming) {
            notice(ServiceDirectoryNotice::Level::Warning, misnamed + ": not loading it");
            return;
        }
        if (uses_servicehelper_)
            notice(ServiceDirectoryNotice::Level::Warning, misnamed + " and will not work with system bus activation");
        else
            notice(ServiceDirectoryNotice::Level::Verbose,
                   "Name of \"" + file_path + "\" should canonically be \"" + expected_file_name + "\"");
    }
    if (by_name_.contains(name)) {
        notice(ServiceDirectoryNotice::Level::Verbose, "Could not add " + file_path +
                                                           " to activation entry list: Service " + name +
                                                           " already exists in activation entry list");
        return;
    }
    by_name_.emplace(name, FileLocation{directory, file_name});
    files_[directory].emplace(file_name, std::move(file));
}

bool ActivatableServices::refresh_file(std::size_t directory, const std::string& file_name) {
    auto& files = files_[directory];
    const auto it = files.find(file_name);
    if (it == files.end()) return false;
    const std::string file_path = path_of(directory, file_name);
    struct stat info {};
    if (::stat(file_path.c_str(), &info) != 0) {
        if (indexed_at(it->second.service.name, directory, file_name)) by_name_.erase(it->second.service.name);
        files.erase(it);
        return false;
    }
    if (!newer(info.st_mtim, it->second.mtime)) return true;
    auto read = read_file(file_path);
    if (!read.file) {
        notice(ServiceDirectoryNotice::Level::Verbose, "Could not load " + file_path + ": " + read.problem);
        return true;
    }
    replace_contents(directory, file_name, std::move(*read.file));
    return true;
}

void ActivatableServices::replace_contents(std::size_t directory, const std::string& file_name, LoadedFile file) {
    LoadedFile& current = files_[directory].at(file_name);
    if (indexed_at(current.service.name, directory, file_name)) by_name_.erase(current.service.name);
    const std::string& name = file.service.name;
    if (by_name_.contains(name)) {
        // Not re-keyed, and the mtime stays old so that the next rescan tries again.
        notice(ServiceDirectoryNotice::Level::Verbose, "The new service name \"" + name + "\" of service file \"" +
                                                           path_of(directory, file_name) +
                                                           "\" is already in cache, ignoring");
        return;
    }
    by_name_.emplace(name, FileLocation{directory, file_name});
    current = std::move(file);
}

bool ActivatableServices::indexed_at(const std::string& name, std::size_t directory, std::string_view file_name) const {
    const auto it = by_name_.find(name);
    return it != by_name_.end() && it->second.directory == directory && it->second.file_name == file_name;
}

std::optional<ActivatableService> ActivatableServices::entry_at(std::size_t directory,
                                                                const std::string& file_name) const {
    const auto it = files_[directory].find(file_name);
    if (it == files_[directory].end()) return std::nullopt;
    return ActivatableService{it->second.service, path_of(directory, file_name)};
}

void ActivatableServices::notice(ServiceDirectoryNotice::Level level, std::string message) {
    if (notices_.size() < kMaxPendingNotices) notices_.push_back({level, std::move(message)});
}

}  // namespace afbus::daemon
