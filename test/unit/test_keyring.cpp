// The DBUS_COOKIE_SHA1 keyring (afbus/keyring.hpp): parsing, cookie creation, reuse, rotation and
// expiry, the private-directory rule and the lock file. Everything happens in a temporary directory
// with a fake clock; the real ~/.dbus-keyrings is never touched.
#include "afbus/keyring.hpp"
#include "afbus/fd.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace afbus {
namespace {

constexpr std::int64_t kStart = 1'800'000'000;
constexpr std::string_view kContext = "org_freedesktop_general";

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

class KeyringFiles : public ::testing::Test {
protected:
    void SetUp() override {
        char pattern[] = "/tmp/afbus-keyring-test-XXXXXX";
        ASSERT_NE(::mkdtemp(pattern), nullptr);
        base_ = pattern;
        directory_ = base_ + "/.dbus-keyrings";
        file_ = directory_ + "/" + std::string(kContext);
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(base_, ignored);
    }

    KeyringPolicy policy() {
        KeyringPolicy p;
        p.now = [this] { return now_; };
        return p;
    }
    Keyring keyring() { return Keyring(directory_, policy()); }

    void make_directory(mode_t mode = 0700) {
        ASSERT_EQ(::mkdir(directory_.c_str(), 0700), 0);
        ASSERT_EQ(::chmod(directory_.c_str(), mode), 0);
    }
    void write_file(const std::string& text) { std::ofstream(file_) << text; }
    [[nodiscard]] std::vector<std::string> directory_entries() const {
        std::vector<std::string> names;
        for (const auto& entry : std::filesystem::directory_iterator(directory_))
            names.push_back(entry.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }

    std::string base_;
    std::string directory_;
    std::string file_;
    std::int64_t now_ = kStart;
};

TEST(KeyringParse, KeepsWellFormedFreshCookiesInFileOrder) {
    KeyringPolicy policy;
    const std::string text =
        "1 1000 00ff\n"
        "2\t990   ABCDEF\r\n"        // tabs, several blanks, CRLF; upper case is re-encoded in lower case
        "3 1000\n"                    // two fields
        "4 1000 00ff extra\n"         // four fields
        "-5 1000 00ff\n"              // negative id
        "2147483648 1000 00ff\n"      // id beyond 31 bits
        "2147483647 1000 0a\n"        // the largest id
        "6 1000 0g\n"                 // not hex
        "7 1000 abc\n"                // odd number of digits
        "1 1000 1111\n"               // repeated id: the first one counts
        "8 -3 00ff\n"                 // negative time
        "9 579 00ff\n"                // 421 s old: expired (7 minutes)
        "10 580 00ff\n"               // exactly 7 minutes old: still there
        "11 1301 00ff\n"              // more than 5 minutes in the future
        "12 1300 00ff\n"              // exactly 5 minutes in the future
        "\n"
        "garbage\n"
        "13 1000 \xc3\xa9\n"          // non-ASCII
        "14 1000 0102";               // no final newline
    const auto cookies = parse_keyring(text, 1000, policy);
    const std::vector<KeyringCookie> expected = {
        {1, 1000, "00ff"}, {2, 990, "abcdef"}, {2147483647, 1000, "0a"},
        {10, 580, "00ff"}, {12, 1300, "00ff"}, {14, 1000, "0102"},
    };
    EXPECT_EQ(cookies, expected);
}

TEST(KeyringParse, StopsAtMaxCookies) {
    KeyringPolicy policy;
    policy.max_cookies = 3;
    std::string text;
    for (int i = 0; i < 10; ++i) text += std::to_string(i) + " 1000 00\n";
    const auto cookies = parse_keyring(text, 1000, policy);
    ASSERT_EQ(cookies.size(), 3u);
    EXPECT_EQ(cookies.back().id, 2u);
}

TEST(KeyringParse, FormatRoundTrip) {
    const std::vector<KeyringCookie> cookies = {{5, kStart, "00112233"}, {2147483647, kStart - 10, "ff"}};
    const std::string text = format_keyring(cookies);
    EXPECT_EQ(text, "5 1800000000 00112233\n2147483647 1799999990 ff\n");
    EXPECT_EQ(parse_keyring(text, kStart, KeyringPolicy{}), cookies);
}

TEST(KeyringParse, CookieContexts) {
    for (std::string_view good : {"org_freedesktop_general", "foo", "a-b", "x\x7e"})
        EXPECT_TRUE(is_valid_cookie_context(good)) << good;
    for (std::string_view bad : {"", ".foo", "bar.foo", "bar/foo", "bar\\foo", "foo bar", "foo\tbar", "foo\n",
                                 "foo\r", "foo\x80", "foo\x7f", "..", "a.lock"})
        EXPECT_FALSE(is_valid_cookie_context(bad)) << bad;
    EXPECT_FALSE(is_valid_cookie_context(std::string_view("a\0b", 3)));
}

TEST_F(KeyringFiles, CreatesThePrivateDirectoryAndAFirstCookie) {
    const mode_t old_umask = ::umask(0);  // the modes must not depend on the umask
    auto cookie = keyring().current(kContext);
    ::umask(old_umask);
    ASSERT_TRUE(cookie) << cookie.error();
    EXPECT_EQ(cookie->created, kStart);
    EXPECT_LE(cookie->id, 0x7fffffffu);
    EXPECT_EQ(cookie->secret.size(), 48u);  // 24 random bytes, as dbus-daemon
    EXPECT_EQ(cookie->secret.find_first_not_of("0123456789abcdef"), std::string::npos);

    struct stat status {};
    ASSERT_EQ(::stat(directory_.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0700u);
    ASSERT_EQ(::stat(file_.c_str(), &status), 0);
    EXPECT_EQ(status.st_mode & 07777, 0600u);
    EXPECT_EQ(read_text(file_), format_keyring({*cookie}));
    // No lock or temporary file is left behind.
    EXPECT_EQ(directory_entries(), std::vector<std::string>{std::string(kContext)});

    // A client finds the same cookie by id.
    auto found = keyring().find(kContext, cookie->id);
    ASSERT_TRUE(found) << found.error();
    EXPECT_EQ(*found, *cookie);
    EXPECT_EQ(keyring().find(kContext, cookie->id ^ 1).error(), "cookie not found in keyring");

    // Two cookie ids and secrets are random.
    now_ += 301;
    auto second = keyring().current(kContext);
    ASSERT_TRUE(second);
    EXPECT_NE(second->id, cookie->id);
    EXPECT_NE(second->secret, cookie->secret);
}

TEST_F(KeyringFiles, ReusesACookieYoungerThanFiveMinutes) {
    auto first = keyring().current(kContext);
    ASSERT_TRUE(first) << first.error();
    const std::string before = read_text(file_);
    now_ += 299;
    auto again = keyring().current(kContext);
    ASSERT_TRUE(again) << again.error();
    EXPECT_EQ(*again, *first);
    EXPECT_EQ(read_text(file_), before);
}

TEST_F(KeyringFiles, RotatesOldCookiesAndPrunesExpiredOnes) {
    make_directory();
    // An expired cookie, one in the far future, one 6 minutes old (still valid, too old to hand out)
    // and a malformed line.
    write_file("1 " + std::to_string(kStart - 1000) + " 0011\n" +  //
               "2 " + std::to_string(kStart + 3600) + " 0022\n" +  //
               "3 " + std::to_string(kStart - 360) + " 0033\n" +   //
               "this is not a cookie\n");
    auto fresh = keyring().current(kContext);
    ASSERT_TRUE(fresh) << fresh.error();
    EXPECT_EQ(fresh->created, kStart);
    EXPECT_NE(fresh->id, 3u);
    EXPECT_EQ(read_text(file_), format_keyring({{3, kStart - 360, "0033"}, *fresh}));

    // 2 minutes later cookie 3 has expired (8 minutes old): it goes when the next cookie is added.
    now_ += 120;
    auto reused = keyring().current(kContext);
    ASSERT_TRUE(reused);
    EXPECT_EQ(*reused, *fresh);
    EXPECT_FALSE(keyring().find(kContext, 3)) << "an expired cookie must not be found";
    now_ += 200;
    auto rotated = keyring().current(kContext);
    ASSERT_TRUE(rotated);
    EXPECT_NE(rotated->id, fresh->id);
    EXPECT_EQ(read_text(file_), format_keyring({*fresh, *rotated}));
    // The cookie handed out 5m20s ago is still good for a client that is slow to answer.
    EXPECT_TRUE(keyring().find(kContext, fresh->id));
}

TEST_F(KeyringFiles, KeepsAtMostMaxCookies) {
    make_directory();
    std::string text;
    for (int i = 0; i < 10; ++i) text += std::to_string(i) + " " + std::to_string(kStart - 400 + i) + " 00\n";
    write_file(text);
    KeyringPolicy p = policy();
    p.max_cookies = 4;
    auto cookie = Keyring(directory_, p).current(kContext);
    ASSERT_TRUE(cookie) << cookie.error();
    // parse_keyring keeps the first four; the oldest of them makes room for the new one.
    EXPECT_EQ(read_text(file_), "1 " + std::to_string(kStart - 399) + " 00\n2 " + std::to_string(kStart - 398) +
                                    " 00\n3 " + std::to_string(kStart - 397) + " 00\n" +
                                    format_keyring({*cookie}));
}

TEST_F(KeyringFiles, UnreadableOrGarbageFileIsReplaced) {
    make_directory();
    write_file(std::string(100 * 1024, 'x'));  // too large to be a keyring
    auto cookie = keyring().current(kContext);
    ASSERT_TRUE(cookie) << cookie.error();
    EXPECT_EQ(read_text(file_), format_keyring({*cookie}));
}

TEST_F(KeyringFiles, RefusesADirectoryOthersCanUse) {
    for (const mode_t mode : {0750, 0705, 0770, 0701, 0702, 0777}) {
        make_directory(mode);
        write_file("1 " + std::to_string(kStart) + " 0011\n");
        auto cookie = keyring().current(kContext);
        ASSERT_FALSE(cookie) << std::oct << mode;
        EXPECT_EQ(cookie.error(), "keyring directory is not private to the user");
        EXPECT_EQ(keyring().find(kContext, 1).error(), "keyring directory is not private to the user");
        EXPECT_EQ(read_text(file_), "1 " + std::to_string(kStart) + " 0011\n") << "the file must not be rewritten";
        std::filesystem::remove_all(directory_);
    }
}

TEST_F(KeyringFiles, RefusesSomethingThatIsNotADirectory) {
    std::ofstream(directory_) << "not a directory";
    EXPECT_FALSE(keyring().current(kContext));
    EXPECT_FALSE(keyring().find(kContext, 1));
    EXPECT_FALSE(Keyring("", policy()).current(kContext));
    EXPECT_EQ(Keyring("", policy()).find(kContext, 1).error(), "no keyring directory configured");
}

TEST_F(KeyringFiles, ClientNeverCreatesAnything) {
    auto missing = keyring().find(kContext, 1);
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().find("No such file or directory"), std::string::npos) << missing.error();
    EXPECT_FALSE(std::filesystem::exists(directory_));
    make_directory();
    EXPECT_NE(keyring().find(kContext, 1).error().find("No such file or directory"), std::string::npos);
    EXPECT_TRUE(directory_entries().empty());
}

TEST_F(KeyringFiles, InvalidContextIsRefused) {
    make_directory();
    EXPECT_EQ(keyring().current("../escape").error(), "invalid cookie context");
    EXPECT_EQ(keyring().find("a.lock", 1).error(), "invalid cookie context");
    EXPECT_TRUE(directory_entries().empty());
}

// Makes the calling thread's sleeps wait for the test: a seccomp filter on this thread alone turns
// nanosleep and clock_nanosleep into notifications on the returned listener (SECCOMP_RET_USER_NOTIF).
// Invalid (errno set) if the kernel refuses.
Fd listen_to_own_sleeps() {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return Fd();  // this thread only
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clock_nanosleep, 2, 0),
#ifdef __NR_nanosleep
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_nanosleep, 1, 0),
#else
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clock_nanosleep, 1, 0),
#endif
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
    };
    sock_fprog program{static_cast<unsigned short>(std::size(filter)), filter};
    return Fd(static_cast<int>(
        ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &program)));
}

