// Behaviours marked "dbus-daemon:" were checked against dbus-daemon 1.14.10 (strace of the directories
// it opens, ListActivatableNames and StartServiceByName around file changes).
#include "service_directory.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace afbus::daemon {
namespace {

using Level = ServiceDirectoryNotice::Level;

class TempDir {
public:
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "afbus-servicedir-XXXXXX").string();
        if (::mkdtemp(pattern.data())) path_ = pattern;
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    ~TempDir() {
        std::error_code ignored;
        if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
    }
    const std::string& path() const { return path_; }
    std::string operator/(const std::string& name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

// Files get explicit mtimes: dbus-daemon re-reads a file only when its mtime moved forward.
const time_t kBaseTime = std::time(nullptr) - 1000;

void write_file(const std::string& path, const std::string& contents, time_t mtime = kBaseTime) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
    const timespec times[2] = {{mtime, 0}, {mtime, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
}

std::string service_text(const std::string& name, const std::string& exec = "/bin/true") {
    return "[D-BUS Service]\nName=" + name + "\nExec=" + exec + "\n";
}

void write_service(const TempDir& dir, const std::string& file_name, const std::string& name,
                   const std::string& exec = "/bin/true", time_t mtime = kBaseTime) {
    write_file(dir / file_name, service_text(name, exec), mtime);
}

ActivatableServices services_in(std::vector<const TempDir*> dirs, bool uses_servicehelper = false) {
    std::vector<SearchDirectory> search;
    for (const auto* dir : dirs) search.push_back({dir->path()});
    return ActivatableServices(std::move(search), uses_servicehelper);
}

std::vector<std::string> messages(const std::vector<ServiceDirectoryNotice>& notices, Level level) {
    std::vector<std::string> out;
    for (const auto& n : notices)
        if (n.level == level) out.push_back(n.message);
    return out;
}

TEST(ActivatableServices, ReadsOnlyFilesEndingInDotService) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A");
    write_service(dir, ".service", "org.example.DotService");  // dbus-daemon: loaded
    write_service(dir, "org.example.Txt.txt", "org.example.Txt");
    write_service(dir, "org.example.Upper.SERVICE", "org.example.Upper");
    ASSERT_EQ(::mkdir((dir / "subdir.service").c_str(), 0700), 0);
    auto services = services_in({&dir});
    EXPECT_TRUE(services.reload());
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.A", "org.example.DotService"}));
    auto a = services.find("org.example.A");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->path, dir / "org.example.A.service");
    EXPECT_EQ(a->service.exec, "/bin/true");
    const auto verbose = messages(services.take_notices(), Level::Verbose);
    ASSERT_EQ(verbose.size(), 2u);
    EXPECT_EQ(verbose[0], "Name of \"" + (dir / ".service") +
                              "\" should canonically be \"org.example.DotService.service\"");
    EXPECT_EQ(verbose[1], "Could not load " + (dir / "subdir.service") + ": \"" + (dir / "subdir.service") +
                              "\" is not a regular file");
    EXPECT_TRUE(services.take_notices().empty());
}

TEST(ActivatableServices, NamesAreSorted) {
    TempDir dir;
    for (const char* name : {"org.example.C", "com.example.B", "org.example.A", "net.example.Z"})
        write_service(dir, std::string(name) + ".service", name);
    auto services = services_in({&dir});
    services.reload();
    EXPECT_EQ(services.names(),
              (std::vector<std::string>{"com.example.B", "net.example.Z", "org.example.A", "org.example.C"}));
}

TEST(ActivatableServices, EarlierDirectoryWins) {
    TempDir first, second;
    write_service(first, "a.service", "org.example.A", "/bin/first");  // dbus-daemon: this one
    write_service(second, "org.example.A.service", "org.example.A", "/bin/second");
    write_service(second, "org.example.B.service", "org.example.B");
    auto services = services_in({&first, &second});
    services.reload();
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.A", "org.example.B"}));
    auto a = services.find_or_rescan("org.example.A");
    ASSERT_TRUE(a);
    EXPECT_EQ(a->service.exec, "/bin/first");
    EXPECT_EQ(a->path, first / "a.service");
    const auto verbose = messages(services.take_notices(), Level::Verbose);
    EXPECT_NE(std::find(verbose.begin(), verbose.end(),
                        "Could not add " + (second / "org.example.A.service") +
                            " to activation entry list: Service org.example.A already exists in activation entry list"),
              verbose.end());
}

TEST(ActivatableServices, WithinADirectoryTheFirstFileNameWins) {
    TempDir dir;
    write_service(dir, "b.service", "org.example.A", "/bin/b");
    write_service(dir, "a.service", "org.example.A", "/bin/a");
    auto services = services_in({&dir});
    services.reload();
    ASSERT_TRUE(services.find("org.example.A"));
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/a");
}

TEST(ActivatableServices, InvalidFilesAreSkippedQuietly) {
    TempDir dir;
    write_service(dir, "org.example.Good.service", "org.example.Good");
    write_file(dir / "bad.service", "[D-BUS Service]\n  Name=org.example.Bad\n");
    write_file(dir / "noexec.service", "[D-BUS Service]\nName=org.example.NoExec\n");
    write_file(dir / "big.service", service_text("org.example.Big") + "#" + std::string(kMaxServiceFileSize, 'x'));
    ASSERT_EQ(::symlink("nowhere", (dir / "dangling.service").c_str()), 0);
    auto services = services_in({&dir});
    services.reload();
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.Good"}));
    const auto notices = services.take_notices();
    EXPECT_TRUE(messages(notices, Level::Warning).empty());
    const auto verbose = messages(notices, Level::Verbose);
    ASSERT_EQ(verbose.size(), 4u);
    EXPECT_EQ(verbose[0], "Could not load " + (dir / "bad.service") + ": line 2: Empty key name");
    EXPECT_EQ(verbose[1], "Could not load " + (dir / "big.service") + ": Desktop file size (" +
                              std::to_string(service_text("org.example.Big").size() + 1 + kMaxServiceFileSize) +
                              " bytes) is too large");
    EXPECT_NE(verbose[2].find("dangling.service"), std::string::npos);
    EXPECT_EQ(verbose[3], "Could not load " + (dir / "noexec.service") + ": No \"Exec\" key in .service file");
}

TEST(ActivatableServices, MissingDirectoriesAreFine) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A");
    ActivatableServices services({{dir / "missing"}, {dir.path()}}, false);
    services.reload();
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.A"}));
    EXPECT_FALSE(services.find_or_rescan("org.example.Nothing"));
    EXPECT_TRUE(services.take_notices().empty());
}

