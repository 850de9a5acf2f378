#include "afbus/keyring.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <optional>
#include <thread>

#include "afbus/fd.hpp"
#include "sasl/sasl_line.hpp"

namespace afbus {

using sasl_detail::system_error;

namespace {

// A keyring of max_cookies lines is a few KiB; anything much bigger is not a keyring we should parse.
constexpr std::size_t kMaxKeyringSize = 64 * 1024;
// dbus-daemon's cookies are 24 random bytes.
constexpr std::size_t kCookieSecretBytes = 24;
constexpr std::int64_t kMaxCookieId = std::numeric_limits<std::int32_t>::max();

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::vector<std::string_view> split_blanks(std::string_view text) {
    std::vector<std::string_view> words;
    std::size_t position = 0;
    while (position < text.size()) {
        while (position < text.size() && is_blank(text[position])) ++position;
        std::size_t end = position;
        while (end < text.size() && !is_blank(text[end])) ++end;
        if (end > position) words.push_back(text.substr(position, end - position));
        position = end;
    }
    return words;
}

std::optional<std::int64_t> parse_decimal(std::string_view text, std::int64_t max) {
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
    std::int64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value > max) return std::nullopt;
    return value;
}

std::string path_in(const std::string& directory, std::string_view name) {
    std::string path = directory;
    path += '/';
    path += name;
    return path;
}

// Reads a whole (small, regular) file.
Expected<std::string, std::string> read_file(const std::string& path) {
    Fd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!file) return Unexpected(system_error(path, errno));
    struct stat status {};
    if (::fstat(file.get(), &status) != 0) return Unexpected(system_error(path, errno));
    if (!S_ISREG(status.st_mode)) return Unexpected(path + ": not a regular file");
    std::string contents;
    char chunk[4096];
    for (;;) {
        const ssize_t n = ::read(file.get(), chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected(system_error(path, errno));
        if (n == 0) break;
        contents.append(chunk, static_cast<std::size_t>(n));
        if (contents.size() > kMaxKeyringSize) return Unexpected(std::string("keyring file too large"));
    }
    return contents;
}

Expected<void, std::string> write_all(int fd, std::string_view data, const std::string& path) {
    while (!data.empty()) {
        const ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Unexpected(system_error(path, errno));
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return {};
}

// Replaces `path` with `contents` so that readers see either the old or the new file, never a part.
Expected<void, std::string> save_atomically(const std::string& path, std::string_view contents) {
    auto suffix = sasl_detail::random_bytes(6);
    if (!suffix) return Unexpected(suffix.error());
    // Contexts contain no '.', so this name cannot be another context's file (nor a lock file).
    const std::string temporary = path + ".tmp-" + sasl_detail::hex_encode(*suffix);
    Fd file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!file) return Unexpected(system_error(temporary, errno));
    auto written = write_all(file.get(), contents, temporary);
    if (written && ::fsync(file.get()) != 0) written = Unexpected(system_error(temporary, errno));
    if (written && ::close(file.release()) != 0) written = Unexpected(system_error(temporary, errno));
    if (written && ::rename(temporary.c_str(), path.c_str()) != 0) written = Unexpected(system_error(path, errno));
    if (!written) ::unlink(temporary.c_str());
    return written;
}

std::int64_t real_time_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// The lock file <context>.lock (the spec's scheme: O_EXCL creation, deletion to unlock), held while alive.
class LockFile {
public:
    static Expected<LockFile, std::string> acquire(std::string path, const KeyringPolicy& policy) {
        for (unsigned attempt = 0; attempt < policy.lock_attempts; ++attempt) {
            if (auto created = create(path); created) return LockFile(std::move(path));
            else if (created.error() != EEXIST) return Unexpected(system_error(path, created.error()));
            // A lock that has been there longer than anyone holds it is left over from a crash.
            struct stat status {};
            if (::stat(path.c_str(), &status) == 0 &&
                real_time_now() - static_cast<std::int64_t>(status.st_mtime) > policy.stale_lock_age.count()) {
                ::unlink(path.c_str());
                continue;
            }
            std::this_thread::sleep_for(policy.lock_retry_interval);
        }
        // Waited long enough: assume the holder is gone, as dbus-daemon does, and take the lock over.
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Unexpected(system_error(path, errno));
        if (auto created = create(path); !created) return Unexpected(system_error(path, created.error()));
        return LockFile(std::move(path));
    }