struct WaitingServer {
    std::optional<Expected<KeyringCookie, std::string>> cookie;
    bool listened = false;             // the sleeps could be watched
    bool released_at_return = false;   // the holder had released the lock when current() returned
};

// Another server holds `lock` (taken before current() starts); current() runs in a thread of its own,
// and the lock is released (after `before_release`) exactly when that thread first sleeps, that is once
// the keyring has found the lock held and waits to try again. Nothing is timed: if current() returns
// without sleeping, it went ahead while the lock was held and the lock is released only afterwards.
WaitingServer current_while_another_server_holds(const Keyring& keyring, const std::string& lock,
                                                 const std::function<void()>& before_release = {}) {
    WaitingServer server;
    const int held = ::open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    EXPECT_GE(held, 0) << lock;
    if (held < 0) return server;
    ::close(held);
    std::atomic<bool> released{false};
    const auto release = [&] {
        if (released) return;
        if (before_release) before_release();
        released = true;
        ::unlink(lock.c_str());
    };
    std::promise<int> listener_fd;
    auto listener_of_server = listener_fd.get_future();
    std::thread thread([&] {
        Fd own = listen_to_own_sleeps();
        listener_fd.set_value(own.release());
        server.cookie = keyring.current(kContext);
        server.released_at_return = released;
    });
    const Fd listener(listener_of_server.get());
    server.listened = listener.valid();
    // The first sleep, or the end of the thread (which hangs the listener up); 10 s for a stuck one.
    pollfd p{listener.get(), POLLIN, 0};
    seccomp_notif sleep{};
    if (listener && ::poll(&p, 1, 10000) == 1 && (p.revents & POLLIN) &&
        ::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_RECV, &sleep) == 0) {
        release();
        seccomp_notif_resp resume{};
        resume.id = sleep.id;
        resume.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        EXPECT_EQ(::ioctl(listener.get(), SECCOMP_IOCTL_NOTIF_SEND, &resume), 0) << std::strerror(errno);
    }
    release();
    thread.join();
    return server;
}