TEST(ActivatableServices, PendingNoticesAreBounded) {
    TempDir dir;
    write_file(dir / "bad.service", "garbage\n");
    auto services = services_in({&dir});
    services.reload();
    // Each miss rescans and complains about the same file again.
    for (std::size_t i = 0; i < ActivatableServices::kMaxPendingNotices + 10; ++i)
        EXPECT_FALSE(services.find_or_rescan("org.example.Nothing"));
    EXPECT_EQ(services.take_notices().size(), ActivatableServices::kMaxPendingNotices);
    EXPECT_FALSE(services.find_or_rescan("org.example.Nothing"));
    EXPECT_EQ(services.take_notices().size(), 1u);
}

TEST(ActivatableServices, StrictDirectoryRefusesMisnamedFiles) {
    TempDir dir;
    write_service(dir, "misnamed.service", "org.example.Transient");
    write_service(dir, "org.example.TransientOk.service", "org.example.TransientOk");
    ActivatableServices services({{dir.path(), true, false}}, false);
    services.reload();
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.TransientOk"}));
    // dbus-daemon's wording.
    EXPECT_EQ(messages(services.take_notices(), Level::Warning),
              (std::vector<std::string>{"Service file \"" + (dir / "misnamed.service") +
                                        "\" should have been named \"org.example.Transient.service\": not loading it"}));
}

TEST(ActivatableServices, OtherDirectoriesLoadMisnamedFiles) {
    TempDir dir;
    write_service(dir, "misnamed-sys.service", "org.example.Sys");
    auto with_helper = services_in({&dir}, true);
    with_helper.reload();
    EXPECT_EQ(with_helper.names(), (std::vector<std::string>{"org.example.Sys"}));
    EXPECT_EQ(messages(with_helper.take_notices(), Level::Warning),
              (std::vector<std::string>{"Service file \"" + (dir / "misnamed-sys.service") +
                                        "\" should have been named \"org.example.Sys.service\" and will not work "
                                        "with system bus activation"}));

    auto without_helper = services_in({&dir}, false);
    without_helper.reload();
    EXPECT_EQ(without_helper.names(), (std::vector<std::string>{"org.example.Sys"}));
    const auto notices = without_helper.take_notices();
    EXPECT_TRUE(messages(notices, Level::Warning).empty());
    EXPECT_EQ(messages(notices, Level::Verbose).size(), 1u);
}

