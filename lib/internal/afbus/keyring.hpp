// The DBUS_COOKIE_SHA1 keyring: ~/.dbus-keyrings/<context> files of "id created hex-secret" lines.
// Clients only read it (Keyring::find); servers also add, expire and rotate cookies under a lock file
// (Keyring::current). The rules and times are the D-Bus specification's and dbus-daemon's; see
// docs/sasl-and-addresses.md. This is the only place in libafbus that reads or writes keyring files.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "afbus/expected.hpp"

namespace afbus {

// The context servers use unless configured otherwise (and the only one dbus-daemon uses).
inline constexpr std::string_view kDefaultCookieContext = "org_freedesktop_general";

struct KeyringCookie {
    std::uint32_t id = 0;      // 0 .. 2^31-1
    std::int64_t created = 0;  // seconds since the epoch
    std::string secret;        // lower-case hex; exactly what goes into the SHA-1 input
    friend bool operator==(const KeyringCookie&, const KeyringCookie&) = default;
};

struct KeyringPolicy {
    // The reference implementation's times, which the specification suggests for interoperability:
    // a new cookie once the newest is 5 minutes old, cookies dropped after 7 minutes (so a client
    // has at least 2 minutes to answer), and cookies more than 5 minutes in the future dropped too.
    std::chrono::seconds new_cookie_after{5 * 60};
    std::chrono::seconds expire_after{7 * 60};
    std::chrono::seconds max_future{5 * 60};
    // dbus-daemon keeps at most 256 cookies per file.
    std::size_t max_cookies = 256;
    // Lock file <context>.lock, created with O_EXCL: retried lock_attempts times lock_retry_interval
    // apart (dbus-daemon: 32 x 250 ms), then deleted as stale and taken over. A lock file older than
    // stale_lock_age is deleted at once instead of being waited for.
    unsigned lock_attempts = 32;
    std::chrono::milliseconds lock_retry_interval{250};
    std::chrono::seconds stale_lock_age{8};
    // Seconds since the epoch; unset means the real-time clock. Tests move time with this.
    std::function<std::int64_t()> now;
};

// A context names a file: non-empty ASCII without '/', '\', '.', blanks, CR, LF or control characters.
bool is_valid_cookie_context(std::string_view context);

// One cookie file's contents. Lines that do not have the three fields (non-negative 31-bit id, time,
// non-empty hex secret), repeated ids, cookies older than expire_after or further than max_future in
// the future at `now` are dropped; after max_cookies cookies the rest is ignored. File order is kept.
std::vector<KeyringCookie> parse_keyring(std::string_view contents, std::int64_t now, const KeyringPolicy& policy);
std::string format_keyring(const std::vector<KeyringCookie>& cookies);

class Keyring {
public:
    // `directory` is the user's ~/.dbus-keyrings. It must be a directory owned by the effective uid
    // with no group or other permissions, or every operation fails (the spec says to ignore it).
    explicit Keyring(std::string directory, KeyringPolicy policy = {});

    [[nodiscard]] const std::string& directory() const noexcept { return directory_; }

    // The cookie files's usable cookies (see parse_keyring). Never writes, takes no lock.
    [[nodiscard]] Expected<std::vector<KeyringCookie>, std::string> load(std::string_view context) const;
    // Client side: the cookie with this id.
    [[nodiscard]] Expected<KeyringCookie, std::string> find(std::string_view context, std::uint32_t id) const;
    // Server side: a cookie younger than new_cookie_after to challenge a client with. If there is none,
    // creates the directory (0700) if it is missing, takes the lock, drops expired cookies, adds a new
    // random one and rewrites the file atomically (temporary file, mode 0600, rename).
    [[nodiscard]] Expected<KeyringCookie, std::string> current(std::string_view context) const;

private:
    [[nodiscard]] std::int64_t now() const;
    [[nodiscard]] Expected<void, std::string> check_directory() const;

    std::string directory_;
    KeyringPolicy policy_;
};

// The home directory of `uid` as libdbus finds it: $HOME (if absolute) when `uid` is the process's real
// and effective uid, otherwise the password database (getpwuid_r).
Expected<std::string, std::string> home_directory(uid_t uid);
// <home>/.dbus-keyrings
std::string keyring_directory(std::string_view home);

}  // namespace afbus