KeyringPolicy waiting_policy(KeyringPolicy p) {
    p.lock_retry_interval = std::chrono::milliseconds(5);
    p.lock_attempts = 100000;  // far longer than the holder needs: no take-over
    return p;
}

TEST_F(KeyringFiles, WaitsForALockThatIsReleased) {
    make_directory();
    auto server = current_while_another_server_holds(Keyring(directory_, waiting_policy(policy())), file_ + ".lock");
    ASSERT_TRUE(server.listened) << "seccomp user notification is unavailable: " << std::strerror(errno);
    ASSERT_TRUE(server.cookie && *server.cookie) << (server.cookie ? server.cookie->error() : "no result");
    EXPECT_TRUE(server.released_at_return) << "went ahead while another server held the lock";
    EXPECT_EQ(directory_entries(), std::vector<std::string>{std::string(kContext)});
}

TEST_F(KeyringFiles, UsesTheCookieAnotherServerAddedWhileItWaited) {
    make_directory();
    const KeyringCookie theirs{77, kStart - 5, "abcdef"};
    auto server = current_while_another_server_holds(Keyring(directory_, waiting_policy(policy())), file_ + ".lock", [&] {
        std::ofstream(file_ + ".new") << format_keyring({theirs});
        std::filesystem::rename(file_ + ".new", file_);
    });
    ASSERT_TRUE(server.listened) << "seccomp user notification is unavailable: " << std::strerror(errno);
    ASSERT_TRUE(server.cookie && *server.cookie) << (server.cookie ? server.cookie->error() : "no result");
    EXPECT_TRUE(server.released_at_return) << "went ahead while another server held the lock";
    EXPECT_EQ(**server.cookie, theirs);
    EXPECT_EQ(read_text(file_), format_keyring({theirs}));
}