TEST(ActivatableServices, LookupMissRescansAndFindsFilesAddedLater) {
    TempDir dir;
    auto services = services_in({&dir});
    EXPECT_FALSE(services.reload());
    write_service(dir, "org.example.Late.service", "org.example.Late");
    write_service(dir, "org.example.Late2.service", "org.example.Late2");
    // dbus-daemon: not listed until a lookup misses.
    EXPECT_TRUE(services.names().empty());
    EXPECT_FALSE(services.find("org.example.Late"));
    // Any miss rescans everything.
    EXPECT_FALSE(services.find_or_rescan("org.example.Other"));
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.Late", "org.example.Late2"}));
    auto late = services.find_or_rescan("org.example.Late");
    ASSERT_TRUE(late);
    EXPECT_EQ(late->path, dir / "org.example.Late.service");
}

TEST(ActivatableServices, DeletedFileIsForgottenWhenLookedUp) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A");
    write_service(dir, "org.example.B.service", "org.example.B");
    auto services = services_in({&dir});
    services.reload();
    ASSERT_EQ(::unlink((dir / "org.example.A.service").c_str()), 0);
    // dbus-daemon: a rescan does not notice; a lookup of the name does, and does not rescan.
    EXPECT_FALSE(services.find_or_rescan("org.example.Other"));
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.A", "org.example.B"}));
    write_service(dir, "a-again.service", "org.example.A");
    EXPECT_FALSE(services.find_or_rescan("org.example.A"));
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.B"}));
    // The next miss rescans and finds the other file.
    EXPECT_TRUE(services.find_or_rescan("org.example.A"));
}

TEST(ActivatableServices, ModifiedFileIsReadAgainWhenItsMtimeMovesForward) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/old");
    auto services = services_in({&dir});
    services.reload();
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/same-mtime");
    EXPECT_EQ(services.find_or_rescan("org.example.A")->service.exec, "/bin/old");
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/new", kBaseTime + 10);
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/old");
    EXPECT_EQ(services.find_or_rescan("org.example.A")->service.exec, "/bin/new");
    // Refused new contents keep the old ones.
    write_file(dir / "org.example.A.service", "garbage\n", kBaseTime + 20);
    EXPECT_EQ(services.find_or_rescan("org.example.A")->service.exec, "/bin/new");
}

TEST(ActivatableServices, RescanPicksUpModifiedFilesToo) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/old");
    auto services = services_in({&dir});
    services.reload();
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/new", kBaseTime + 10);
    EXPECT_FALSE(services.find_or_rescan("org.example.Other"));
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/new");
}

TEST(ActivatableServices, RenamedServiceAnswersTheOldNameOnce) {
    TempDir dir;
    write_service(dir, "org.example.Late.service", "org.example.Late");
    auto services = services_in({&dir});
    services.reload();
    write_service(dir, "org.example.Late.service", "org.example.Renamed", "/bin/renamed", kBaseTime + 10);
    // dbus-daemon: StartServiceByName(old) spawns the renamed entry's Exec, then the old name is unknown.
    auto entry = services.find_or_rescan("org.example.Late");
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->service.name, "org.example.Renamed");
    EXPECT_EQ(entry->service.exec, "/bin/renamed");
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.Renamed"}));
    EXPECT_FALSE(services.find_or_rescan("org.example.Late"));
    EXPECT_TRUE(services.find_or_rescan("org.example.Renamed"));
}

TEST(ActivatableServices, RenameOntoATakenNameDropsTheEntry) {
    TempDir dir;
    write_service(dir, "a.service", "org.example.A", "/bin/a");
    write_service(dir, "b.service", "org.example.B", "/bin/b");
    auto services = services_in({&dir});
    services.reload();
    write_service(dir, "b.service", "org.example.A", "/bin/b2", kBaseTime + 10);
    auto entry = services.find_or_rescan("org.example.B");
    ASSERT_TRUE(entry);
    EXPECT_EQ(entry->service.name, "org.example.B");
    EXPECT_EQ(entry->service.exec, "/bin/b");
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.A"}));
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/a");
    EXPECT_FALSE(services.find_or_rescan("org.example.B"));
    // Once the other file lets the name go, the next rescan re-keys it.
    ASSERT_EQ(::unlink((dir / "a.service").c_str()), 0);
    EXPECT_FALSE(services.find_or_rescan("org.example.A"));
    EXPECT_FALSE(services.find_or_rescan("org.example.Whatever"));
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/b2");
}