    LockFile(LockFile&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    LockFile& operator=(LockFile&&) = delete;
    LockFile(const LockFile&) = delete;
    ~LockFile() {
        if (!path_.empty()) ::unlink(path_.c_str());
    }

private:
    explicit LockFile(std::string path) : path_(std::move(path)) {}

    static Expected<void, int> create(const std::string& path) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0) return Unexpected(errno);
        ::close(fd);
        return {};
    }

    std::string path_;
};

Expected<KeyringCookie, std::string> new_cookie(const std::vector<KeyringCookie>& existing, std::int64_t now) {
    KeyringCookie cookie;
    cookie.created = now;
    for (;;) {
        auto bytes = sasl_detail::random_bytes(4);
        if (!bytes) return Unexpected(bytes.error());
        std::uint32_t id = 0;
        for (char c : *bytes) id = (id << 8) | static_cast<unsigned char>(c);
        cookie.id = id & 0x7fffffffu;
        if (std::none_of(existing.begin(), existing.end(),
                         [&](const KeyringCookie& other) { return other.id == cookie.id; }))
            break;
    }
    auto secret = sasl_detail::random_bytes(kCookieSecretBytes);
    if (!secret) return Unexpected(secret.error());
    cookie.secret = sasl_detail::hex_encode(*secret);
    return cookie;
}

}  // namespace

bool is_valid_cookie_context(std::string_view context) {
    if (context.empty()) return false;
    return std::all_of(context.begin(), context.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte > 0x20 && byte < 0x7f && c != '/' && c != '\\' && c != '.';
    });
}

std::vector<KeyringCookie> parse_keyring(std::string_view contents, std::int64_t now, const KeyringPolicy& policy) {
    std::vector<KeyringCookie> cookies;
    std::size_t position = 0;
    while (position < contents.size() && cookies.size() < policy.max_cookies) {
        const std::size_t end = std::min(contents.find('\n', position), contents.size());
        std::string_view line = contents.substr(position, end - position);
        position = end + 1;
        if (line.ends_with('\r')) line.remove_suffix(1);
        const auto fields = split_blanks(line);
        if (fields.size() != 3) continue;
        const auto id = parse_decimal(fields[0], kMaxCookieId);
        const auto created = parse_decimal(fields[1], std::numeric_limits<std::int64_t>::max() / 2);
        const auto secret = sasl_detail::hex_decode(fields[2]);
        if (!id || !created || !secret || secret->empty()) continue;
        if (*created > now + policy.max_future.count() || *created < now - policy.expire_after.count()) continue;
        const auto same_id = [&](const KeyringCookie& c) { return c.id == static_cast<std::uint32_t>(*id); };
        if (std::any_of(cookies.begin(), cookies.end(), same_id)) continue;
        // Re-encoded in lower case: the hash is over the hex text, and that is what libdbus hashes.
        cookies.push_back({static_cast<std::uint32_t>(*id), *created, sasl_detail::hex_encode(*secret)});
    }
    return cookies;
}

std::string format_keyring(const std::vector<KeyringCookie>& cookies) {
    std::string text;
    for (const KeyringCookie& cookie : cookies) {
        text += std::to_string(cookie.id);
        text += ' ';
        text += std::to_string(cookie.created);
        text += ' ';
        text += cookie.secret;
        text += '\n';
    }
    return text;
}

Keyring::Keyring(std::string directory, KeyringPolicy policy)
    : directory_(std::move(directory)), policy_(std::move(policy)) {}

std::int64_t Keyring::now() const {
    return policy_.now ? policy_.now() : real_time_now();
}