TEST_F(KeyringFiles, DeletesAStaleLockAtOnce) {
    make_directory();
    const std::string lock = file_ + ".lock";
    ASSERT_TRUE(std::ofstream(lock));
    // Left over from a crash an hour ago.
    const timespec old_times[2] = {{::time(nullptr) - 3600, 0}, {::time(nullptr) - 3600, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, lock.c_str(), old_times, 0), 0);
    KeyringPolicy p = policy();
    p.lock_retry_interval = std::chrono::seconds(1);
    p.lock_attempts = 1000;  // waiting for it would take 16 minutes
    const auto start = std::chrono::steady_clock::now();
    auto cookie = Keyring(directory_, p).current(kContext);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    ASSERT_TRUE(cookie) << cookie.error();
    EXPECT_EQ(directory_entries(), std::vector<std::string>{std::string(kContext)});
}

TEST_F(KeyringFiles, TakesOverALockThatIsNeverReleased) {
    make_directory();
    const std::string lock = file_ + ".lock";
    ASSERT_TRUE(std::ofstream(lock));
    KeyringPolicy p = policy();
    p.lock_retry_interval = std::chrono::milliseconds(1);
    p.lock_attempts = 3;
    auto cookie = Keyring(directory_, p).current(kContext);
    ASSERT_TRUE(cookie) << cookie.error();
    // As dbus-daemon: after the attempts the lock is considered stale, deleted and retaken (and released).
    EXPECT_EQ(directory_entries(), std::vector<std::string>{std::string(kContext)});
}