TEST(ActivatableServices, ReloadReportsWhetherTheNamesChanged) {
    TempDir dir;
    write_service(dir, "org.example.A.service", "org.example.A");
    auto services = services_in({&dir});
    EXPECT_TRUE(services.reload());
    EXPECT_FALSE(services.reload());
    write_service(dir, "org.example.A.service", "org.example.A", "/bin/other", kBaseTime + 10);
    EXPECT_FALSE(services.reload());
    EXPECT_EQ(services.find("org.example.A")->service.exec, "/bin/other");
    write_service(dir, "org.example.B.service", "org.example.B");
    EXPECT_TRUE(services.reload());
    ASSERT_EQ(::unlink((dir / "org.example.A.service").c_str()), 0);
    EXPECT_TRUE(services.reload());
    EXPECT_EQ(services.names(), (std::vector<std::string>{"org.example.B"}));
}

TEST(StandardServiceDirs, SessionDefaults) {
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    EXPECT_EQ(standard_session_service_dirs(environment),
              (std::vector<std::string>{"/home/user/.local/share/dbus-1/services", "/usr/local/share/dbus-1/services",
                                        "/usr/share/dbus-1/services", "/usr/share/dbus-1/services"}));
    environment.home_directory = "/";
    EXPECT_EQ(standard_session_service_dirs(environment).front(), "/.local/share/dbus-1/services");
}

TEST(StandardServiceDirs, SessionFromXdgVariables) {
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    environment.xdg_data_home = "/data/home";
    environment.xdg_data_dirs = "/a:/b";
    EXPECT_EQ(standard_session_service_dirs(environment),
              (std::vector<std::string>{"/data/home/dbus-1/services", "/a/dbus-1/services", "/b/dbus-1/services",
                                        "/usr/share/dbus-1/services"}));
}

TEST(StandardServiceDirs, SessionEntriesAreSplitTrimmedAndJoinedAsDbusDaemonDoes) {
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    // dbus-daemon: empty XDG_DATA_HOME adds nothing; empty and blank entries go; one trailing slash
    // is absorbed and a second is kept; relative entries stay relative.
    environment.xdg_data_home = "";
    environment.xdg_data_dirs = "rel/dir::/dd1//: \t:/dd2/: /padded :/usr/share/";
    EXPECT_EQ(standard_session_service_dirs(environment),
              (std::vector<std::string>{"rel/dir/dbus-1/services", "/dd1//dbus-1/services", "/dd2/dbus-1/services",
                                        "/padded/dbus-1/services", "/usr/share/dbus-1/services",
                                        "/usr/share/dbus-1/services"}));
    environment.xdg_data_home = "/x:/y";
    environment.xdg_data_dirs = "";
    EXPECT_EQ(standard_session_service_dirs(environment),
              (std::vector<std::string>{"/x/dbus-1/services", "/y/dbus-1/services", "/usr/share/dbus-1/services"}));
}

TEST(StandardServiceDirs, System) {
    EXPECT_EQ(standard_system_service_dirs(),
              (std::vector<std::string>{"/usr/local/share/dbus-1/system-services", "/usr/share/dbus-1/system-services",
                                        "/usr/share/dbus-1/system-services", "/lib/dbus-1/system-services"}));
}