Expected<void, std::string> Keyring::check_directory() const {
    if (directory_.empty()) return Unexpected(std::string("no keyring directory configured"));
    struct stat status {};
    if (::stat(directory_.c_str(), &status) != 0) return Unexpected(system_error(directory_, errno));
    if (!S_ISDIR(status.st_mode) || status.st_uid != ::geteuid() || (status.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        return Unexpected(std::string("keyring directory is not private to the user"));
    return {};
}

Expected<std::vector<KeyringCookie>, std::string> Keyring::load(std::string_view context) const {
    if (!is_valid_cookie_context(context)) return Unexpected(std::string("invalid cookie context"));
    if (auto checked = check_directory(); !checked) return Unexpected(checked.error());
    auto contents = read_file(path_in(directory_, context));
    if (!contents) return Unexpected(contents.error());
    return parse_keyring(*contents, now(), policy_);
}

Expected<KeyringCookie, std::string> Keyring::find(std::string_view context, std::uint32_t id) const {
    auto cookies = load(context);
    if (!cookies) return Unexpected(cookies.error());
    for (KeyringCookie& cookie : *cookies) {
        if (cookie.id == id) return std::move(cookie);
    }
    return Unexpected(std::string("cookie not found in keyring"));
}

Expected<KeyringCookie, std::string> Keyring::current(std::string_view context) const {
    if (!is_valid_cookie_context(context)) return Unexpected(std::string("invalid cookie context"));
    if (!directory_.empty() && ::mkdir(directory_.c_str(), 0700) != 0 && errno != EEXIST)
        return Unexpected(system_error(directory_, errno));
    if (auto checked = check_directory(); !checked) return Unexpected(checked.error());

    const std::string path = path_in(directory_, context);
    const std::int64_t now = this->now();
    // A missing or unreadable file counts as empty: it is recreated, as dbus-daemon does.
    const auto read_cookies = [&] {
        auto contents = read_file(path);
        return contents ? parse_keyring(*contents, now, policy_) : std::vector<KeyringCookie>{};
    };
    const auto most_recent = [&](const std::vector<KeyringCookie>& cookies) -> std::optional<KeyringCookie> {
        std::optional<KeyringCookie> best;
        for (const KeyringCookie& cookie : cookies) {
            if (cookie.created <= now - policy_.new_cookie_after.count()) continue;
            if (!best || cookie.created > best->created) best = cookie;
        }
        return best;
    };

    if (auto recent = most_recent(read_cookies())) return std::move(*recent);

    auto lock = LockFile::acquire(path + ".lock", policy_);
    if (!lock) return Unexpected("could not lock the keyring: " + lock.error());
    // Another server may have added a cookie while we waited for the lock.
    std::vector<KeyringCookie> cookies = read_cookies();
    if (auto recent = most_recent(cookies)) return std::move(*recent);

    auto cookie = new_cookie(cookies, now);
    if (!cookie) return Unexpected(cookie.error());
    const std::size_t keep = policy_.max_cookies > 0 ? policy_.max_cookies - 1 : 0;
    if (cookies.size() > keep) cookies.erase(cookies.begin(), cookies.end() - static_cast<std::ptrdiff_t>(keep));
    cookies.push_back(*cookie);
    if (auto saved = save_atomically(path, format_keyring(cookies)); !saved) return Unexpected(saved.error());
    return cookie;
}

Expected<std::string, std::string> home_directory(uid_t uid) {
    if (uid == ::getuid() && uid == ::geteuid()) {
        const char* home = ::secure_getenv("HOME");
        if (home && home[0] == '/') return std::string(home);
    }
    long suggested = ::sysconf(_SC_GETPW_R_SIZE_MAX);
    std::vector<char> buffer(suggested > 0 ? static_cast<std::size_t>(suggested) : 4096);
    for (;;) {
        passwd entry{};
        passwd* found = nullptr;
        const int error = ::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found);
        if (error == ERANGE && buffer.size() < (1u << 20)) {
            buffer.resize(buffer.size() * 2);
            continue;
        }
        if (error != 0) return Unexpected(system_error("getpwuid_r", error));
        if (!found) return Unexpected("no user with uid " + std::to_string(uid));
        if (!found->pw_dir || found->pw_dir[0] != '/')
            return Unexpected("user " + std::to_string(uid) + " has no home directory");
        return std::string(found->pw_dir);
    }
}

std::string keyring_directory(std::string_view home) {
    std::string directory(home);
    if (directory.empty() || directory.back() != '/') directory += '/';
    directory += ".dbus-keyrings";
    return directory;
}

}  // namespace afbus