TEST_F(KeyringFiles, ARecentCookieNeedsNoLock) {
    make_directory();
    write_file("5 " + std::to_string(kStart - 10) + " 0055\n");
    ASSERT_TRUE(std::ofstream(file_ + ".lock"));
    KeyringPolicy p = policy();
    p.lock_retry_interval = std::chrono::seconds(1);
    p.lock_attempts = 1000;
    const auto start = std::chrono::steady_clock::now();
    auto cookie = Keyring(directory_, p).current(kContext);
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
    ASSERT_TRUE(cookie) << cookie.error();
    EXPECT_EQ(cookie->id, 5u);
}

TEST(HomeDirectory, OwnUidUsesHomeLikeLibdbus) {
    const char* saved = std::getenv("HOME");
    const std::string saved_home = saved ? saved : "";
    ASSERT_EQ(::setenv("HOME", "/tmp/afbus-fake-home", 1), 0);
    EXPECT_EQ(home_directory(::getuid()), std::string("/tmp/afbus-fake-home"));
    EXPECT_EQ(keyring_directory("/tmp/afbus-fake-home"), "/tmp/afbus-fake-home/.dbus-keyrings");
    EXPECT_EQ(keyring_directory("/"), "/.dbus-keyrings");
    // A relative HOME is not trusted: the password database answers.
    ASSERT_EQ(::setenv("HOME", "relative", 1), 0);
    auto from_passwd = home_directory(::getuid());
    if (from_passwd) {
        EXPECT_TRUE(from_passwd->starts_with("/")) << *from_passwd;
    }
    if (saved) ::setenv("HOME", saved_home.c_str(), 1);
    else ::unsetenv("HOME");

    auto nobody = home_directory(static_cast<uid_t>(4000000123u));
    ASSERT_FALSE(nobody);
    EXPECT_EQ(nobody.error(), "no user with uid 4000000123");
}

}  // namespace
}  // namespace afbus