TEST(ResolveServiceDirs, ExpandsInOrderDroppingDuplicates) {
    TempDir runtime;
    ASSERT_EQ(::chmod(runtime.path().c_str(), 0700), 0);
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    environment.xdg_runtime_dir = runtime.path();
    environment.xdg_data_dirs = "/usr/share";
    const std::string transient = runtime.path() + "/dbus-1/services";
    auto resolved = resolve_service_dirs({{"/etc/extra"},
                                          {"", ServiceDir::Kind::StandardSession},
                                          {"", ServiceDir::Kind::StandardSystem},
                                          {"/etc/extra"}},
                                         environment);
    EXPECT_TRUE(resolved.warnings.empty());
    EXPECT_EQ(resolved.directories,
              (std::vector<SearchDirectory>{{"/etc/extra", false, true},
                                            {transient, true, false},
                                            {"/home/user/.local/share/dbus-1/services", false, true},
                                            {"/usr/share/dbus-1/services", false, true},
                                            {"/usr/local/share/dbus-1/system-services", false, true},
                                            {"/usr/share/dbus-1/system-services", false, true},
                                            {"/lib/dbus-1/system-services", false, true}}));
    // dbus-daemon: created, mode 0700.
    struct stat info {};
    ASSERT_EQ(::stat(transient.c_str(), &info), 0);
    EXPECT_TRUE(S_ISDIR(info.st_mode));
    EXPECT_EQ(info.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat((runtime.path() + "/dbus-1").c_str(), &info), 0);
    EXPECT_EQ(info.st_mode & 07777, 0700u);
}

TEST(ResolveServiceDirs, ADirectoryMentionedTwiceIsStrictOrUnwatchedOnlyIfAlwaysSo) {
    TempDir runtime;
    ASSERT_EQ(::chmod(runtime.path().c_str(), 0700), 0);
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    environment.xdg_runtime_dir = runtime.path();
    const std::string transient = runtime.path() + "/dbus-1/services";
    auto resolved = resolve_service_dirs({{"", ServiceDir::Kind::StandardSession}, {transient}}, environment);
    ASSERT_FALSE(resolved.directories.empty());
    EXPECT_EQ(resolved.directories.front(), (SearchDirectory{transient, false, true}));
}

TEST(ResolveServiceDirs, UnusableRuntimeDirectoryIsAWarning) {
    ServiceDirEnvironment environment;
    environment.home_directory = "/home/user";
    auto unset = resolve_service_dirs({{"", ServiceDir::Kind::StandardSession}}, environment);
    EXPECT_TRUE(unset.warnings.empty());
    EXPECT_EQ(unset.directories.front().path, "/home/user/.local/share/dbus-1/services");

    TempDir runtime;
    ASSERT_EQ(::chmod(runtime.path().c_str(), 0770), 0);
    environment.xdg_runtime_dir = runtime.path();
    auto group_writable = resolve_service_dirs({{"", ServiceDir::Kind::StandardSession}}, environment);
    // dbus-daemon's wording.
    EXPECT_EQ(group_writable.warnings,
              (std::vector<std::string>{"Unable to set up transient service directory: XDG_RUNTIME_DIR \"" +
                                        runtime.path() + "\" can be written by others (mode 040770)"}));
    EXPECT_EQ(group_writable.directories.front().path, "/home/user/.local/share/dbus-1/services");

    environment.xdg_runtime_dir = runtime / "missing";
    auto missing = resolve_service_dirs({{"", ServiceDir::Kind::StandardSession}}, environment);
    EXPECT_EQ(missing.warnings,
              (std::vector<std::string>{"Unable to set up transient service directory: XDG_RUNTIME_DIR \"" +
                                        (runtime / "missing") + "\" not available: No such file or directory"}));
}

TEST(PrepareTransientServiceDir, RefusesWhatIsNotADirectory) {
    TempDir runtime;
    ASSERT_EQ(::chmod(runtime.path().c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((runtime / "dbus-1").c_str(), 0700), 0);
    write_file(runtime / "dbus-1/services", "");
    auto prepared = prepare_transient_service_dir(runtime.path());
    ASSERT_FALSE(prepared);
    EXPECT_EQ(prepared.error(), "XDG_RUNTIME_DIR subdirectory \"" + (runtime / "dbus-1/services") + "\" is not a directory");
    ASSERT_EQ(::unlink((runtime / "dbus-1/services").c_str()), 0);
    EXPECT_EQ(prepare_transient_service_dir(runtime.path()), runtime / "dbus-1/services");
}

TEST(CurrentServiceDirEnvironment, ReadsTheProcess) {
    ASSERT_EQ(::setenv("XDG_DATA_DIRS", "/from/test", 1), 0);
    ASSERT_EQ(::unsetenv("XDG_DATA_HOME"), 0);
    const auto environment = current_service_dir_environment();
    EXPECT_EQ(environment.xdg_data_dirs, "/from/test");
    EXPECT_EQ(environment.xdg_data_home, std::nullopt);
    EXPECT_FALSE(environment.home_directory.empty());
}

}  // namespace
}  // namespace afbus::daemon
